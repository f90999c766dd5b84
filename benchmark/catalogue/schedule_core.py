"""The schedule machinery; the schedules are in ``schedules_pytorch`` and ``schedules_beyond``.

Here: ``Budget`` and ``Sequences``; the ``SCHEDULES`` registry, its entries (``Schedule``) and its
decorator ``schedule``; ``get_schedule``, ``sequences``, and what an entry declares beyond its
sequence: ``controller`` (a stateful schedule's, fed at every evaluation) and ``optimizer_kwargs``
(a schedule that replaces the optimizer); value checks (``_need_count``, ``_need_momentum``;
parameter types are checked by ``params``); user ``module:function`` schedules; and the warmup
helpers the schedules share (``WARMUP_FRAC``, ``START_FACTOR``, ``_warmup_steps``, ``_warmup``).
Plain Python and NumPy, no torch.
"""

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from benchmark.catalogue.errors import InputError, unknown_name
from benchmark.catalogue.params import check, fits, keyword_params, need


class Controller(Protocol):
    """A stateful schedule's state: ``lr`` now, and ``step(value)`` after each evaluation with
    the value of the curve point's field ``metric`` (``val_loss`` or ``val_acc``)."""

    lr: float
    metric: str

    def step(self, value: float) -> float: ...


# 5% of the run: Goyal et al. 2017 warm up 5 of 90 epochs; shared so warmups compare like for like
WARMUP_FRAC = 0.05
# warmups start near zero (Goyal et al. 2017 ramp up from a small lr); LinearLR needs it > 0
START_FACTOR = 0.01


