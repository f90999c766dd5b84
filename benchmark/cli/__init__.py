"""Command line: ``python -m benchmark COMMAND ...`` (``benchmark/__main__.py`` calls ``main``).

Each command is a function registered in ``COMMANDS`` by the decorator ``command``: it fills
the argparse subparser it is given and returns the function that runs the parsed arguments.
``run_commands.py`` holds the commands about single runs and data, ``sweep_commands.py`` those
about sweeps and their results, ``check_command.py`` the machine check.
Building the parser imports no torch and no pandas, so ``--help`` and bad input are answered
at once; a command's run imports what it needs. Bad input raises ``InputError``: one line on
stderr, exit status 2; Ctrl-C is one line and exit status 130.
"""

import argparse
import os
import re
import signal
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path

from benchmark.catalogue.errors import InputError
from benchmark.records import folders
from benchmark.sweeps import deadline

Run = Callable[[argparse.Namespace], int | None]
DEVICES = ("auto", "cpu", "cuda")
RESULTS = folders.RESULTS  # results/<sweep>/ go here ($SCHEDULE_BENCH_RESULTS moves it)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Run]]] = {}


def command(name: str, summary: str):
    """Register ``fn(parser) -> run(args)`` as the subcommand ``name``."""

    def register(fn):
        COMMANDS[name] = (summary, fn)
        return fn

    return register


def parse_set(item: str) -> tuple[str, object]:
    """``--set KEY=VALUE`` with VALUE a TOML literal -> (KEY, value); a bare word is text, as
    the shell leaves ``mode="triangular2"`` typed unquoted: ``mode=triangular2``."""
    key, eq, value = item.partition("=")
    if not (eq and key.strip()):
        raise InputError(f"--set {item!r}: expected KEY=VALUE, {SET_HINT}")
    if re.fullmatch(r"[A-Za-z_][\w-]*", value.strip()) and value.strip() not in ("true", "false"):
        return key.strip(), value.strip()
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        raise InputError(f"--set {item!r}: expected KEY=VALUE, {SET_HINT}") from None


SET_HINT = "VALUE a TOML literal: gamma=0.5, milestones=[3,6], mode=triangular2, betas=[0.9,0.99]"


def results_folder(path: str | Path) -> Path:
    """``--results``: a folder we may write, not a file, and not a folder of another kind
    (one with files but none of a results folder's)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--results {folder}: is a file; give a folder (it is made if missing)")
    parent = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--results {folder}: cannot write in {parent}; give another folder")
    ours = {"runs", "claims", "failed", "slurm", "report", "sweep.json", "plan.json"}
    found = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if found and not found & ours:
        raise InputError(
            f"--results {folder}: holds files but no schedule-bench results (no runs/, no "
            "sweep.json); give an empty folder or a results folder"
        )
    return folder


def output_file(flag: str, path: str | None, suffix: str) -> Path | None:
    """``path`` checked before any work: ends in ``suffix``, in an existing folder."""
    if path is None:
        return None
    out = Path(path)
    if out.suffix != suffix or not out.parent.is_dir():
        raise InputError(f"{flag} {path}: expected FILE{suffix} in an existing folder")
    return out


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """Parse, run; bad input is one line and exit status 2, Ctrl-C (or SIGTERM, which a
    cluster sends before it kills a job) one line and 130; SIGUSR2 (Slurm's warning before a
    time limit) makes a sweep's deadline now (``sweeps/deadline.py``)."""
    if threading.current_thread() is threading.main_thread():  # (Python's rule for handlers)
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGUSR2, deadline.warn)
    try:
        parser = _Parser(prog="python -m benchmark", description="schedule-bench: " + DESCRIBE)
        sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        from benchmark.cli import check_command, run_commands, sweep_commands  # noqa: F401  they register their commands

        runners = {}
        for name, (summary, build) in COMMANDS.items():
            runners[name] = build(sub.add_parser(name, help=summary, description=summary))
        args = parser.parse_args(argv)
        return runners[args.command](args) or 0
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); nothing half-written is kept", file=sys.stderr)
        return 130


def _interrupt(signum, frame):
    """SIGTERM as Ctrl-C: the runs in progress finish and are written, none start."""
    raise KeyboardInterrupt


DESCRIBE = "train under every lr schedule, run sweeps, measure speed; `COMMAND --help` for more"


if __name__ == "__main__":
    sys.exit(main())
