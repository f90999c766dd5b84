"""Deadlines: a sweep that stops cleanly before its time is up, and resumes where it stopped.

A sweep with a deadline (``run --deadline SECONDS``, or the sweep file's ``deadline``) starts a
group of runs only when the group is expected to end in time: each of its runs at the measured
cost of its task and budget (``Costs``: the runs finished in this sitting, and the records of
earlier sittings), stretched by ``MARGIN``. A group that would not fit is not claimed; the
groups running finish and are written; the sweep writes the tables of what is done, prints
what remains and exits with ``STOPPED``. SIGUSR2, the warning Slurm sends before a job's time
limit, makes the deadline now (``warn``). Where a group's cost is not known yet, it starts: the
first group of a task and budget is how its cost is learnt.

Records do not depend on where a sweep stopped: a group is cut from the whole phase (executors)
and trains whole, so a sweep stopped at any deadline and resumed gives the uninterrupted
records.
"""

import threading
import time

from benchmark.catalogue.spec import RunSpec

STOPPED = 75  # exit status: stopped at the deadline, run the same command to go on (EX_TEMPFAIL)
MARGIN = 1.25  # a group's expected seconds x this must fit: runs of a kind vary by ~10% here
WARNED = threading.Event()  # set by SIGUSR2 (``warn``): every deadline of this process is now


def warn(signum=None, frame=None) -> None:
    """The SIGUSR2 handler: no new group starts in this process; those running finish."""
    WARNED.set()


class Costs:
    """Seconds per run of each task and budget, from the runs measured so far.

    A run is expected to cost the mean of the measured runs of its task and budget, else the
    mean seconds per epoch of its task's (else of all) measured runs times its epochs; None
    before any run is measured.
    """

    def __init__(self):
        self.seconds: dict[tuple, list[float]] = {}

    def add(self, spec: RunSpec, seconds: float) -> None:
        self.seconds.setdefault((spec.task, spec.epochs), []).append(seconds)

    def expected(self, task: str, epochs: int) -> float | None:
        if (task, epochs) in self.seconds:
            return sum(self.seconds[task, epochs]) / len(self.seconds[task, epochs])
        mine = [(e, t) for (k, e), ts in self.seconds.items() if k == task for t in ts]
        seen = mine or [(e, t) for (_, e), ts in self.seconds.items() for t in ts]
        return epochs * sum(t / e for e, t in seen) / len(seen) if seen else None


class Deadline:
    """When a sweep (or a Slurm array task) must stop: ``at`` in ``clock()`` seconds, or None."""

    def __init__(self, at: float | None, clock=time.time):
        self.at, self.clock, self.costs = at, clock, Costs()
        self.reached = False  # a group was held back: the sweep stopped at its deadline

    def fits(self, group: list[RunSpec]) -> bool:
        """Whether the group ``group`` may start: expected to end before the deadline (or of
        unknown cost, with time left). A group held back marks the deadline ``reached``."""
        if self.at is None and not WARNED.is_set():
            return True
        left = -1.0 if WARNED.is_set() else self.at - self.clock()
        costs = [self.costs.expected(s.task, s.epochs) for s in group]
        fits = left > 0 and (None in costs or MARGIN * sum(costs) <= left)
        self.reached |= not fits
        return fits

    def passed(self) -> bool:
        return WARNED.is_set() or (self.at is not None and self.clock() >= self.at)
