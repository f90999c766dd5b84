"""Running a sweep: each phase's pending runs on an executor, resumable and crash-safe.

``run_sweep`` expands the protocol (``protocol.py``) phase by phase: tune, select,
final. Runs whose record exists are skipped (``rerun`` runs them again: it leaves a marker,
``rerun.json``, until the sweep completes, so an interrupted rerun resumes as a rerun and
runs again every record older than its start); each run is claimed
before it starts (``store.py``), so two runners, or two Slurm array tasks, on one results
folder never run the same run; a runner that finds runs claimed elsewhere waits for them. A run
that crashes is written to ``failed/`` and the sweep goes on; ``runs.csv`` and ``curves.csv``
are rebuilt from the records at the end. Where and in which groups the runs train is
``executors.py``. A deadline (``deadline.py``) defers the groups that would not end in time:
then the sweep stops after the phase, with the tables of what is done.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from benchmark.catalogue import datasets
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.requires import check_packages
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.registry import CHOICES as ENGINES
from benchmark.records.atomic import write_atomic
from benchmark.sweeps import auto, protocol
from benchmark.sweeps.deadline import Costs, Deadline
from benchmark.sweeps.executors import EXECUTORS, Options, Outcome, uses_cuda
from benchmark.sweeps.store import Store

if TYPE_CHECKING:  # pandas loads where first used: the first runs start ~2.5 s sooner
    import pandas as pd

POLL_S = 5.0  # how often a runner looks again at runs claimed by another process


def run_sweep(sweep: protocol.Sweep, options: Options, log=print) -> dict[str, list[Outcome]]:
    """Tune (extending the grid past an edge the choice sits on), select, final; then the
    tables. The outcomes of each phase's pending runs (those ``deferred`` by the deadline
    included: then the sweep stopped at its deadline)."""
    at = options.deadline  # else the sweep file's, from now
    if at is None and sweep.deadline is not None:
        at = time.time() + sweep.deadline
    options = replace(
        options, plugins=sweep.plugins, engine=options.engine or sweep.engine,
        threads=options.threads or sweep.threads, deadline=at, fallback=sweep.fallback,
        cuda_graphs=sweep.cuda_graphs,
    )  # fmt: skip
    check(sweep, options)
    if options.engine == "auto" and options.batched is None:
        choice = auto.choose(_device_name(options), uses_cuda(options))
        log(auto.describe(choice))
        options = replace(options, batched=choice.batched)
    deadline = Deadline(options.deadline)
    store = Store(options.results).create()
    options = replace(options, since=_rerun_since(options))
    _write_json(options.results / "sweep.json", asdict(sweep))
    centres = _centres(sweep, options, log)
    outcomes, planned = {}, {}
    planned["extensions"] = []  # the lrs tried past the grid's edges, and which edge
    tune, selection = _tune(sweep, centres, options, outcomes, planned, log, deadline)
    if selection is None:  # selecting on part of the grid would be unfair to the schedules it lacks
        missing = sum(not store.done(key) for key in planned["tune"])
        why = "were deferred by the deadline" if deadline.reached else "failed"
        log(f"{missing} tuning run(s) {why}: the final phase waits until a run completes them")
        outcomes["final"] = []
        _tables(store, tune, log)
        return outcomes
    write_atomic(options.results / "selection.csv", selection.to_csv(index=False).encode())
    final = sweep.final_specs(selection)
    planned["final"] = [s.key for s in final]
    planned["epochs"] |= {s.key: s.epochs for s in final}
    _write_json(options.results / "plan.json", planned)
    outcomes["final"] = run_phase("final", final, options, log, deadline)
    _tables(store, tune + final, log)
    if all(store.done(s.key) for s in tune + final):  # the rerun, if one, is complete
        (options.results / RERUN).unlink(missing_ok=True)
    return outcomes


def _tables(store: Store, specs: list[RunSpec], log) -> None:
    """runs.csv and curves.csv of the finished runs of ``specs``."""
    from benchmark.records import tidy

    records = [r for r in (store.record(s.key) for s in specs) if r is not None]
    others = len(list(store.runs.glob("*.json"))) - len(records)
    if others:
        log(f"{others} record(s) in {store.runs} are not part of this sweep (another sweep file "
            "or PROTOCOL_VERSION): left out of the tables")  # fmt: skip
    tidy.write_tables(store.root, records)


def _tune(
    sweep, centres, options, outcomes, planned, log, deadline
) -> tuple[list, pd.DataFrame | None]:
    """Phase tune, then a phase per round of grid extension (``tune+1``, ...) while a
    choice sits at an edge of the lrs tried (``protocol.select``); every round follows from
    the records, so a resumed sweep takes the same rounds. The tuning specs and the
    selection (None when a tuning run failed or the deadline deferred one)."""
    store, chance = Store(options.results), {}
    for task in sweep.tasks:
        chance[task] = 1 / datasets.get(get_task(task).dataset).classes
    grids = {task: sweep.grid(centres[task]) for task in sweep.tasks}
    specs, new, name = [], sweep.tune_specs(centres), "tune"
    for round_ in range(sweep.extend + 1):
        specs += new
        planned["tune"] = [s.key for s in specs]
        planned["epochs"] = planned.get("epochs", {}) | {s.key: s.epochs for s in new}
        _write_json(options.results / "plan.json", planned)
        outcomes[name] = run_phase(name, new, options, log, deadline)
        if any(not store.done(s.key) for s in specs):
            return specs, None
        selection = protocol.select(_tune_frame(store, specs), chance, grids)
        new, name = sweep.extension_specs(selection), f"tune+{round_ + 1}"
        if not new:
            break
        planned["extensions"] += [
            {"round": round_ + 1, "epochs": s.epochs, "task": s.task, "schedule": s.schedule,
             "lr": s.lr, "past": "high" if s.lr > max(grids[s.task]) else "low"}
            for s in new[:: len(sweep.tune_seeds)]
        ]  # fmt: skip
        log(f"{name}: {len(new) // len(sweep.tune_seeds)} choice(s) at an edge of the lrs "
            "tried: trying the next lr outward")  # fmt: skip
    return specs, selection


RERUN = "rerun.json"  # {"since": time}: a rerun in progress (records older are run again)


def _rerun_since(options: Options) -> float | None:
    """When the rerun in progress began: now for ``--rerun`` (marked in the folder), the
    marker's time when resuming an interrupted one, else None."""
    path = options.results / RERUN
    if options.rerun:
        since = time.time()
        _write_json(path, {"since": since})
        return since
    return json.loads(path.read_text())["since"] if path.is_file() else None


