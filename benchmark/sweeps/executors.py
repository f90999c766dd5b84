"""Where runs run: groups of runs claimed, trained by an engine and stored, on an executor.

``units`` cuts a phase into what one engine call trains: runs the batched engine takes
(``engine_for``; under ``auto`` the models ``Options.batched`` names, ``auto.py``) in groups
that share the engine's ``groups`` fields (``engines/registry.py``), cut on the CPU into
pieces of at most ``CPU_GROUP_RUNS`` runs (at seed boundaries, so each piece keeps its seeds' shared
batches); every other run alone. The cut depends on the phase and the device alone, never on
the worker count or the executor, and is made from the whole phase, finished runs included, so
a resumed group is the uninterrupted sweep's group and gives its records to the last bit (the
batched engine's sums depend on the group); only groups with pending runs train, and only
those runs' records are written. Every run trains with ``Options.threads`` torch threads (the
sweep's ``threads``, default 1) wherever it runs: the driver, a pool worker or a Slurm task,
since the thread count changes how sums split and so the last bits of a record.
``run_group`` claims each pending run of a group before it starts (runs claimed elsewhere, or
finished meanwhile, are not written), trains the group, and writes each record atomically when
the group ends: a group killed midway is run again whole. A crash fails the group's runs
(``failed/``), never the sweep.

Executors (``EXECUTORS``): ``local`` on this machine (on the CPU one worker process per core
by default: README; on a GPU one process), starting a unit only when a worker is free and the
sweep's deadline allows it (``deadline.py``); ``slurm`` (``slurm.py``) a submitit job array
whose tasks take whole groups, each task under the deadline on its own, checkpointed and
requeued on Slurm's warning before its time limit.
"""

import contextlib
import multiprocessing
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.registry import ENGINES, Engine
from benchmark.records.faults import fault_point
from benchmark.sweeps import auto
from benchmark.sweeps.deadline import Deadline
from benchmark.sweeps.store import Store

# runs per batched group on the CPU at most: two or three groups a phase in the quick sweep,
# so two workers share them; on CUDA a group is whole (the engine chunks it by memory)
CPU_GROUP_RUNS = 96


@dataclass(frozen=True)
class Options:
    """How to run: where, on what, with which engine, and whether finished runs run again."""

    results: Path
    executor: str = "local"
    workers: int | None = None  # local CPU worker processes; None: one per core
    threads: int | None = None  # torch threads of every run; None: the sweep's (default 1)
    device: str = "auto"
    engine: str | None = None  # auto, single, batched; None: the sweep file's
    fallback: str = "allow"  # forbid: a group the batched engine cannot vectorise fails
    cuda_graphs: bool = False  # the batched engine's steps replayed from CUDA graphs (CUDA)
    root: str | None = None  # data root
    rerun: bool = False  # run finished runs again (the sweep turns it into ``since``)
    since: float | None = None  # records older than this (time.time()) count as not done
    plugins: tuple[str, ...] = ()
    deadline: float | None = None  # time.time() by which to stop (deadline.py); None: none
    slurm: dict = field(default_factory=dict)  # partition, gpus_per_task, time_min, ...
    # the models engine auto trains batched, decided once by the driver (auto.choose); None:
    # the default rule
    batched: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str  # ok, diverged, failed, claimed (by another process), done (already),
    # deferred (not started: it would not end before the deadline)
    seconds: float = 0.0  # training and storing; a group's time shared among its runs
    val_acc: float | None = None
    error: str | None = None
    fallback: str | None = None  # why it trained one at a time instead of batched, if it did


def engine_for(options: Options, model: str, cuda: bool) -> Engine:
    """The engine that trains ``model``'s runs: ``options.engine``, or for ``auto`` batched
    for the models ``options.batched`` names (the default rule when it names none)."""
    engine = options.engine
    if engine == "auto":
        batched = auto.choose(None, cuda).batched if options.batched is None else options.batched
        engine = "batched" if model in batched else "single"
    return ENGINES[engine]


