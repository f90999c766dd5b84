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
