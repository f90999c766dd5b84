"""Running a sweep: each phase's pending runs on an executor, resumable and crash-safe.

``run_sweep`` expands the protocol (benchmark/protocol.py) phase by phase: tune, select,
final. Runs whose record exists are skipped (``rerun`` runs them again); each run is claimed
before it starts (benchmark/store.py), so two runners, or two Slurm array tasks, on one results
folder never run the same run; a runner that finds runs claimed elsewhere waits for them. A run
that crashes is written to ``failed/`` and the sweep goes on; ``runs.csv`` and ``curves.csv``
are rebuilt from the records at the end.

Executors (``EXECUTORS``): ``local`` runs on this machine: on the CPU one worker process per
core with one thread each (faster here than one process with two threads: README), on a GPU
one process; ``slurm`` shards the pending runs into a submitit job array.
"""

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark import data, protocol, tidy
from benchmark.atomic import write_atomic
from benchmark.errors import InputError
from benchmark.faults import fault_point
from benchmark.spec import RunSpec
from benchmark.store import Store
from benchmark.tasks import get_task

POLL_S = 5.0  # how often a runner looks again at runs claimed by another process


@dataclass(frozen=True)
class Options:
    """How to run: where, on what, and whether finished runs are run again."""

    results: Path
    executor: str = "local"
    workers: int | None = None  # local CPU worker processes; None: one per core
    device: str = "auto"
    root: str | None = None  # data root
    rerun: bool = False
    plugins: tuple[str, ...] = ()
    slurm: dict = field(default_factory=dict)  # partition, gpus_per_task, time_min, ...


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str  # ok, diverged, failed, claimed (by another process), done (already)
    seconds: float = 0.0
    val_acc: float | None = None
    error: str | None = None


# ------------------------------------------------------------------ one run, in any process

_SPLITS: dict = {}  # (dataset, device, root) -> splits, loaded once per process


def run_one(spec: dict, options: Options) -> Outcome:
    """Claim, train and store one run; a crash becomes a failed/ entry, not an exception."""
    from benchmark.semantics import resolve_device
    from benchmark.train import train  # torch: only where runs happen

    spec = RunSpec(**spec)
    store = Store(options.results)
    with store.claim(spec.key) as mine:
        if not mine:
            return Outcome(spec.key, "claimed")
        if not options.rerun and store.done(spec.key):
            return Outcome(spec.key, "done")
        fault_point("claim")
        t0 = time.perf_counter()
        try:
            device = resolve_device(options.device)
            dataset = get_task(spec.task).dataset
            where = (dataset, str(device), options.root)
            if where not in _SPLITS:
                _SPLITS[where] = data.load(dataset, options.root, device)
            record = train(spec, _SPLITS[where], device)
        except Exception as err:  # recorded; the other runs go on
            store.fail(spec.key, spec.to_dict(), traceback.format_exc())
            return Outcome(spec.key, "failed", time.perf_counter() - t0, error=_one_line(err))
        try:
            store.put(record)
        except OSError as err:  # disk full: no record (the write is atomic), the run failed
            with contextlib.suppress(OSError):
                store.fail(spec.key, spec.to_dict(), f"could not write the record: {err}")
            error = f"could not write the record: {_one_line(err)}"
            return Outcome(spec.key, "failed", time.perf_counter() - t0, error=error)
        val_acc = record["metrics"]["val_acc_final"]
        return Outcome(spec.key, record["status"], time.perf_counter() - t0, val_acc)


def run_shard(specs: list[dict], options: Options) -> list[Outcome]:
    """Run ``specs`` one after another: a Slurm array task's work."""
    _import_plugins(options.plugins)
    return [run_one(spec, options) for spec in specs]


def _import_plugins(plugins) -> None:
    import importlib

    for module in plugins:
        importlib.import_module(module)


def _worker_init(threads: int, plugins: tuple[str, ...]) -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the driver stops, workers finish

    torch.set_num_threads(threads)
    _import_plugins(plugins)


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


# ------------------------------------------------------------------ executors

Executor = Callable[[list[RunSpec], Options], Iterator[Outcome]]
EXECUTORS: dict[str, Executor] = {}


def executor(name: str):
    def register(fn: Executor) -> Executor:
        EXECUTORS[name] = fn
        return fn

    return register


@executor("local")
def local(pending: list[RunSpec], options: Options) -> Iterator[Outcome]:
    """This machine: on the CPU ``workers`` processes with cores / workers threads each."""
    import torch

    cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
    workers = 1 if cuda else min(options.workers or os.cpu_count() or 1, len(pending))
    if workers <= 1:
        yield from (run_one(spec.to_dict(), options) for spec in pending)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(threads, options.plugins)
    ) as pool:
        futures = {pool.submit(run_one, spec.to_dict(), options): spec for spec in pending}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as err:  # the worker process died (killed, out of memory)
                    yield Outcome(futures[future].key, "failed", error=_one_line(err))
        finally:  # on Ctrl-C: the runs in progress finish and are written; no new ones start
            pool.shutdown(wait=True, cancel_futures=True)


