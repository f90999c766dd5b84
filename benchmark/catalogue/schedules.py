"""Learning-rate schedules: ``SCHEDULES`` maps each name to a closed-form function of the step.

A schedule is ``fn(t, lr, budget, **params)``: for an integer array ``t`` of optimizer steps
(step k is the k-th update, counted from 0) it returns the learning rate of each, or a pair
``(lr, momentum)`` when it cycles momentum; ``lr`` is the run's peak learning rate. Schedules
with a PyTorch counterpart keep its parameter names and units and give exactly its sequence
(tests/test_schedules.py). A parameter defaulting to ``None`` follows from the budget, as the
decorator's keywords say. An entry declares what it is beyond a sequence: ``stateful`` (its
function returns a ``Controller`` the engine feeds at each evaluation, like ``plateau``'s) or
``replaces_optimizer`` (like ``schedule_free``); the engines read these, never a name.

Plain Python and NumPy, no torch: ``schedule --list`` and the gallery answer at once. The modules
behind this one:

- ``schedule_core``: ``Budget``, ``Sequences``, the registry and its ``schedule`` decorator,
  parameter checking, user ``module:function`` schedules, the shared warmup helpers.
- ``schedules_pytorch``: the schedules with a ``torch.optim.lr_scheduler`` class, in registry
  order.
- ``schedules_beyond``: the schedules without one (Keras decays, wsd, rsqrt, schedule_free).
- ``plateau``: ``Plateau``, the controller behind the stateful ``plateau`` schedule.

To add a schedule, write one function with the ``@schedule(...)`` decorator in
``schedules_pytorch.py`` (if a PyTorch class gives the same sequence; add it to the conformance
table in the tests) or in ``schedules_beyond.py`` (otherwise). Nothing else needs registering:
importing this module imports both, PyTorch's first, and registration order is the order of
``schedule --list`` and of the gallery.
"""

from benchmark.catalogue.plateau import Plateau
from benchmark.catalogue.schedule_core import (
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

# the schedules register on import, in this order: PyTorch's first, then the others
from benchmark.catalogue import schedules_pytorch  # noqa: F401  isort: skip
from benchmark.catalogue import schedules_beyond  # noqa: F401  isort: skip

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
