"""Commands about sweeps: run, status, tables, results (pack and merge)."""

import argparse
import shlex
import sys
import time
from pathlib import Path

from benchmark import cli
from benchmark.catalogue.errors import InputError
from benchmark.cli import DEVICES, Run, command, output_file, parse_set, results_folder
from benchmark.engines.registry import CHOICES
from benchmark.sweeps.deadline import STOPPED


@command("run", "run a sweep: tune each schedule's lr, then the final seeds; then the tables")
def run_command(parser: argparse.ArgumentParser) -> Run:
    from benchmark.sweeps import executors

    parser.add_argument(
        "--sweep", default="quick", help="smoke, quick (default), full, or FILE.toml"
    )
    parser.add_argument("--results", help="results folder (default: results/<sweep>)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override the sweep file: run.epochs=2, final.seeds=[0,1], tasks=[\"mnist_mlp\"]",
    )  # fmt: skip
    parser.add_argument("--rerun", action="store_true", help="run finished runs again")
    parser.add_argument(
        "--deadline", type=float, metavar="SECONDS",
        help="stop starting groups that would not end within SECONDS, finish those running, "
        f"write the tables, exit {STOPPED}; run again to go on (default: the sweep file's)",
    )  # fmt: skip
    parser.add_argument(
        "--report", action="store_true", help="then render the report (python -m report)"
    )
    parser.add_argument("--executor", default="local", choices=sorted(executors.EXECUTORS))
    parser.add_argument(
        "--engine", choices=CHOICES,
        help="single (one run at a time), batched (runs of a task at once), or auto: batched "
        "on CUDA, and on the CPU for the models measured faster so (default: the sweep file's, "
        "else auto)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="local CPU worker processes (default: cores)")
    parser.add_argument(
        "--threads", type=int,
        help="torch threads of every run, whatever the workers (default: the sweep file's, else "
        "1); part of a record's last bits, so keep it when resuming",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", choices=DEVICES, help="default: auto")
    parser.add_argument("--root", help="data root (default: $SCHEDULE_BENCH_DATA or data/)")
    parser.add_argument("--slurm-partition", help="Slurm partition")
    parser.add_argument("--slurm-gpus-per-task", type=int, default=0, help="GPUs per array task")
    parser.add_argument("--slurm-time", type=int, default=60, help="minutes per array task")
    parser.add_argument("--array-parallelism", type=int, default=16, help="Slurm array tasks")

    def run(args: argparse.Namespace) -> int:
        from benchmark.sweeps import protocol

        plan = protocol.load(args.sweep, [parse_set(item) for item in args.set])
        for flag in ("workers", "threads"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise InputError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
        if args.deadline is not None and not 0 <= args.deadline < float("inf"):
            raise InputError(f"--deadline must be a number of seconds >= 0, got {args.deadline}")
        results = results_folder(args.results or cli.RESULTS / plan.name)
        from benchmark.sweeps import runner as sweep  # pandas: after the checks that need none

        options = sweep.Options(
            results=results,
            executor=args.executor, workers=args.workers, threads=args.threads, device=args.device,
            engine=args.engine, root=args.root, rerun=args.rerun,
            deadline=None if args.deadline is None else time.time() + args.deadline,
            slurm={"partition": args.slurm_partition, "gpus_per_task": args.slurm_gpus_per_task,
                   "time_min": args.slurm_time, "array_parallelism": args.array_parallelism},
        )  # fmt: skip
        resume = shlex.join(
            ["python", "-m", "benchmark", *(a for a in sys.argv[1:] if a != "--rerun")]
        )  # an interrupted --rerun resumes as one (runner.py, rerun.json)
        try:
            outcomes = sweep.run_sweep(plan, options)
        except KeyboardInterrupt:
            print(f"interrupted: {_written(results)}; resume with: {resume}", file=sys.stderr)
            return 130
        except OSError as err:  # e.g. the disk filled up while writing the tables
            print(f"error: {err}", file=sys.stderr)
            return 1
        failed = [o for phase in outcomes.values() for o in phase if o.status == "failed"]
        print(f"results: {options.results} (runs.csv, curves.csv, selection.csv)")
        alone = {o.fallback for phase in outcomes.values() for o in phase if o.fallback}
        for reason in sorted(alone):  # a batched sweep that trained runs one at a time
            n = sum(o.fallback == reason for phase in outcomes.values() for o in phase)
            print(f"warning: {n} run(s) trained one at a time, not batched: {reason}",
                  file=sys.stderr)  # fmt: skip
        for outcome in failed:
            print(f"failed: {outcome.key}: {outcome.error}", file=sys.stderr)
        if failed:
            return 1
        if any(o.status == "deferred" for phase in outcomes.values() for o in phase):
            print(f"stopped at the deadline: {_written(results)}; go on with: {resume}",
                  file=sys.stderr)  # fmt: skip
            return STOPPED
        ran = sum(len(phase) for phase in outcomes.values())
        if args.report and not ran and (results / "report" / "index.html").is_file():
            print(f"report: up to date (no run changed); `python -m report {results}` redraws it")
        elif args.report:
            from report.__main__ import main as report

            return report([str(options.results)])
        return 0

    return run


def _written(results: Path) -> str:
    """What an interrupted sweep kept: the runs with a record, per phase."""
    from benchmark.sweeps import runner as sweep

    try:
        counts = sweep.status(results).groupby("phase", sort=False)[["done", "runs"]].sum()
    except InputError:  # stopped before its plan was written
        return "no run had started"
    done = ", ".join(f"{r.done} of {r.runs} {phase} runs" for phase, r in counts.iterrows())
    return f"records kept: {done}"


@command("status", "count the runs of a results folder: done, pending, claimed, failed")
def status_command(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--results", help="a results folder (default: results/quick)")

    def run(args: argparse.Namespace) -> None:
        from benchmark.sweeps import runner as sweep

        print(sweep.status(Path(args.results or cli.RESULTS / "quick")).to_string(index=False))

    return run


@command("tables", "rebuild runs.csv and curves.csv of a results folder from its records")
def tables_command(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("results", metavar="DIR", help="a results folder (with runs/)")

    def run(args: argparse.Namespace) -> None:
        from benchmark.records import tidy
        from benchmark.sweeps import runner as sweep

        runs = Path(args.results) / "runs"
        if not runs.is_dir():
            raise InputError(f"{args.results}: no runs/ folder")
        records, bad = tidy.read_records(runs)
        for path in bad:
            print(f"skipped {path}: truncated or not a run record", file=sys.stderr)
        if (Path(args.results) / "plan.json").is_file():  # the sweep's runs, as `run` tabulates
            planned = sweep.plan(Path(args.results))
            keys = {k for phase in ("tune", "final") for k in planned.get(phase, [])}
            others = [r for r in records if r["key"] not in keys]
            records = [r for r in records if r["key"] in keys]
            if others:
                print(f"left out {len(others)} record(s) not in plan.json (another sweep file "
                      "or PROTOCOL_VERSION)", file=sys.stderr)  # fmt: skip
        for path in tidy.write_tables(Path(args.results), records):
            print(path)

    return run


@command("results", "move results between machines: pack a results folder, merge packs")
def results_command(parser: argparse.ArgumentParser) -> Run:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pack = actions.add_parser("pack", help="a results folder's sweep, plan and records as one "
                              "compressed file")  # fmt: skip
    pack.add_argument("results", metavar="DIR", help="a results folder")
    pack.add_argument("archive", metavar="ARCHIVE", help="the file to write (.tar.gz)")
    merge = actions.add_parser(
        "merge", help="packs of one sweep into one results folder: each run once; records of "
        "one run that disagree are kept out",
    )  # fmt: skip
    merge.add_argument("archives", nargs="+", metavar="ARCHIVE", help="packs (results pack)")
    merge.add_argument("--into", required=True, metavar="DIR", help="the results folder")

    def run(args: argparse.Namespace) -> int:
        from benchmark.sweeps import travel

        if args.action == "pack":
            n = travel.pack(Path(args.results), output_file("ARCHIVE", args.archive, ".gz"))
            print(f"packed {n} records of {args.results} into {args.archive}")
            return 0
        into = results_folder(args.into)
        merged = travel.merge([Path(a) for a in args.archives], into)
        print(f"merged into {into}: {len(merged.added)} records added, {merged.kept} already "
              f"there; {_written(into)}")  # fmt: skip
        for key, parts in merged.conflicts.items():
            print(f"conflict: {key}: the records of {', '.join(parts)} differ in their metrics; "
                  "kept out", file=sys.stderr)  # fmt: skip
        return 1 if merged.conflicts else 0

    return run