class Unit(NamedTuple):
    """What one engine call trains (``train``), and the runs of it to claim and write."""

    train: list[RunSpec]
    pending: list[RunSpec]


def units(phase: list[RunSpec], pending: list[RunSpec], options: Options, cuda: bool) -> list[Unit]:
    """The units that train ``pending`` runs: each group of the ``phase`` (whole on CUDA, in
    pieces of at most ``CPU_GROUP_RUNS`` on the CPU), kept when it has a pending run; every
    pending run of the single engine alone."""
    keys = {s.key for s in pending}

    def grouped(spec: RunSpec) -> bool:
        return engine_for(options, get_task(spec.task).model, cuda).groups is not None

    most = None if cuda else CPU_GROUP_RUNS
    parts = [
        Unit(g, [s for s in g if s.key in keys])
        for g in groups(filter(grouped, phase), options, cuda, most)
    ]
    return [u for u in parts if u.pending] + [Unit([s], [s]) for s in pending if not grouped(s)]


def groups(specs, options: Options, cuda: bool, most: int | None) -> list[list[RunSpec]]:
    """``specs`` in groups whose engine trains them in one call (its ``groups`` fields shared),
    sorted by seed, each cut into the fewest equal parts of at most ``most`` runs (None:
    whole)."""
    together: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        chosen = engine_for(options, get_task(spec.task).model, cuda)
        together.setdefault((chosen.name, *chosen.group_key(spec)), []).append(spec)
    out = []
    for members in together.values():
        members = sorted(members, key=lambda s: s.seed)
        pieces = 1 if most is None else -(-len(members) // most)
        seeds = list(dict.fromkeys(s.seed for s in members))
        if len(seeds) >= pieces:  # whole seeds per piece: their runs share batches
            parts = [set(p) for p in np.array_split(seeds, pieces)]
            out += [[s for s in members if s.seed in p] for p in parts]
        else:
            out += [list(p) for p in np.array_split(members, min(pieces, len(members)))]
    return [g for g in out if g]


# ------------------------------------------------------------------ a group, in any process

_SPLITS: dict = {}  # (dataset, device, root) -> splits, loaded once per process


def run_group(train: list[dict], pending: list[dict], options: Options) -> list[Outcome]:
    """Claim the ``pending`` runs of a group, train the group ``train`` and store theirs; a
    crash becomes failed/ entries."""
    store, out, mine = Store(options.results), [], []
    with contextlib.ExitStack() as held:
        for spec in map(RunSpec.from_dict, pending):
            if not held.enter_context(store.claim(spec.key)):
                out.append(Outcome(spec.key, "claimed"))
            elif store.done(spec.key, options.since):
                out.append(Outcome(spec.key, "done"))
            else:
                mine.append(spec)
                fault_point("claim")
        if mine:
            group = [RunSpec.from_dict(s) for s in train]
            out += _train_and_store(group, mine, options, store)
    return out


def _train_and_store(
    group: list[RunSpec], mine: list[RunSpec], options: Options, store: Store
) -> list[Outcome]:
    from benchmark.engines.device import resolve_device, torch_threads

    t0 = time.perf_counter()
    try:
        device = resolve_device(options.device)
        task = get_task(group[0].task)
        where = (task.dataset, str(device), options.root)
        if where not in _SPLITS:
            _SPLITS[where] = data.load(task.dataset, options.root, device)
        engine = engine_for(options, task.model, device.type == "cuda")
        with torch_threads(options.threads):  # in any process: the same last bits
            records = engine.train(
                group, _SPLITS[where], device,
                fallback=options.fallback, cuda_graphs=options.cuda_graphs,
            )  # fmt: skip
    except Exception as err:  # recorded; the other groups go on
        for spec in mine:
            store.fail(spec.key, spec.to_dict(), traceback.format_exc())
        seconds = (time.perf_counter() - t0) / len(group)
        return [Outcome(s.key, "failed", seconds, error=one_line(err)) for s in mine]
    seconds = (time.perf_counter() - t0) / len(group)
    keys = {s.key for s in mine}
    return [_store(record, store, seconds) for record in records if record["key"] in keys]


def _store(record: dict, store: Store, seconds: float) -> Outcome:
    key = record["key"]
    try:
        store.put(record)
    except OSError as err:  # disk full: no record (the write is atomic), the run failed
        with contextlib.suppress(OSError):
            store.fail(key, record["spec"], f"could not write the record: {err}")
        return Outcome(key, "failed", seconds, error=f"could not write the record: {one_line(err)}")
    fallback = record.get("fallback")  # absent from the records of runs trained as asked
    return Outcome(
        key, record["status"], seconds, record["metrics"]["val_acc_final"],
        fallback=fallback and fallback["reason"],
    )  # fmt: skip


def import_plugins(plugins) -> None:
    import importlib

    for module in plugins:
        importlib.import_module(module)


def _worker_init(plugins: tuple[str, ...]) -> None:
    # Ctrl-C, and SIGUSR2 (Slurm's warning before a time limit): the driver stops, workers finish
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    import_plugins(plugins)


def one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


# ------------------------------------------------------------------ executors

# run(phase, pending, options, deadline): the pending runs of a phase (the whole phase cuts the
# groups), each unit started only when ``deadline.fits`` it
Executor = Callable[[list[RunSpec], list[RunSpec], Options, Deadline], Iterator[Outcome]]
EXECUTORS: dict[str, Executor] = {}


def executor(name: str):
    def register(fn: Executor) -> Executor:
        EXECUTORS[name] = fn
        return fn

    return register


def uses_cuda(options: Options) -> bool:
    """Whether runs will train on a GPU (a Slurm job's node: when it asks for one)."""
    if options.executor == "slurm":
        return options.slurm.get("gpus_per_task", 0) > 0
    import torch

    return options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())


