"""Learning-rate schedules: ``SCHEDULES`` maps each name to a closed-form function of the step.

A schedule is ``fn(t, lr, budget, **params)``: for an integer array ``t`` of optimizer steps
(step k is the k-th update, counted from 0) it returns the learning rate of each, or a pair
``(lr, momentum)`` when it cycles momentum; ``lr`` is the run's peak learning rate. Schedules
with a PyTorch counterpart keep its parameter names and units and give exactly its sequence
(tests/test_schedules.py). A parameter defaulting to ``None`` follows from the budget, as the
decorator's keywords say. ``plateau`` is the one stateful exception: see ``plateau_controller``.

Plain Python and NumPy, no torch: the report reuses this module for the schedule gallery.
"""

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Literal, NamedTuple, get_args, get_origin

import numpy as np

from benchmark.errors import InputError, unknown_name
from benchmark.plateau import Plateau

# 5% of the run: Goyal et al. 2017 warm up 5 of 90 epochs; shared so warmups compare like for like
WARMUP_FRAC = 0.05
# warmups start near zero (Goyal et al. 2017 ramp up from a small lr); LinearLR needs it > 0
START_FACTOR = 0.01


@dataclass(frozen=True)
class Budget:
    """A run's length: ``total_steps`` optimizer updates, ``steps_per_epoch`` of them an epoch.

    The last epoch may be partial. ``evals_per_epoch`` is how often the plateau controller steps.
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
    """A registry entry: the function, and how its ``None`` defaults follow from the budget."""

    name: str
    fn: Callable[..., Any]
    auto: dict[str, str] = field(default_factory=dict)
    stateful: bool = False  # plateau: the engine steps a controller after each evaluation
    optimizer: str | None = None  # schedule_free: the package whose optimizers replace torch's

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def params(self) -> dict[str, inspect.Parameter]:
        sig = inspect.signature(self.fn).parameters.values()
        return {p.name: p for p in sig if p.kind is p.KEYWORD_ONLY}


SCHEDULES: dict[str, Schedule] = {}


def schedule(name: str, *, stateful: bool = False, optimizer: str | None = None, **auto: str):
    """Register ``fn(t, lr, budget, **params)`` as ``name``; ``auto`` explains None defaults."""

    def register(fn):
        SCHEDULES[name] = Schedule(name, fn, auto, stateful, optimizer)
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

    For ``plateau`` this is the lr before any cut: the engine follows ``plateau_controller``.
    """
    entry = get_schedule(name)
    out = _build(entry, lr, budget, params)
    if entry.stateful:
        return Sequences(np.full(budget.total_steps, out.lr), None)
    lrs, momentum = out if isinstance(out, tuple) else (out, None)
    return Sequences(np.asarray(lrs, np.float64), momentum)


def plateau_controller(lr: float, budget: Budget, params: Mapping | None = None) -> Plateau:
    """The ``plateau`` schedule's controller: ``step(dev_loss)`` after each evaluation."""
    return _build(SCHEDULES["plateau"], lr, budget, params)


def schedule_free_kwargs(budget: Budget, params: Mapping | None = None) -> dict[str, int]:
    """Arguments besides lr for schedulefree.SGDScheduleFree / AdamWScheduleFree."""
    _build(SCHEDULES["schedule_free"], 1.0, budget, params)  # checks the parameters
    params = params or {}
    warmup = params.get("warmup_steps"), params.get("warmup_frac", WARMUP_FRAC)
    return {"warmup_steps": _warmup_steps(budget, *warmup)}


def _build(entry: Schedule, lr: float, budget: Budget, params: Mapping | None):
    try:
        _need(_fits(lr, float) and math.isfinite(lr) and lr > 0, "lr must be a number > 0", lr)
        kwargs = _checked(entry, params or {})
        return entry.fn(np.arange(budget.total_steps), float(lr), budget, **kwargs)
    except InputError as err:
        raise InputError(f"schedule {entry.name}: {err}") from None


