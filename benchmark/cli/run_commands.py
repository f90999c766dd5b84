"""Commands about data and single runs: data, schedule, train, lr-find, perf."""

import argparse
import json
import sys
from pathlib import Path

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.requires import check_packages
from benchmark.catalogue.spec import PRECISIONS
from benchmark.cli import DEVICES, Run, command, output_file, parse_set


@command("data", "acquire and verify MNIST / Fashion-MNIST under the data root")
def data_command(parser: argparse.ArgumentParser) -> Run:
    from benchmark.catalogue import datasets
    from benchmark.data import datasets as data

    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"datasets to prepare (default: all of {', '.join(datasets.DATASETS)})",
    )
    parser.add_argument(
        "--root",
        type=str,
        default=None,
        help=f"data root (default: ${data.ROOT_ENV} or {data.DEFAULT_ROOT})",
    )

    def run(args: argparse.Namespace) -> None:
        root = data.data_root(args.root)
        for name in args.names or list(datasets.DATASETS):
            data.prepare(name, root)

    return run


@command("schedule", "list the learning-rate schedules, or print or plot one for a budget")
def schedule_command(parser: argparse.ArgumentParser) -> Run:
    from benchmark.catalogue import schedules

    parser.add_argument("name", nargs="?", metavar="NAME", help="a schedule, or module:function")
    parser.add_argument("--list", action="store_true", help="list every schedule and its defaults")
    parser.add_argument("--lr", type=float, default=0.1, help="the run's peak lr (default: 0.1)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=100, help="optimizer steps per epoch (default: 100)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a schedule parameter, VALUE a TOML literal: milestones=[3,6], mode=triangular2",
    )
    parser.add_argument(
        "--csv",
        action="store_true",
        help="print step,epoch,lr[,momentum]: row k holds the values of the k-th update (from 0)",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="write a plot of the lr to FILE.png")
    parser.add_argument(
        "--gallery",
        metavar="FILE.png",
        help="write every schedule at its defaults (lr 0.1, 10 epochs of 100 steps) to FILE.png",
    )

    def run(args: argparse.Namespace) -> None:
        from benchmark.tools import gallery

        if gallery_png := output_file("--gallery", args.gallery, ".png"):
            gallery.gallery_figure().savefig(gallery_png)
            print(f"gallery: {gallery_png}")
            return
        if args.list or args.name is None:
            print(gallery.listing())
            return
        params = dict(parse_set(item) for item in args.set)
        budget = schedules.Budget.from_epochs(args.epochs, args.steps_per_epoch)
        seq = schedules.sequences(args.name, args.lr, budget, params)
        plot = output_file("--plot", args.plot, ".png")
        if plot:
            gallery.schedule_figure(args.name, seq, budget).savefig(plot)
            print(f"plot: {plot}")
        if args.csv:
            print(gallery.to_csv(seq, budget), end="")
        elif not args.plot:
            lr = seq.lr
            print(
                f"{args.name}: {len(lr)} steps, lr {lr[0]:.6g} -> {lr[-1]:.6g}, max {lr.max():.6g}"
            )

    return run


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that pick a task and shape a run, shared by ``train`` and ``lr-find``."""
    from benchmark.catalogue.tasks import TASKS

    parser.add_argument("--task", required=True, help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and data order")
    parser.add_argument("--batch-size", type=int, help="default: the task's")
    parser.add_argument(
        "--train-size", type=int, help="use the first N training examples (default: all)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="schedule.KEY=VALUE or optimizer.KEY=VALUE, VALUE a TOML literal: "
        "schedule.pct_start=0.25, optimizer.betas=[0.9,0.99]",
    )
    parser.add_argument(
        "--device", default="auto", choices=DEVICES, help="auto (the GPU when there is one)"
    )
    parser.add_argument("--root", help="data root (default: $SCHEDULE_BENCH_DATA or data/)")


def run_spec(args: argparse.Namespace, schedule: str, **fields):
    """The RunSpec the flags describe; bad names, values or --set keys, or data not prepared,
    raise InputError (before torch loads: a mistake costs a fraction of a second)."""
    from benchmark.catalogue import datasets
    from benchmark.catalogue.spec import RunSpec
    from benchmark.catalogue.tasks import get_task
    from benchmark.data import datasets as data

    params: dict[str, dict] = {"schedule": {}, "optimizer": {}}
    for item in args.set:
        key, value = parse_set(item)
        section, _, name = key.partition(".")
        if section not in params or not name:
            raise InputError(f"--set {key}: expected schedule.KEY or optimizer.KEY")
        params[section][name] = value
    given = {"batch_size": args.batch_size, "train_size": args.train_size, **fields}
    spec = RunSpec.make(
        args.task,
        schedule,
        seed=args.seed,
        schedule_params=params["schedule"],
        optimizer_params=params["optimizer"],
        **{k: v for k, v in given.items() if v is not None},
    )
    data.check_prepared(datasets.get(get_task(spec.task).dataset), data.data_root(args.root))
    return spec


@command("train", "train one run and write its record")
def train_command(parser: argparse.ArgumentParser) -> Run:
    run_arguments(parser)
    parser.add_argument("--schedule", required=True, help="a schedule name, or module:function")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the task's)")
    parser.add_argument("--epochs", type=int, help="default: the task's")
    parser.add_argument("--eval-size", type=int, help="first N dev and test examples")
    parser.add_argument("--evals-per-epoch", type=int, help="default: the task's")
    parser.add_argument(
        "--early-stopping", type=int, metavar="PATIENCE",
        help="stop after PATIENCE evaluations without a better dev accuracy (default: off)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="on CUDA also tf32, bf16"
    )
    parser.add_argument("--out", metavar="FILE.json", help="write the run record here")

    def run(args: argparse.Namespace) -> None:
        out = output_file("--out", args.out, ".json")
        spec = run_spec(
            args, args.schedule, lr=args.lr, epochs=args.epochs, eval_size=args.eval_size,
            evals_per_epoch=args.evals_per_epoch, early_stopping=args.early_stopping,
            precision=args.precision,
        )  # fmt: skip
        check_packages([spec])
        print("loading torch and the data ...", file=sys.stderr)  # the first one takes seconds
        from benchmark.engines.device import resolve_device
        from benchmark.engines.single import train
        from benchmark.records import record

        result = train(spec, device=resolve_device(args.device), root=args.root, progress=True)
        print(summary(result))
        if out:
            record.write(out, result)
            print(f"record: {out}")

    return run


def seconds(value: float) -> str:
    """A duration for reading: milliseconds below a second (never "0.0 s")."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def summary(record: dict) -> str:
    """A few lines on a finished run: status, test accuracy, time to each target."""
    spec, metrics, timing = record["spec"], record["metrics"], record["timing"]
    per_epoch = (
        timing["train_s"]
        / max(record["budget"]["steps_done"], 1)
        * record["budget"]["steps_per_epoch"]
    )
    status = record["status"]
    if record["diverged_at_step"] is not None:
        status += f" at step {record['diverged_at_step']}"
    if record["stopped_early_at_step"] is not None:
        status += f", stopped early at step {record['stopped_early_at_step']}"
    lines = [
        f"{spec['task']} {spec['schedule']} lr {spec['lr']:g} seed {spec['seed']}: {status}",
        f"test accuracy {metrics['test_acc']:.4f}, best dev accuracy {metrics['val_acc_best']:.4f}",
        f"training {seconds(timing['train_s'])} ({seconds(per_epoch)} per epoch), "
        f"evaluation {seconds(timing['eval_s'])}, on {record['provenance']['device']}",
    ]
    for target, hit in record["time_to_target"].items():
        reached = "not reached" if hit is None else (
            f"step {hit['step']} (epoch {hit['epoch']:.2f}, {seconds(hit['wall_s'])})"
        )  # fmt: skip
        lines.append(f"dev accuracy {target}: {reached}")
    return "\n".join(lines)