def as_dicts(unit: Unit) -> tuple[list[dict], list[dict]]:
    return [s.to_dict() for s in unit.train], [s.to_dict() for s in unit.pending]


@executor("local")
def local(
    phase: list[RunSpec], pending: list[RunSpec], options: Options, deadline: Deadline
) -> Iterator[Outcome]:
    """This machine: on the CPU ``workers`` processes (default: one per core), each run with
    ``options.threads`` threads; one unit left, or one worker, runs in this process. A unit
    starts when a worker is free, if it fits the deadline; else its runs are deferred."""
    cuda = uses_cuda(options)
    todo = deque(units(phase, pending, options, cuda))
    workers = min(1 if cuda else options.workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for unit in todo:
            fits = deadline.fits(unit.train)
            yield from run_group(*as_dicts(unit), options) if fits else _deferred(unit)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(options.plugins,)
    ) as pool:
        running = {}
        try:
            while todo or running:
                while todo and len(running) < workers:
                    unit = todo.popleft()
                    if deadline.fits(unit.train):
                        running[pool.submit(run_group, *as_dicts(unit), options)] = unit
                    else:
                        yield from _deferred(unit)
                for future in wait(running, return_when=FIRST_COMPLETED).done:
                    unit = running.pop(future)
                    try:
                        yield from future.result()
                    except Exception as err:  # the worker died (killed, out of memory)
                        error = one_line(err)
                        yield from (Outcome(s.key, "failed", error=error) for s in unit.pending)
        finally:  # on Ctrl-C: the groups in progress finish and are written; no new ones start
            pool.shutdown(wait=True, cancel_futures=True)


def _deferred(unit: Unit) -> Iterator[Outcome]:
    return (Outcome(s.key, "deferred") for s in unit.pending)


from benchmark.sweeps import slurm  # noqa: E402, F401  registers the "slurm" executor