def _checked(entry: Schedule, params: Mapping) -> dict[str, Any]:
    known = entry.params
    for key, value in params.items():
        if key not in known:
            raise InputError(f"unknown parameter {key!r}; known: {', '.join(known) or 'none'}")
        kind = known[key].annotation
        _need(_fits(value, kind), f"{key} must be {_describe(kind)}", value)
    return dict(params)


def _fits(value, kind) -> bool:
    """Whether ``value`` (from TOML or Python) matches the annotation ``kind``."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        return isinstance(value, str) and value in args
    if origin is UnionType:
        return any(_fits(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(kind) -> str:
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(f'"{arg}"' for arg in args)
    if origin is UnionType:
        return " or ".join(_describe(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"a list, each {_describe(args[0])}"
    return {int: "an integer", float: "a number", bool: "true or false"}[kind]


def _need(ok: bool, what: str, value) -> None:
    if not ok:
        raise InputError(f"{what}, got {value!r}")


def _need_count(name: str, value) -> None:
    _need(_fits(value, int) and value >= 1, f"{name} must be an integer >= 1", value)


def _need_momentum(base: float, top: float) -> None:
    _need(0 <= base <= top <= 1, "need 0 <= base_momentum <= max_momentum <= 1", (base, top))


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


def _per_epoch(budget: Budget) -> int:
    """The Keras schedules' default decay_steps: an epoch, or the whole run if shorter."""
    return min(budget.steps_per_epoch, budget.total_steps)


def _warmup_steps(budget: Budget, steps: int | None, frac: float) -> int:
    _need(0 <= frac < 1, "warmup_frac must be in [0, 1)", frac)
    steps = round(frac * budget.total_steps) if steps is None else steps
    _need(0 <= steps < budget.total_steps, "warmup_steps must be in [0, total steps)", steps)
    return steps


def _warmup(t: np.ndarray, steps: int, start_factor: float) -> np.ndarray:
    """LinearLR(start_factor, 1.0, steps)'s factor: start_factor at step 0, 1 from ``steps`` on."""
    _need(0 < start_factor <= 1, "start_factor must be in (0, 1]", start_factor)
    return np.where(t < steps, start_factor + (1 - start_factor) * t / max(steps, 1), 1.0)


# ---------------------------------------------------------------- schedules with a PyTorch class


@schedule("constant")
def constant(t, lr, budget):
    """The run's lr at every step: LambdaLR(lambda _: 1)."""
    return np.full(t.shape, lr)