def _device_name(options: Options) -> str | None:
    """The model name of the device this sweep's runs train on; None for a Slurm job's node."""
    if options.executor == "slurm":
        return None
    from benchmark.engines.device import resolve_device
    from benchmark.engines.provenance import device_name

    return device_name(resolve_device(options.device))


def check(sweep: protocol.Sweep, options: Options) -> None:
    """Bad executor settings, missing packages and missing data fail here, before anything
    is written."""
    from benchmark.engines.device import check_precision, resolve_device

    check_packages(  # what every task x schedule imports; the lr and budget change nothing
        sweep.spec(task, schedule, get_task(task).lr, sweep.tune_seeds[0], "tune", None)
        for task in sweep.tasks
        for schedule in sweep.schedules
    )
    if options.executor == "local":  # a Slurm job checks on its own node
        precision, device = sweep.run.get("precision", "fp32"), resolve_device(options.device)
        try:
            check_precision(precision, device)
        except InputError as err:  # full.toml's tf32, say, on the CPU
            raise InputError(f"{err} (sweep {sweep.name}: --set run.precision=fp32)") from None
    root = data.data_root(options.root)
    for dataset in dict.fromkeys(get_task(task).dataset for task in sweep.tasks):
        data.check_prepared(datasets.get(dataset), root)  # else every run would fail alike
    if options.executor not in EXECUTORS:
        raise InputError(f"unknown executor {options.executor!r}; valid: {', '.join(EXECUTORS)}")
    if options.engine not in ENGINES:
        raise InputError(f"unknown engine {options.engine!r}; valid: {', '.join(ENGINES)}")
    if options.executor == "slurm" and importlib.util.find_spec("submitit") is None:
        raise InputError("--executor slurm needs the package submitit: pip install "
                         "'schedule-bench[slurm]'")  # fmt: skip
    if options.executor == "slurm" and options.slurm.get("cluster") is None:
        login = "run on the cluster's login node"
        if shutil.which("sbatch") is None:
            raise InputError(f"--executor slurm: no sbatch on PATH; {login}")
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, check=False)
        if ping.returncode != 0:  # installed, but no controller (no slurm.conf, or down)
            raise InputError(f"--executor slurm: no Slurm controller answers; {login}")