@executor("slurm")
def slurm(pending: list[RunSpec], options: Options) -> Iterator[Outcome]:
    """A submitit job array: ``array_parallelism`` tasks, each running its shard in turn."""
    import submitit

    settings = dict(options.slurm)
    cluster = settings.pop("cluster", None)  # tests: submitit's "local" or "debug"
    ex = submitit.AutoExecutor(folder=options.results / "slurm" / "%j", cluster=cluster)
    tasks = min(len(pending), settings.get("array_parallelism", 16))
    ex.update_parameters(
        timeout_min=settings.get("time_min", 60),
        gpus_per_node=settings.get("gpus_per_task", 0),
        slurm_partition=settings.get("partition"),
        slurm_array_parallelism=tasks,
    )
    shards = [[spec.to_dict() for spec in pending[i::tasks]] for i in range(tasks)]
    jobs = ex.map_array(run_shard, shards, [options] * tasks)
    waiting = dict(zip(jobs, shards, strict=True))
    while waiting:
        for job in [job for job in waiting if job.done()]:
            shard = waiting.pop(job)
            try:
                yield from job.result()
            except Exception as err:  # the array task died: its unfinished runs failed
                keys = [RunSpec(**spec).key for spec in shard]
                store = Store(options.results)
                yield from (
                    Outcome(k, "failed", error=_one_line(err)) for k in keys if not store.done(k)
                )
        time.sleep(0.2 if waiting else 0)


# ------------------------------------------------------------------ the driver


def run_sweep(sweep: protocol.Sweep, options: Options, log=print) -> dict[str, list[Outcome]]:
    """Tune, select, final; then the tables. The outcomes of each phase's pending runs."""
    check(sweep, options)
    store = Store(options.results).create()
    options = replace(options, plugins=sweep.plugins)
    _write_json(options.results / "sweep.json", asdict(sweep))
    centres = _centres(sweep, options, log)
    outcomes, plan = {}, {}
    tune = sweep.tune_specs(centres)
    plan["tune"] = [s.key for s in tune]
    _write_json(options.results / "plan.json", plan)
    outcomes["tune"] = run_phase("tune", tune, options, log)
    missing = [s for s in tune if not store.done(s.key)]
    if missing:  # selecting on part of the grid would be unfair to the schedules it lacks
        log(f"{len(missing)} tuning run(s) failed: the final phase waits until a rerun "
            "completes them")  # fmt: skip
        outcomes["final"] = []
        return outcomes
    selection = protocol.select(_tune_frame(store, tune))
    write_atomic(options.results / "selection.csv", selection.to_csv(index=False).encode())
    final = sweep.final_specs(selection)
    plan["final"] = [s.key for s in final]
    _write_json(options.results / "plan.json", plan)
    outcomes["final"] = run_phase("final", final, options, log)
    records = [r for r in (store.record(s.key) for s in tune + final) if r is not None]
    others = len(list(store.runs.glob("*.json"))) - len(records)
    if others:
        log(f"{others} record(s) in {store.runs} are not part of this sweep (another sweep file "
            "or PROTOCOL_VERSION): left out of the tables")  # fmt: skip
    tidy.write_tables(options.results, records)
    return outcomes


def check(sweep: protocol.Sweep, options: Options) -> None:
    """Bad executor settings and missing data fail here, before anything is written."""
    from benchmark.semantics import check_precision, resolve_device

    if options.executor == "local":  # a Slurm job checks on its own node
        check_precision(sweep.run.get("precision", "fp32"), resolve_device(options.device))
    root = data.data_root(options.root)
    for dataset in dict.fromkeys(get_task(task).dataset for task in sweep.tasks):
        data.check_prepared(data.get(dataset), root)  # else every run would fail alike
    if options.executor not in EXECUTORS:
        raise InputError(f"unknown executor {options.executor!r}; valid: {', '.join(EXECUTORS)}")
    no_sbatch = options.slurm.get("cluster") is None and shutil.which("sbatch") is None
    if options.executor == "slurm" and no_sbatch:
        raise InputError("--executor slurm: no sbatch on PATH; run on the cluster's login node")