@dataclass(frozen=True)
class Budget:
    """A run's length: ``total_steps`` optimizer updates, ``steps_per_epoch`` of them an epoch.

    The last epoch may be partial. ``evals_per_epoch`` is how often a stateful schedule's
    controller steps.
    """

    total_steps: int
    steps_per_epoch: int
    evals_per_epoch: int = 1

    def __post_init__(self):
        for name in ("steps_per_epoch", "total_steps", "evals_per_epoch"):
            _need_count(name, getattr(self, name))

    @classmethod
    def from_epochs(cls, epochs: int, steps_per_epoch: int, evals_per_epoch: int = 1) -> "Budget":
        _need_count("epochs", epochs)
        _need_count("steps_per_epoch", steps_per_epoch)
        return cls(epochs * steps_per_epoch, steps_per_epoch, evals_per_epoch)

    @property
    def epochs(self) -> int:
        return -(-self.total_steps // self.steps_per_epoch)

    @property
    def evals(self) -> int:
        return self.epochs * self.evals_per_epoch

    def epoch(self, t: np.ndarray) -> np.ndarray:
        """The epoch (from 0) in which each step falls."""
        return t // self.steps_per_epoch


class Sequences(NamedTuple):
    """Per-step values for a whole run: ``lr[k]`` (and ``momentum[k]``) for the k-th update."""

    lr: np.ndarray
    momentum: np.ndarray | None  # SGD momentum or Adam beta1; None: the schedule leaves it alone


@dataclass(frozen=True)
class Schedule:
    """A registry entry: the function, how its ``None`` defaults follow from the budget, and
    what it declares beyond a closed-form sequence (each engine reads these, never a name)."""

    name: str
    fn: Callable[..., Any]
    auto: dict[str, str] = field(default_factory=dict)
    # fn returns a Controller (its lr before any cut), which the engine feeds at evaluations
    stateful: bool = False
    # replaces the optimizer: the optimizer's schedule-free twin trains, built with the
    # arguments this returns for (budget, **params); the schedule's lr is the one it applies
    replaces_optimizer: Callable[..., dict] | None = None

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def params(self) -> dict[str, inspect.Parameter]:
        return keyword_params(self.fn)


SCHEDULES: dict[str, Schedule] = {}


def schedule(
    name: str,
    *,
    stateful: bool = False,
    replaces_optimizer: Callable[..., dict] | None = None,
    **auto: str,
):
    """Register ``fn(t, lr, budget, **params)`` as ``name``; ``auto`` explains None defaults."""

    def register(fn):
        SCHEDULES[name] = Schedule(name, fn, auto, stateful, replaces_optimizer)
        return fn

    return register


def get_schedule(name: str) -> Schedule:
    """The registered schedule ``name``, or the user schedule ``module:function``."""
    if name in SCHEDULES:
        return SCHEDULES[name]
    if ":" not in name:
        raise unknown_name("schedule", name, SCHEDULES)
    return Schedule(name, _user_schedule(name))


def sequences(name: str, lr: float, budget: Budget, params: Mapping | None = None) -> Sequences:
    """The lr (and momentum) of every optimizer step of a run, as float64 arrays.

    For a stateful schedule this is the lr before any cut: the engine follows its ``controller``.
    """
    entry = get_schedule(name)
    out = _build(entry, lr, budget, params)
    if entry.stateful:
        return Sequences(np.full(budget.total_steps, out.lr), None)
    lrs, momentum = out if isinstance(out, tuple) else (out, None)
    return Sequences(np.asarray(lrs, np.float64), momentum)


def controller(
    name: str, lr: float, budget: Budget, params: Mapping | None = None
) -> Controller | None:
    """A fresh controller of the stateful schedule ``name`` (its own); None when it has none."""
    entry = get_schedule(name)
    return _build(entry, lr, budget, params) if entry.stateful else None


def optimizer_kwargs(name: str, budget: Budget, params: Mapping | None = None) -> dict | None:
    """The arguments besides lr of the optimizer that schedule ``name`` trains with instead of
    torch's; None when it does not replace the optimizer."""
    entry = get_schedule(name)
    if entry.replaces_optimizer is None:
        return None
    _build(entry, 1.0, budget, params)  # checks the parameters
    return entry.replaces_optimizer(budget, **check(entry.params, params or {}))


def _build(entry: Schedule, lr: float, budget: Budget, params: Mapping | None):
    try:
        need(fits(lr, float) and math.isfinite(lr) and lr > 0, "lr must be a number > 0", lr)
        kwargs = check(entry.params, params or {})
        return entry.fn(np.arange(budget.total_steps), float(lr), budget, **kwargs)
    except InputError as err:
        raise InputError(f"schedule {entry.name}: {err}") from None


def _need_count(name: str, value) -> None:
    need(fits(value, int) and value >= 1, f"{name} must be an integer >= 1", value)


def _need_momentum(base: float, top: float) -> None:
    need(0 <= base <= top <= 1, "need 0 <= base_momentum <= max_momentum <= 1", (base, top))


def _user_schedule(spec: str) -> Callable[..., np.ndarray]:
    """Wrap ``module:function``: ``f(epoch, lr) -> lr`` (Keras) or ``f(step, total_steps)``."""
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise InputError(f"user schedule {spec!r}: {err}") from None
    args = list(inspect.signature(fn).parameters)[:2]
    if args not in (["epoch", "lr"], ["step", "total_steps"]):
        raise InputError(
            f"user schedule {spec!r} is f({', '.join(args)}); "
            "expected f(epoch, lr) -> lr or f(step, total_steps) -> factor"
        )

    def user(t: np.ndarray, lr: float, budget: Budget) -> np.ndarray:
        if args[0] == "epoch":  # Keras LearningRateScheduler: lr is the previous epoch's
            per_epoch = [lr]
            for epoch in range(int(budget.epoch(t).max()) + 1):
                per_epoch.append(float(fn(epoch, per_epoch[-1])))
            out = np.array(per_epoch[1:])[budget.epoch(t)]
        else:
            out = lr * np.array([float(fn(int(k), budget.total_steps)) for k in t])
        bad = np.flatnonzero(~(np.isfinite(out) & (out >= 0)))
        if bad.size:
            raise InputError(f"lr {out[bad[0]]} at step {bad[0]}; an lr must be finite and >= 0")
        return out

    user.__doc__ = fn.__doc__ or f"user schedule {spec}"
    return user


def _warmup_steps(budget: Budget, steps: int | None, frac: float) -> int:
    need(0 <= frac < 1, "warmup_frac must be in [0, 1)", frac)
    steps = round(frac * budget.total_steps) if steps is None else steps
    need(0 <= steps < budget.total_steps, "warmup_steps must be in [0, total steps)", steps)
    return steps


def _warmup(t: np.ndarray, steps: int, start_factor: float) -> np.ndarray:
    """LinearLR(start_factor, 1.0, steps)'s factor: start_factor at step 0, 1 from ``steps`` on."""
    need(0 < start_factor <= 1, "start_factor must be in (0, 1]", start_factor)
    return np.where(t < steps, start_factor + (1 - start_factor) * t / max(steps, 1), 1.0)