@command("lr-find", "the LR range test: suggest a peak lr for a task")
def lr_find_command(parser: argparse.ArgumentParser) -> Run:
    run_arguments(parser)
    parser.add_argument("--start", type=float, default=1e-6, help="first lr (default: 1e-6)")
    parser.add_argument("--end", type=float, default=10.0, help="last lr (default: 10)")
    parser.add_argument("--steps", type=int, default=100, help="updates (default: 100)")
    parser.add_argument("--plot", metavar="FILE.png", help="write loss against lr to FILE.png")

    def run(args: argparse.Namespace) -> None:
        from benchmark.catalogue.tasks import get_task
        from benchmark.data import datasets as data
        from benchmark.engines.device import resolve_device
        from benchmark.tools.lr_find import check_range, lr_range_test

        plot = output_file("--plot", args.plot, ".png")
        check_range(args.start, args.end, args.steps)
        spec = run_spec(args, "constant")
        device = resolve_device(args.device)
        splits = data.load(get_task(spec.task).dataset, args.root, device)
        test = lr_range_test(spec, splits, device, start=args.start, end=args.end, steps=args.steps)
        print(
            f"{spec.task}: suggested lr {test.suggestion:.3g} (steepest descent of the smoothed "
            f"loss); {len(test.lrs)} steps, up to lr {test.lrs[-1]:.3g}"
        )
        if plot:
            test.figure(f"LR range test: {spec.task}").savefig(plot)
            print(f"plot: {plot}")

    return run


@command(
    "perf", "training throughput: the standard PyTorch pattern, the single and the batched engine"
)
def perf_command(parser: argparse.ArgumentParser) -> Run:
    from benchmark.catalogue.tasks import TASKS

    parser.add_argument(
        "--task", action="append", choices=list(TASKS), dest="tasks", metavar="TASK",
        help="a task to measure (repeat for more; default: one per model and optimizer)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=30, help="updates per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="turns per method (median)")
    parser.add_argument("--max-runs", type=int, default=1024, help="largest R for batched")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0,
        help="a batched measurement slower than this stops larger R (default: 60)",
    )  # fmt: skip
    parser.add_argument(
        "--task-seconds", type=float, default=900.0,
        help="no turn of a task starts after this many seconds (default: 900)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="on CUDA also tf32, bf16"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--out", default=None, help="folder (default: results/perf)")
    parser.add_argument("--root", help="data root (default: $SCHEDULE_BENCH_DATA or data/)")

    def run(args: argparse.Namespace) -> None:
        from benchmark.catalogue.tasks import representatives
        from benchmark.engines.device import check_precision, resolve_device
        from benchmark.tools import perf

        if args.steps < 2 or args.repeats < 1 or args.max_runs < 1 or (args.threads or 1) < 1:
            raise InputError("--steps must be >= 2; --repeats, --max-runs, --threads >= 1")
        device = resolve_device(args.device)
        check_precision(args.precision, device)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        path = perf.run(
            args.tasks or representatives(), device,
            Path(args.out) if args.out else perf.PERF, steps=args.steps, repeats=args.repeats,
            max_runs=args.max_runs, max_seconds=args.max_seconds,
            task_seconds=args.task_seconds, precision=args.precision, root=args.root,
        )  # fmt: skip
        print(perf.summary(json.loads(path.read_text())))
        print(f"perf file: {path}")

    return run