def run_phase(phase: str, specs: list[RunSpec], options: Options, log=print) -> list[Outcome]:
    """Run the pending ``specs``, waiting for those another process holds; their outcomes."""
    store = Store(options.results)
    by_key = {s.key: s for s in specs}
    for key in by_key:
        if store.corrupt(key):
            log(f"{phase}: the record of {key} is corrupt (truncated, empty or another schema): "
                "running it again")  # fmt: skip
    pending = [s for s in by_key.values() if options.rerun or not store.done(s.key)]
    log(f"{phase}: {len(by_key)} runs, {len(by_key) - len(pending)} done, {len(pending)} to run")
    finished: list[Outcome] = []
    run, waited = EXECUTORS[options.executor], False
    t0 = time.perf_counter()
    with tqdm(total=len(pending), unit="run", desc=phase, disable=not sys.stderr.isatty()) as bar:
        while pending:  # runs another process holds are only waited for, never resubmitted
            claimed = [s for s in pending if store.claimed(s.key)]
            ready = [s for s in pending if s not in claimed]
            for outcome in run(ready, options) if ready else ():
                if outcome.status == "claimed":  # taken by another process just now
                    claimed.append(by_key[outcome.key])
                    continue
                if outcome.status == "done":  # another process finished it meanwhile
                    bar.update(1)
                    continue
                finished.append(outcome)
                bar.update(1)
                log(_line(phase, len(finished), bar.total, by_key[outcome.key], outcome, t0))
            if claimed:
                if not waited:
                    log(f"{phase}: {len(claimed)} run(s) claimed by another process; waiting")
                waited = True
                time.sleep(POLL_S)
            pending = [s for s in claimed if not store.done(s.key)]  # finished elsewhere: done
            bar.update(len(claimed) - len(pending))
            options = replace(options, rerun=False)
    return finished


def _line(phase, i, n, spec: RunSpec, outcome: Outcome, t0: float) -> str:
    eta = (time.perf_counter() - t0) / i * (n - i)
    what = f"{phase} {spec.task} {spec.schedule} lr {spec.lr:g} seed {spec.seed}"
    result = outcome.error if outcome.status == "failed" else f"dev acc {outcome.val_acc:.4f}"
    return (f"[{i}/{n}] {what}: {outcome.status}, {result} ({outcome.seconds:.1f} s, "
            f"eta {eta / 60:.1f} min)")  # fmt: skip


def _tune_frame(store: Store, tune: list[RunSpec]) -> pd.DataFrame:
    rows = []
    for spec in tune:
        record = store.record(spec.key)
        if record is not None:
            acc = record["metrics"]["val_acc_final"]
            rows.append(asdict(spec) | {"val_acc_final": acc, "status": record["status"]})
    columns = ["task", "schedule", "lr", "seed", "val_acc_final", "status"]
    return pd.DataFrame(rows, columns=columns)


def _centres(sweep: protocol.Sweep, options: Options, log) -> dict[str, float]:
    """Each task's grid centre: its default lr, or the LR range test's suggestion (cached)."""
    if sweep.centre == "task":
        return {task: get_task(task).lr for task in sweep.tasks}
    path = options.results / "centres.json"
    cached = json.loads(path.read_text()) if path.is_file() and not options.rerun else {}
    if set(cached) != set(sweep.tasks):
        from benchmark.lr_find import lr_range_test
        from benchmark.semantics import resolve_device

        device = resolve_device(options.device)
        for task in sweep.tasks:
            spec = sweep.spec(task, "constant", get_task(task).lr, sweep.tune_seeds[0], "tune")
            splits = data.load(get_task(task).dataset, options.root, device)
            cached[task] = float(f"{lr_range_test(spec, splits, device).suggestion:.4g}")
            log(f"lr-find: {task} centre {cached[task]:g}")
        _write_json(path, cached)
    return cached


def _write_json(path: Path, value) -> None:
    write_atomic(path, (json.dumps(value, indent=1) + "\n").encode())


def status(results: Path) -> pd.DataFrame:
    """Per phase: runs done, pending, claimed (running now), failed; and, among the pending,
    those whose record file is corrupt (run again by the next sweep)."""
    plan_path = Path(results) / "plan.json"
    if not plan_path.is_file():
        raise InputError(f"{results}: no sweep has run here (no plan.json)")
    store, rows = Store(results), []
    for phase, keys in json.loads(plan_path.read_text()).items():
        counts = dict.fromkeys(["done", "pending", "claimed", "failed", "corrupt"], 0)
        for key in keys:  # each key in one of done > claimed > failed > pending
            done = store.done(key)
            state = "done" if done else "claimed" if store.claimed(key) else None
            state = state or ("failed" if store.failure(key) is not None else "pending")
            counts[state] += 1
            counts["corrupt"] += not done and store.corrupt(key)
        rows.append((phase, len(keys), *counts.values()))
    columns = ["phase", "runs", "done", "pending", "claimed", "failed", "corrupt"]
    return pd.DataFrame(rows, columns=columns)