def run_phase(
    phase: str, specs: list[RunSpec], options: Options, log=print, deadline: Deadline | None = None
) -> list[Outcome]:
    """Run the pending ``specs``, waiting for those another process holds (until the
    deadline); their outcomes."""
    store, deadline = Store(options.results), deadline or Deadline(options.deadline)
    by_key = {s.key: s for s in specs}
    pending = []
    for spec in by_key.values():
        record = store.record(spec.key)
        if record is None and store.corrupt(spec.key):
            log(f"{phase}: the record of {spec.key} is corrupt (truncated, empty or another "
                "schema): running it again")  # fmt: skip
        if record is None or not store.done(spec.key, options.since):
            pending.append(spec)
        elif options.deadline is not None:  # an earlier sitting's cost: what the deadline needs
            deadline.costs.add(spec, record["timing"]["train_s"] + record["timing"]["eval_s"])
    log(f"{phase}: {len(by_key)} runs, {len(by_key) - len(pending)} done, {len(pending)} to run"
        + ("; starting workers, loading data ..." if pending else ""))  # fmt: skip
    finished: list[Outcome] = []
    run, waited, eta = EXECUTORS[options.executor], False, Eta(pending, deadline.costs)
    with tqdm(total=len(pending), unit="run", desc=phase, disable=not sys.stderr.isatty()) as bar:
        while pending:  # runs another process holds are only waited for, never resubmitted
            claimed = [s for s in pending if store.claimed(s.key)]
            ready = [s for s in pending if s not in claimed]
            for outcome in run(specs, ready, options, deadline) if ready else ():
                if outcome.status == "claimed":  # taken by another process just now
                    claimed.append(by_key[outcome.key])
                    continue
                if outcome.status in ("done", "deferred"):  # finished elsewhere; or not begun
                    bar.update(outcome.status == "done")
                    finished += [outcome] if outcome.status == "deferred" else []
                    continue
                finished.append(outcome)
                bar.update(1)
                spec = by_key[outcome.key]
                log(_line(phase, len(finished), bar.total, spec, outcome, eta.after(spec, outcome)))
            if claimed and deadline.passed():  # their records come; this sitting is over
                deadline.reached = True
                break
            if claimed:
                if not waited:
                    log(f"{phase}: {len(claimed)} run(s) claimed by another process; waiting")
                waited = True
                time.sleep(POLL_S)
            pending = [s for s in claimed if not store.done(s.key)]  # finished elsewhere: done
            bar.update(len(claimed) - len(pending))
    return finished


class Eta:
    """Time left in a phase, from the runs finished so far (start-up excluded).

    Runs of one task and budget cost alike, others not (a batched group finishes many cheap
    runs at once): each remaining run is expected to cost what ``Costs`` says (the deadline's
    costs, shared); the work is shared as it has been: the seconds finished since the first
    result over the wall time since then.
    """

    def __init__(self, pending: list[RunSpec], costs: Costs):
        self.left = {s.key: s for s in pending}
        self.costs = costs
        self.first = self.done_since_first = None

    def after(self, spec: RunSpec, outcome: Outcome) -> float | None:
        """Record ``outcome``; the seconds left, or None before there is a rate."""
        self.left.pop(spec.key, None)
        self.costs.add(spec, outcome.seconds)
        now = time.perf_counter()
        if self.first is None:
            self.first, self.done_since_first = now, 0.0
            return None
        self.done_since_first += outcome.seconds
        if now <= self.first or not self.done_since_first or not self.left:
            return None
        expected = sum(self.costs.expected(s.task, s.epochs) for s in self.left.values())
        return expected / (self.done_since_first / (now - self.first))


