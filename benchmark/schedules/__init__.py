"""Learning-rate schedules: ``SCHEDULES`` maps each name to a closed-form function of the step.

A schedule is ``fn(t, lr, budget, **params)``: for an integer array ``t`` of optimizer steps
(step k is the k-th update, counted from 0) it returns the learning rate of each, or a pair
``(lr, momentum)`` when it cycles momentum; ``lr`` is the run's peak learning rate. Schedules
with a PyTorch counterpart keep its parameter names and units and give exactly its sequence
(tests/test_schedules.py). A parameter defaulting to ``None`` follows from the budget, as the
decorator's keywords say. An entry declares what it is beyond a sequence: ``stateful`` (its
function returns a ``Controller`` the engine feeds at each evaluation, like ``plateau``'s) or
``replaces_optimizer`` (like ``schedule_free``); the engines read these, never a name.

Plain Python and NumPy, no torch: ``schedule --list`` and the gallery answer at once.

- ``core``: ``Budget``, ``Sequences``, the registry and its ``schedule`` decorator, parameter
  checking, user ``module:function`` schedules, the shared warmup helpers.
- ``pytorch``: the schedules with a ``torch.optim.lr_scheduler`` class, in registry order.
- ``beyond_pytorch``: the schedules without one (Keras decays, wsd, rsqrt, schedule_free).
- ``plateau``: ``Plateau``, the controller behind the stateful ``plateau`` schedule.

To add a schedule, write one function with the ``@schedule(...)`` decorator in ``pytorch.py``
(if a PyTorch class gives the same sequence; add it to the conformance table in the tests) or
in ``beyond_pytorch.py`` (otherwise). Nothing else needs registering: importing this package
imports both, ``pytorch`` first, and registration order is the order of ``schedule --list``
and of the gallery.
"""

from benchmark.schedules.core import (
    SCHEDULES,
    START_FACTOR,
    WARMUP_FRAC,
    Budget,
    Controller,
    Schedule,
    Sequences,
    controller,
    get_schedule,
    optimizer_kwargs,
    schedule,
    sequences,
)
from benchmark.schedules.plateau import Plateau

# the schedules register on import, in this order: PyTorch's first, then the others
from benchmark.schedules import pytorch  # noqa: F401  isort: skip
from benchmark.schedules import beyond_pytorch  # noqa: F401  isort: skip

__all__ = [
    "SCHEDULES",
    "START_FACTOR",
    "WARMUP_FRAC",
    "Budget",
    "Controller",
    "Plateau",
    "Schedule",
    "Sequences",
    "controller",
    "get_schedule",
    "optimizer_kwargs",
    "schedule",
    "sequences",
]