@schedule("step", step_size="a third of the epochs, rounded up")
def step(t, lr, budget, *, step_size: int | None = None, gamma: float = 0.1):
    """StepLR, per epoch: lr * gamma ** (epoch // step_size)."""
    # three lr levels, as ResNet's 0.1, 0.01, 0.001 (He et al. 2016, sec. 4.2)
    step_size = -(-budget.epochs // 3) if step_size is None else step_size
    _need(step_size >= 1, "step_size must be >= 1", step_size)
    _need(gamma > 0, "gamma must be > 0", gamma)
    return lr * gamma ** (budget.epoch(t) // step_size)


@schedule("multistep", milestones="[epochs // 2, 3 * epochs // 4]")
def multistep(t, lr, budget, *, milestones: list[int] | None = None, gamma: float = 0.1):
    """MultiStepLR, per epoch: lr * gamma ** (number of milestones <= epoch)."""
    # cuts at 50% and 75% of the run, as ResNet on CIFAR-10 (He et al. 2016, sec. 4.2)
    half, three_quarters = budget.epochs // 2, 3 * budget.epochs // 4
    milestones = sorted(
        {max(1, half), max(1, three_quarters)} if milestones is None else milestones
    )
    _need(all(m >= 0 for m in milestones), "milestones must be >= 0", milestones)
    _need(gamma > 0, "gamma must be > 0", gamma)
    return lr * gamma ** np.searchsorted(milestones, budget.epoch(t), side="right")


@schedule("exponential", gamma="0.01 ** (1 / epochs): lr / 100 at the end")
def exponential(t, lr, budget, *, gamma: float | None = None):
    """ExponentialLR, per epoch: lr * gamma ** epoch."""
    # ends two orders of magnitude down, like step's and multistep's two cuts by 0.1
    gamma = 0.01 ** (1 / budget.epochs) if gamma is None else gamma
    _need(gamma > 0, "gamma must be > 0", gamma)
    return lr * gamma ** budget.epoch(t)


@schedule("cosine", T_max="total steps")
def cosine(t, lr, budget, *, T_max: int | None = None, eta_min: float = 0.0):  # noqa: N803
    """CosineAnnealingLR: eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2."""
    period = budget.total_steps if T_max is None else T_max  # anneal over the whole run (SGDR)
    _need(period >= 1, "T_max must be >= 1", period)
    _need(0 <= eta_min <= lr, "eta_min must be in [0, lr]", eta_min)
    return eta_min + (lr - eta_min) * (1 + np.cos(np.pi * t / period)) / 2


@schedule("cosine_restarts", T_0="a quarter of the total steps")
def cosine_restarts(
    t,
    lr,
    budget,
    *,
    T_0: int | None = None,  # noqa: N803 (PyTorch's name)
    T_mult: int = 1,  # noqa: N803
    eta_min: float = 0.0,
):
    """CosineAnnealingWarmRestarts: cosine to eta_min, restart, each cycle T_mult times longer."""
    # four equal cycles ending with the run, so it ends on a cycle's low point (SGDR)
    first = max(1, budget.total_steps // 4) if T_0 is None else T_0
    _need(first >= 1, "T_0 must be >= 1", first)
    _need(T_mult >= 1, "T_mult must be >= 1", T_mult)
    _need(0 <= eta_min <= lr, "eta_min must be in [0, lr]", eta_min)
    starts, lengths = [0], [first]
    while starts[-1] + lengths[-1] <= t.max():
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * T_mult)
    cycle = np.searchsorted(starts, t, side="right") - 1
    t_cur, t_i = t - np.array(starts)[cycle], np.array(lengths)[cycle]
    return eta_min + (lr - eta_min) * (1 + np.cos(np.pi * t_cur / t_i)) / 2


@schedule(
    "cyclic",
    base_lr="lr / 4",
    step_size_up="a quarter of the total steps",
    step_size_down="step_size_up",
)
def cyclic(
    t,
    lr,
    budget,
    *,
    base_lr: float | None = None,
    step_size_up: int | None = None,
    step_size_down: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
):
    """CyclicLR (max_lr = lr): triangles between base_lr and lr; momentum moves the other way."""
    # mode, gamma and momentum defaults are PyTorch's
    base_lr = lr / 4 if base_lr is None else base_lr  # 1/3 to 1/4 of max_lr (Smith 2017, sec. 3.3)
    # two whole cycles: stop at a cycle's end, where the lr is lowest (Smith 2017, sec. 3.3)
    up = max(1, budget.total_steps // 4) if step_size_up is None else step_size_up
    down = up if step_size_down is None else step_size_down
    _need(0 <= base_lr <= lr, "base_lr must be in [0, lr]", base_lr)
    _need(up >= 1 and down >= 1, "step_size_up and step_size_down must be >= 1", (up, down))
    _need(0 < gamma <= 1, "gamma must be in (0, 1]", gamma)
    _need_momentum(base_momentum, max_momentum)
    size = float(up + down)
    cycle = np.floor(1 + t / size)
    x = 1.0 + t / size - cycle  # position in the cycle, in [0, 1)
    rise = up / size
    height = np.where(x <= rise, x / rise, (x - 1) / (rise - 1))
    amplitude = {"triangular": 1.0, "triangular2": 1 / 2.0 ** (cycle - 1), "exp_range": gamma**t}
    height = height * amplitude[mode]
    lrs = base_lr + (lr - base_lr) * height
    return (lrs, max_momentum - (max_momentum - base_momentum) * height) if cycle_momentum else lrs


@schedule("onecycle")
def onecycle(
    t,
    lr,
    budget,
    *,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
):
    """OneCycleLR (max_lr = lr, total_steps = the run's): up from lr / div_factor, then down."""
    # every default is PyTorch's, from fastai's 1cycle (Smith 2018, arXiv:1803.09820)
    _need(0 < pct_start < 1, "pct_start must be in (0, 1)", pct_start)
    _need(div_factor >= 1, "div_factor must be >= 1", div_factor)
    _need(final_div_factor >= 1, "final_div_factor must be >= 1", final_div_factor)
    _need_momentum(base_momentum, max_momentum)
    total = budget.total_steps
    initial = lr / div_factor
    lrs = [initial, lr, initial / final_div_factor]
    moms = [max_momentum, base_momentum, max_momentum]
    ends = [float(pct_start * total) - 1, total - 1]  # the last step of each phase
    if three_phase:  # down to initial symmetrically, then on to the minimum
        lrs, moms = [initial, lr, initial, lrs[-1]], [*moms, max_momentum]
        ends = [ends[0], float(2 * pct_start * total) - 2, total - 1]
    phase = np.full(t.shape, len(ends) - 1)  # as OneCycleLR: the first phase not yet ended
    for i in reversed(range(len(ends) - 1)):
        phase[t <= ends[i]] = i
    start, end = np.array([0.0, *ends])[phase], np.array(ends)[phase]
    length = end - start  # 0 when pct_start * total_steps == 1, where OneCycleLR divides by 0
    pct = np.divide(t - start, length, out=np.zeros(t.shape), where=length != 0)

    def anneal(points):
        a, b = np.array(points)[phase], np.array(points)[phase + 1]
        if anneal_strategy == "cos":
            return b + (a - b) / 2.0 * (np.cos(np.pi * pct) + 1)
        return (b - a) * pct + a

    return (anneal(lrs), anneal(moms)) if cycle_momentum else anneal(lrs)


@schedule("polynomial", total_iters="total steps")
def polynomial(t, lr, budget, *, total_iters: int | None = None, power: float = 1.0):
    """PolynomialLR: lr * (1 - min(t, total_iters) / total_iters) ** power."""
    # "poly" decays to 0 as the run ends (DeepLab, Chen et al. 2017, power 0.9 there)
    total_iters = budget.total_steps if total_iters is None else total_iters
    _need(total_iters >= 1, "total_iters must be >= 1", total_iters)
    _need(power > 0, "power must be > 0", power)
    return lr * (1.0 - np.minimum(total_iters, t) / total_iters) ** power


@schedule("linear", total_iters="total steps")
def linear(
    t,
    lr,
    budget,
    *,
    start_factor: float = 1.0,
    end_factor: float = 0.0,
    total_iters: int | None = None,
):
    """LinearLR: lr times a factor going linearly from start_factor to end_factor."""
    # linear decay to 0 over the run: strong across tasks (Defazio et al. 2023, arXiv:2310.07831)
    total_iters = budget.total_steps if total_iters is None else total_iters
    _need(0 < start_factor <= 1, "start_factor must be in (0, 1]", start_factor)
    _need(0 <= end_factor <= 1, "end_factor must be in [0, 1]", end_factor)
    _need(total_iters >= 1, "total_iters must be >= 1", total_iters)
    progress = np.minimum(total_iters, t) / total_iters
    return lr * (start_factor + (end_factor - start_factor) * progress)


@schedule("warmup_cosine", warmup_steps="round(warmup_frac * total steps)")
def warmup_cosine(
    t,
    lr,
    budget,
    *,
    warmup_steps: int | None = None,
    warmup_frac: float = WARMUP_FRAC,
    start_factor: float = START_FACTOR,
    eta_min: float = 0.0,
):
    """SequentialLR of LinearLR(start_factor, 1, warmup_steps) then CosineAnnealingLR to eta_min."""
    warmup = _warmup_steps(budget, warmup_steps, warmup_frac)
    _need(0 <= eta_min <= lr, "eta_min must be in [0, lr]", eta_min)
    progress = (t - warmup) / (budget.total_steps - warmup)
    cos = eta_min + (lr - eta_min) * (1 + np.cos(np.pi * progress)) / 2
    return np.where(t < warmup, lr * _warmup(t, warmup, start_factor), cos)


@schedule("plateau", stateful=True, patience="a tenth of the run's evaluations, at least 1")
def plateau(
    t,
    lr,
    budget,
    *,
    mode: Literal["min", "max"] = "min",
    factor: float = 0.1,
    patience: int | None = None,
    threshold: float = 1e-4,
    threshold_mode: Literal["rel", "abs"] = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> Plateau:
    """ReduceLROnPlateau on the dev loss at each evaluation (shown: the lr before any cut)."""
    # PyTorch's patience, 10 epochs, is a tenth of a 100-epoch run; other defaults are PyTorch's
    patience = max(1, budget.evals // 10) if patience is None else patience
    return Plateau(lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps)


# -------------------------------------------------------------- schedules without a PyTorch class


@schedule(
    "exponential_decay",
    decay_steps="steps per epoch, at most the total steps",
    decay_rate="0.01 ** (decay_steps / total steps): lr / 100 at the end",
)
def exponential_decay(
    t,
    lr,
    budget,
    *,
    decay_steps: int | None = None,
    decay_rate: float | None = None,
    staircase: bool = False,
):
    """Keras ExponentialDecay: lr * decay_rate ** (t / decay_steps), floored with staircase.

    Source: keras.optimizers.schedules.ExponentialDecay, the old tf.train.exponential_decay.
    With the defaults and staircase = true it equals ``exponential``.
    """
    decay_steps = _per_epoch(budget) if decay_steps is None else decay_steps
    _need(decay_steps >= 1, "decay_steps must be >= 1", decay_steps)
    # ends two orders of magnitude down, like ``exponential``
    decay_rate = 0.01 ** (decay_steps / budget.total_steps) if decay_rate is None else decay_rate
    _need(decay_rate > 0, "decay_rate must be > 0", decay_rate)
    p = t // decay_steps if staircase else t / decay_steps
    return lr * decay_rate**p


@schedule(
    "inverse_time",
    decay_steps="steps per epoch, at most the total steps",
    decay_rate="9 * decay_steps / total steps: lr / 10 at the end",
)
def inverse_time(
    t,
    lr,
    budget,
    *,
    decay_steps: int | None = None,
    decay_rate: float | None = None,
    staircase: bool = False,
):
    """Keras InverseTimeDecay: lr / (1 + decay_rate * t / decay_steps), floored with staircase.

    Source: keras.optimizers.schedules.InverseTimeDecay (tf.train.inverse_time_decay).
    """
    decay_steps = _per_epoch(budget) if decay_steps is None else decay_steps
    _need(decay_steps >= 1, "decay_steps must be >= 1", decay_steps)
    # the slow 1/t tail (Robbins and Monro 1951) ends one order of magnitude down
    decay_rate = 9 * decay_steps / budget.total_steps if decay_rate is None else decay_rate
    _need(decay_rate >= 0, "decay_rate must be >= 0", decay_rate)
    p = t // decay_steps if staircase else t / decay_steps
    return lr / (1 + decay_rate * p)


_COOLDOWNS = {  # decay shapes of wsd, from 1 at p = 0 to 0 at p = 1
    "linear": lambda p: 1 - p,
    "1-sqrt": lambda p: 1 - np.sqrt(p),
    "cosine": lambda p: (1 + np.cos(np.pi * p)) / 2,
}


@schedule("wsd", warmup_steps="round(warmup_frac * total steps)")
def wsd(
    t,
    lr,
    budget,
    *,
    warmup_steps: int | None = None,
    warmup_frac: float = WARMUP_FRAC,
    start_factor: float = START_FACTOR,
    decay_frac: float = 0.2,
    decay_shape: Literal["linear", "1-sqrt", "cosine"] = "1-sqrt",
    final_lr_frac: float = 0.0,
):
    """Warmup-stable-decay: warmup, constant lr, then decay over the last decay_frac of the run.

    With D = round(decay_frac * T) decay steps of T and p = (t - (T - D)) / D, the decay phase
    is lr * (f + (1 - f) * shape(p)), f = final_lr_frac, shape 1 - p, 1 - sqrt(p) or
    (1 + cos(pi p)) / 2; warmup as ``warmup_cosine``. Sources: Hu et al. 2024 (MiniCPM,
    arXiv:2404.06395); Hägele et al. 2024 (arXiv:2405.18392): a 20% 1-sqrt cooldown matches
    or beats cosine, hence the defaults.
    """
    warmup = _warmup_steps(budget, warmup_steps, warmup_frac)
    _need(0 < decay_frac <= 1, "decay_frac must be in (0, 1]", decay_frac)
    _need(0 <= final_lr_frac <= 1, "final_lr_frac must be in [0, 1]", final_lr_frac)
    decay = max(1, round(decay_frac * budget.total_steps))
    fits = warmup + decay <= budget.total_steps
    _need(fits, "warmup and decay steps must fit in the total steps", (warmup, decay))
    p = np.clip((t - (budget.total_steps - decay)) / decay, 0, 1)
    after = final_lr_frac + (1 - final_lr_frac) * _COOLDOWNS[decay_shape](p)
    return lr * np.where(t < warmup, _warmup(t, warmup, start_factor), after)


@schedule("rsqrt", warmup_steps="round(warmup_frac * total steps)")
def rsqrt(
    t,
    lr,
    budget,
    *,
    warmup_steps: int | None = None,
    warmup_frac: float = WARMUP_FRAC,
    start_factor: float = START_FACTOR,
):
    """Inverse square root after a linear warmup: lr * sqrt(w / t) from step w = warmup_steps on.

    (sqrt(1 / max(t, 1)) when w = 0.) Source: Vaswani et al. 2017, sec. 5.3, lr proportional to
    min(t ** -0.5, t * w ** -1.5), scaled so that the peak is lr; warmup as ``warmup_cosine``.
    """
    warmup = _warmup_steps(budget, warmup_steps, warmup_frac)
    w = max(warmup, 1)
    return lr * np.where(
        t < warmup, _warmup(t, warmup, start_factor), np.sqrt(w / np.maximum(t, w))
    )


@schedule(
    "schedule_free", optimizer="schedulefree", warmup_steps="round(warmup_frac * total steps)"
)
def schedule_free(
    t, lr, budget, *, warmup_steps: int | None = None, warmup_frac: float = WARMUP_FRAC
):
    """Schedule-free SGD / AdamW: constant lr after the optimizer's own warmup.

    An optimizer family, not a schedule: the engine builds schedulefree.SGDScheduleFree or
    AdamWScheduleFree with ``schedule_free_kwargs`` and evaluates the averaged weights
    (``optimizer.eval()``). This is the lr it applies, lr * min(1, (t + 1) / w). Source: Defazio
    et al. 2024 (arXiv:2405.15682), SGDScheduleFree.step in the schedulefree package.
    """
    warmup = _warmup_steps(budget, warmup_steps, warmup_frac)
    return lr * np.minimum(1.0, (t + 1) / max(warmup, 1))
