"""``python -m benchmark check``: can this machine run the benchmark, how well, and how long
would the full sweep take here?

Stages, each in its own process (``stages.py``, forked from a server that imported torch
once) under a time cap, so that a hang costs only its stage: ``environment`` (versions,
device, free memory, precision flags), then one per task (by default one per model and
optimizer, ``tasks.representatives``): both engines on a sweep-like group, their agreement,
time, operations and launches per step, and throughput (the steps uncaptured: a sweep's
``cuda_graphs`` is not applied, nor in the projection). Each stage may take an equal share
of the time left before ``deadline`` (less a reserve for the last writes), so a fast stage
leaves its time to the later ones; a stage past its cap is killed and recorded as
timed out, and the check goes on. After every stage ``check.json`` and ``check.tar.gz``
(everything under the output folder: the JSON, each stage's figures and log) are written
again, so a check cut short still leaves them.

The projection: the full sweep's runs x steps of each task (its plan, before any grid
extension; given by the caller, which reads the sweep), times the seconds per run-step
measured here for the task of the same model and optimizer, with the engine ``auto`` picks
on this device, shared by the local executor's workers (one per core on the CPU, one process
on a GPU). Training only: evaluation and start-up come on top.

Exit status 0 when every stage passed and the engines agree, else 1 with one line saying why
(the environment's failure: this machine cannot run the benchmark).
"""

import io
import json
import multiprocessing
import os
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from benchmark.catalogue.tasks import get_task
from benchmark.records.atomic import write_atomic

RESERVE_S = 3.0  # kept back from the deadline for the last writes and the summary
# how far the engines' losses may differ (relative): in fp32 as the equivalence tests hold them
# (float32 sums in another order); in tf32 and bf16 each product rounds too, and the sums in
# other orders part the engines' paths within a few updates (the CPU imitation of
# tests/test_precision.py: final losses 3e-3 apart from fp32's after 20 updates)
AGREE = {"fp32": 1e-4, "tf32": 1e-2, "bf16": 3e-2}


# runs per group and updates per run where --runs and --steps do not say: a group a tenth of
# the full sweep's 170 on a GPU, few on the CPU (a check keeps to minutes)
SIZES = {"cpu": (4, 2), "cuda": (34, 20)}


@dataclass(frozen=True)
class Settings:
    """What every stage runs with (passed to each as JSON); the environment stage resolves
    the device, the precision and the sizes the later stages use."""

    device: str  # auto, cpu or cuda
    precision: str | None  # None: ``sweep_precision`` on CUDA, fp32 on the CPU
    sweep_precision: str  # the full sweep's
    tasks: tuple[str, ...]
    runs: int | None  # runs in each task's group; None: SIZES
    steps: int | None  # updates per run; None: SIZES
    eval_size: int
    threads: int  # torch threads: the sweep's (on the CPU, one per worker process)
    root: str | None = None


# each stage is a process forked from one server that imported torch once (seconds a stage on
# a busy 2-core machine), never from this process, which may hold a GPU's state
SERVER = multiprocessing.get_context("forkserver")
SERVER.set_forkserver_preload(["benchmark.tools.stages"])


def _stage(stage: str, settings: dict, figures: str, log: str) -> None:
    """A stage's process: its output and any traceback to ``log``, then the stage."""
    sink = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    from benchmark.tools import stages

    stages.main(stage, settings, Path(figures))


def run_stage(stage: str, settings: Settings, out: Path, cap: float) -> dict:
    """Run ``stage`` in a process of its own, killed after ``cap`` seconds: its figures and
    ``status`` (ok, failed with the last line of its log, or timed out)."""
    (out / "stages").mkdir(parents=True, exist_ok=True)
    figures, log = out / "stages" / f"{stage}.json", out / "stages" / f"{stage}.log"
    figures.unlink(missing_ok=True)
    process = SERVER.Process(target=_stage, args=(stage, asdict(settings), str(figures), str(log)))
    t0 = time.perf_counter()
    process.start()
    process.join(cap)
    if process.is_alive():
        process.kill()
        process.join()
        return {"status": "timed out", "cap_s": cap, "seconds": time.perf_counter() - t0}
    seconds = time.perf_counter() - t0
    if process.exitcode != 0 or not figures.is_file():
        lines = log.read_text().strip().splitlines() or [f"exit status {process.exitcode}"]
        return {"status": "failed", "error": lines[-1], "cap_s": cap, "seconds": seconds}
    return {"status": "ok", "cap_s": cap, "seconds": seconds, **json.loads(figures.read_text())}


def projection(report: dict, plan: dict[str, int], batched: tuple[str, ...]) -> dict:
    """The full sweep's training time here: each task's run-steps (``plan``) times the
    seconds per run-step of the measured task of its model and optimizer, in the engine
    ``auto`` picks (``batched``: its models), over the workers."""
    env = report["stages"].get("environment", {})
    workers = 1 if env.get("device_type") == "cuda" else env.get("cpu_cores") or 1
    measured = {
        (get_task(t).model, get_task(t).optimizer): figures
        for t, figures in report["stages"].items()
        if t != "environment" and figures["status"] == "ok"
    }
    tasks, total = {}, 0.0
    for task, run_steps in plan.items():
        t = get_task(task)
        figures = measured.get((t.model, t.optimizer))
        if figures is None:
            tasks[task] = {"run_steps": run_steps, "seconds": None}
            continue
        engine = "batched" if t.model in batched else "single"
        seconds = run_steps * figures[engine]["run_step_ms"] / 1000 / workers
        tasks[task] = {"run_steps": run_steps, "engine": engine, "seconds": seconds}
        total += seconds
    complete = all(v["seconds"] is not None for v in tasks.values())
    return {"workers": workers, "tasks": tasks, "hours": total / 3600 if complete else None}