def _line(phase, i, n, spec: RunSpec, outcome: Outcome, left: float | None) -> str:
    eta = "" if left is None else f", eta {left / 60:.1f} min"
    what = f"{phase} {spec.task} {spec.epochs} ep {spec.schedule} lr {spec.lr:g} seed {spec.seed}"
    result = outcome.error if outcome.status == "failed" else f"dev acc {outcome.val_acc:.4f}"
    result += f"; warning: trained one at a time ({outcome.fallback})" if outcome.fallback else ""
    return f"[{i}/{n}] {what}: {outcome.status}, {result} ({outcome.seconds:.1f} s{eta})"


def _tune_frame(store: Store, tune: list[RunSpec]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for spec in tune:
        record = store.record(spec.key)
        if record is not None:
            acc = record["metrics"]["val_acc_final"]
            rows.append(asdict(spec) | {"val_acc_final": acc, "status": record["status"]})
    columns = ["epochs", "task", "schedule", "lr", "seed", "val_acc_final", "status"]
    return pd.DataFrame(rows, columns=columns)


def _centres(sweep: protocol.Sweep, options: Options, log) -> dict[str, float]:
    """Each task's grid centre: its default lr, or the LR range test's suggestion (cached)."""
    if sweep.centre == "task":
        return {task: get_task(task).lr for task in sweep.tasks}
    path = options.results / "centres.json"
    fresh = path.is_file() and (options.since is None or path.stat().st_mtime >= options.since)
    cached = json.loads(path.read_text()) if fresh else {}
    if set(cached) != set(sweep.tasks):
        from benchmark.engines.device import resolve_device
        from benchmark.tools.lr_find import lr_range_test

        device = resolve_device(options.device)
        for task in sweep.tasks:
            spec = sweep.spec(
                task, "constant", get_task(task).lr, sweep.tune_seeds[0], "tune", sweep.budgets[0]
            )
            splits = data.load(get_task(task).dataset, options.root, device)
            cached[task] = float(f"{lr_range_test(spec, splits, device).suggestion:.4g}")
            log(f"lr-find: {task} centre {cached[task]:g}")
        _write_json(path, cached)
    return cached


def _write_json(path: Path, value) -> None:
    write_atomic(path, (json.dumps(value, indent=1) + "\n").encode())


def plan(results: Path) -> dict:
    """The results folder's plan.json: each phase's keys (tune: the grid extensions' too),
    each key's budget (epochs), and the extensions (round, problem, lr, the edge passed)."""
    path = Path(results) / "plan.json"
    if not path.is_file():
        raise InputError(f"{results}: no sweep has run here (no plan.json)")
    return json.loads(path.read_text())


def status(results: Path) -> pd.DataFrame:
    """Per phase and budget: runs done, pending, claimed (running now), failed; and, among the
    pending, those whose record file is corrupt (run again by the next sweep)."""
    import pandas as pd

    planned, store, rows = plan(results), Store(results), []
    epochs = planned.pop("epochs", {})  # absent in folders of older sweeps
    for phase in ("tune", "final"):
        keys = planned.get(phase, [])
        for budget in dict.fromkeys(epochs.get(k) for k in keys):
            counts = dict.fromkeys(["done", "pending", "claimed", "failed", "corrupt"], 0)
            mine = [k for k in keys if epochs.get(k) == budget]
            for key in mine:  # each key in one of done > claimed > failed > pending
                done = store.done(key)
                state = "done" if done else "claimed" if store.claimed(key) else None
                state = state or ("failed" if store.failure(key) is not None else "pending")
                counts[state] += 1
                counts["corrupt"] += not done and store.corrupt(key)
            rows.append((phase, budget, len(mine), *counts.values()))
    columns = ["phase", "epochs", "runs", "done", "pending", "claimed", "failed", "corrupt"]
    return pd.DataFrame(rows, columns=columns).astype({"epochs": "Int64"})
