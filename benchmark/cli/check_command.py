"""The command ``check``: a new machine's (or a GPU's) first run (``benchmark/tools/check.py``).

It reads the full sweep, the one whose time it projects, without torch: the stages load torch
in their own processes.
"""

import argparse
from pathlib import Path

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import PRECISIONS
from benchmark.cli import DEVICES, RESULTS, Run, command


def plan_run_steps(sweep) -> dict[str, int]:
    """Each task's run-steps in ``sweep`` before any grid extension: per budget and schedule,
    the grid's lrs x tuning seeds and the final seeds, each run the budget's updates."""
    from benchmark.catalogue.tasks import get_task

    runs = len(sweep.lr_factors) * len(sweep.tune_seeds) + len(sweep.final_seeds)
    steps: dict[str, int] = {}
    for epochs in sweep.budgets:
        for task in sweep.tasks:
            for schedule in sweep.schedules:
                spec = sweep.spec(task, schedule, get_task(task).lr, 0, "tune", epochs)
                steps[task] = steps.get(task, 0) + runs * spec.budget().total_steps
    return steps


@command("check", "check this machine: environment, both engines on every model, speed, and "
         "the full sweep's time here")  # fmt: skip
def check_command(parser: argparse.ArgumentParser) -> Run:
    from benchmark.catalogue.tasks import TASKS

    parser.add_argument(
        "--deadline", type=float, default=600.0,
        help="seconds the whole check may take; each stage gets a share (default: 600)",
    )  # fmt: skip
    parser.add_argument(
        "--out", default=str(RESULTS / "check"),
        help="folder for check.json and check.tar.gz (default: results/check)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU if any")
    parser.add_argument(
        "--precision", choices=PRECISIONS,
        help="default: the full sweep's on CUDA (tf32), fp32 on the CPU",
    )  # fmt: skip
    parser.add_argument(
        "--task", action="append", choices=list(TASKS), dest="tasks", metavar="TASK",
        help="a task to run both engines on (repeat; default: one per model and optimizer)",
    )  # fmt: skip
    parser.add_argument(
        "--runs", type=int, help="runs per group (default: 4 on the CPU, 34 on CUDA)"
    )
    parser.add_argument(
        "--steps", type=int, help="updates per run (default: 2 on the CPU, 20 on CUDA)"
    )
    parser.add_argument("--root", help="data root (default: $SCHEDULE_BENCH_DATA or data/)")

    def run(args: argparse.Namespace) -> int:
        from benchmark.catalogue.requires import check_packages
        from benchmark.catalogue.tasks import representatives
        from benchmark.sweeps import auto, protocol
        from benchmark.tools import check

        if args.deadline <= check.RESERVE_S or min(args.runs or 1, args.steps or 1) < 1:
            raise InputError(f"--deadline must be > {check.RESERVE_S:g}; --runs, --steps >= 1")
        sweep = protocol.load("full")
        tasks = tuple(args.tasks or representatives())
        plan = plan_run_steps(sweep)
        check_packages(  # the full sweep's: the machine is checked for it
            sweep.spec(t, s, TASKS[t].lr, 0, "tune", None)
            for t in sweep.tasks
            for s in sweep.schedules
        )
        settings = check.Settings(
            device=args.device, precision=args.precision,
            sweep_precision=sweep.run.get("precision", "fp32"), tasks=tasks, runs=args.runs,
            steps=args.steps, eval_size=200, threads=sweep.threads, root=args.root,
        )  # fmt: skip
        return check.check(settings, Path(args.out), args.deadline, plan, auto.choose)

    return run
