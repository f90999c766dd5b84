"""Command line: ``python -m benchmark COMMAND ...``.

Each command is a function registered in ``COMMANDS`` by the decorator ``command``: it fills
the argparse subparser it is given and returns the function that runs the parsed arguments.
Bad input raises ``InputError``: one line on stderr, exit status 2.
"""

import argparse
import sys
from collections.abc import Callable

from benchmark.errors import InputError

Run = Callable[[argparse.Namespace], int | None]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Run]]] = {}


def command(name: str, summary: str):
    """Register ``fn(parser) -> run(args)`` as the subcommand ``name``."""

    def register(fn):
        COMMANDS[name] = (summary, fn)
        return fn

    return register


@command("data", "acquire and verify MNIST / Fashion-MNIST under the data root")
def data_command(parser: argparse.ArgumentParser) -> Run:
    from benchmark import data

    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"datasets to prepare (default: all of {', '.join(data.DATASETS)})",
    )
    parser.add_argument(
        "--root",
        type=str,
        default=None,
        help=f"data root (default: ${data.ROOT_ENV} or {data.DEFAULT_ROOT})",
    )

    def run(args: argparse.Namespace) -> None:
        root = data.data_root(args.root)
        for name in args.names or list(data.DATASETS):
            data.prepare(name, root)

    return run


@command("schedule", "list the learning-rate schedules, or print or plot one for a budget")
def schedule_command(parser: argparse.ArgumentParser) -> Run:
    import tomllib
    from pathlib import Path

    from benchmark import schedules

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
        help='a schedule parameter, VALUE a TOML literal: milestones=[3,6], mode="triangular2"',
    )
    parser.add_argument(
        "--csv",
        action="store_true",
        help="print step,epoch,lr[,momentum]: row k holds the values of the k-th update (from 0)",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="write a plot of the lr to FILE.png")

    def parse(item: str) -> tuple[str, object]:
        key, _, value = item.partition("=")
        try:
            return key.strip(), tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            hint = 'TOML literals: gamma=0.5, milestones=[3,6], mode="triangular2"'
            raise InputError(f"--set {item!r}: expected KEY=VALUE, {hint}") from None

    def run(args: argparse.Namespace) -> None:
        from benchmark import gallery

        if args.list or args.name is None:
            print(gallery.describe())
            return
        params = dict(parse(item) for item in args.set)
        budget = schedules.Budget.from_epochs(args.epochs, args.steps_per_epoch)
        seq = schedules.sequences(args.name, args.lr, budget, params)
        if args.plot:
            plot = Path(args.plot)
            if plot.suffix != ".png" or not plot.parent.is_dir():
                raise InputError(f"--plot {plot}: expected FILE.png in an existing folder")
            gallery.schedule_figure(args.name, seq, budget).savefig(plot)
        if args.csv:
            print(gallery.to_csv(seq, budget), end="")
        elif not args.plot:
            lr = seq.lr
            print(
                f"{args.name}: {len(lr)} steps, lr {lr[0]:.6g} -> {lr[-1]:.6g}, max {lr.max():.6g}"
            )

    return run


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m benchmark", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners = {}
    for name, (summary, build) in COMMANDS.items():
        runners[name] = build(sub.add_parser(name, help=summary, description=summary))
    args = parser.parse_args(argv)
    try:
        return runners[args.command](args) or 0
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
