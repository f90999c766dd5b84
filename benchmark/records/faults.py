"""Fault injection for the robustness tests (tests/test_robustness.py).

``SCHEDULE_BENCH_FAULT="POINT:N"`` kills this process with SIGKILL the N-th time it reaches
``fault_point(POINT)``; ``"POINT:N:enospc"`` raises "No space left on device" there instead,
and ``"POINT:N:usr2"`` sends the process SIGUSR2 (Slurm's warning before a time limit).
The points: ``claim`` (a run claimed, not started), ``step`` (after an optimizer update),
``write`` (an atomic write's temporary file complete, not yet renamed), ``tables`` (runs.csv
written, curves.csv not), ``install`` (a dataset's verified files half renamed into place).
Unset, as in every normal run, a point costs one environment lookup.
"""

import errno
import os
import signal

ENV = "SCHEDULE_BENCH_FAULT"
_reached: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, n, *kind = spec.split(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] != int(n):
        return
    if kind == ["enospc"]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGUSR2 if kind == ["usr2"] else signal.SIGKILL)