def verdict(report: dict) -> str | None:
    """Why the check did not pass, in one line; None when it did."""
    stages = dict(report["stages"])
    env = stages.pop("environment")
    if env["status"] != "ok":
        why = f": {env['error']}" if "error" in env else ""
        return f"this machine cannot run the benchmark: environment {env['status']}{why}"
    limit, bad = AGREE[env["precision"]], []
    for task, s in stages.items():
        if s["status"] != "ok":
            bad.append(f"{task} {s['status']}" + (f": {s['error']}" if "error" in s else ""))
        elif s["agreement"]["loss_rel"] > limit or not s["agreement"]["same_steps_and_status"]:
            bad.append(f"{task}: the engines disagree (losses {s['agreement']['loss_rel']:.1e} "
                       f"relative, limit {limit:g})")  # fmt: skip
    return "; ".join(bad) or None


def write(out: Path, report: dict) -> None:
    """``check.json`` and ``check.tar.gz`` (every file under ``out`` but the archive),
    each written atomically."""
    write_atomic(out / "check.json", (json.dumps(report, indent=1) + "\n").encode())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != ARCHIVE):
            archive.add(path, arcname=str(path.relative_to(out)))
    write_atomic(out / ARCHIVE, buffer.getvalue())


ARCHIVE = "check.tar.gz"


def check(
    settings: Settings, out: Path, deadline: float, plan: dict[str, int], choose, log=print
) -> int:
    """Run every stage within ``deadline`` seconds, writing ``out`` after each; the exit
    status. ``plan``: the full sweep's run-steps per task; ``choose(device, cuda)``: the
    models engine auto trains batched on that device, and from what evidence."""
    end = time.monotonic() + deadline - RESERVE_S
    out.mkdir(parents=True, exist_ok=True)
    report = {"deadline_s": deadline, "started": time.strftime("%FT%T%z"), "settings": None,
              "auto": None, "stages": {}, "projection": None}  # fmt: skip
    stages = ["environment", *settings.tasks]
    for i, stage in enumerate(stages):
        cap = max(end - time.monotonic(), 0.1) / (len(stages) - i)
        report["stages"][stage] = result = run_stage(stage, settings, out, cap)
        log(line(stage, result))
        if stage == "environment":
            if result["status"] != "ok":
                break  # nothing else can run
            settings = resolved(settings, result)
            batched, source = choose(result["device"], settings.device == "cuda")
            report["settings"], report["auto"] = (
                asdict(settings),
                {"batched": batched, "source": source},
            )
        report["projection"] = projection(report, plan, report["auto"]["batched"])
        write(out, report)
    report["verdict"] = verdict(report)
    write(out, report)
    log(summary(report))
    log(f"check: wrote {out / 'check.json'} and {out / ARCHIVE}")
    if report["verdict"]:
        print(f"check: {report['verdict']}", file=sys.stderr)
    return 1 if report["verdict"] else 0


def resolved(settings: Settings, env: dict) -> Settings:
    """``settings`` with the device, precision and sizes the environment stage found."""
    runs, steps = SIZES[env["device_type"]]
    return replace(
        settings, device=env["device_type"], precision=env["precision"],
        runs=settings.runs or runs, steps=settings.steps or steps,
    )  # fmt: skip


def line(stage: str, r: dict) -> str:
    """One stage's result in one line."""
    head = f"check: {stage} {r['status']} ({r['seconds']:.1f} s of {r['cap_s']:.0f} s)"
    if r["status"] != "ok":
        return head + (f": {r['error']}" if "error" in r else "")
    if stage == "environment":
        v, f = r["versions"], r["flags"]
        return (f"{head}: Python {v['python']}, torch {v['torch']}, CUDA {v['cuda']}; "
                f"{r['device']} ({r['device_type']}, {r['cpu_cores']} cores), free memory "
                f"{r['free_memory_gib']:.1f} of {r['total_memory_gib']:.1f} GiB, matmul "
                f"{r['matmul_gflops']:.0f} GFLOP/s; precision {r['precision']} (tf32 matmul "
                f"{f['tf32_matmul']}, cudnn {f['tf32_cudnn']})")  # fmt: skip
    a, s, b = r["agreement"], r["single"], r["batched"]
    return (f"{head}: R = {r['runs']}, {r['steps']} steps; engines agree to {a['loss_rel']:.1e} "
            f"(losses, relative), {a['acc_abs']:.4f} (accuracy); per run-step single "
            f"{s['run_step_ms']:.2f} ms ({s['launches_per_run_step']:.0f} launches), batched "
            f"{b['run_step_ms']:.2f} ms ({b['launches_per_group_step']:.0f} launches per step "
            f"of {b['ops_runs']} runs); "
            f"run-samples/s single {s['run_samples_per_s']:,.0f}, batched "
            f"{b['run_samples_per_s']:,.0f}")  # fmt: skip


def summary(report: dict) -> str:
    """The projection in one line, and what it leaves out."""
    p = report["projection"]
    if p is None:
        return "check: no projection (the environment stage did not pass)"
    per_task = ", ".join(f"{t} {v['seconds'] / 3600:.2f} h ({v['engine']})"
                         if v["seconds"] is not None else f"{t} not measured"
                         for t, v in p["tasks"].items())  # fmt: skip
    hours = "incomplete" if p["hours"] is None else f"{p['hours']:.2f} h"
    return (
        f"check: full sweep here, training only: {hours} over {p['workers']} worker(s): "
        f"{per_task}; auto: {report['auto']['source']}"
    )
