"""The schedules with a PyTorch counterpart: each gives its ``torch.optim.lr_scheduler`` sequence.

They keep the class's parameter names, units and defaults (a ``None`` default follows from the
budget instead, as the decorator's keywords say), and tests/test_schedules.py checks every one
against its class. ``plateau`` returns the stateful ``Plateau`` controller instead of the lrs.
The package imports this module before ``beyond_pytorch``: the order here is the registry's.
"""

from typing import Literal

import numpy as np

from benchmark.catalogue.params import need
from benchmark.catalogue.plateau import Plateau
from benchmark.catalogue.schedule_core import (
    START_FACTOR,
    WARMUP_FRAC,
    _need_momentum,
    _warmup,
    _warmup_steps,
    schedule,
)


@schedule("constant")
def constant(t, lr, budget):
    """The run's lr at every step: LambdaLR(lambda _: 1)."""
    return np.full(t.shape, lr)


@schedule("step", step_size="a third of the epochs, rounded up")
def step(t, lr, budget, *, step_size: int | None = None, gamma: float = 0.1):
    """StepLR, per epoch: lr * gamma ** (epoch // step_size)."""
    # three lr levels, as ResNet's 0.1, 0.01, 0.001 (He et al. 2016, sec. 4.2)
    step_size = -(-budget.epochs // 3) if step_size is None else step_size
    need(step_size >= 1, "step_size must be >= 1", step_size)
    need(gamma > 0, "gamma must be > 0", gamma)
    return lr * gamma ** (budget.epoch(t) // step_size)


@schedule("multistep", milestones="[epochs // 2, 3 * epochs // 4]")
def multistep(t, lr, budget, *, milestones: list[int] | None = None, gamma: float = 0.1):
    """MultiStepLR, per epoch: lr * gamma ** (number of milestones <= epoch)."""
    # cuts at 50% and 75% of the run, as ResNet on CIFAR-10 (He et al. 2016, sec. 4.2)
    half, three_quarters = budget.epochs // 2, 3 * budget.epochs // 4
    milestones = sorted(
        {max(1, half), max(1, three_quarters)} if milestones is None else milestones
    )
    need(all(m >= 0 for m in milestones), "milestones must be >= 0", milestones)
    need(gamma > 0, "gamma must be > 0", gamma)
    return lr * gamma ** np.searchsorted(milestones, budget.epoch(t), side="right")


@schedule("exponential", gamma="0.01 ** (1 / epochs): lr / 100 at the end")
def exponential(t, lr, budget, *, gamma: float | None = None):
    """ExponentialLR, per epoch: lr * gamma ** epoch."""
    # ends two orders of magnitude down, like step's and multistep's two cuts by 0.1
    gamma = 0.01 ** (1 / budget.epochs) if gamma is None else gamma
    need(gamma > 0, "gamma must be > 0", gamma)
    return lr * gamma ** budget.epoch(t)


@schedule("cosine", T_max="total steps")
def cosine(t, lr, budget, *, T_max: int | None = None, eta_min: float = 0.0):  # noqa: N803
    """CosineAnnealingLR: eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2."""
    period = budget.total_steps if T_max is None else T_max  # anneal over the whole run (SGDR)
    need(period >= 1, "T_max must be >= 1", period)
    need(0 <= eta_min <= lr, "eta_min must be in [0, lr]", eta_min)
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
    need(first >= 1, "T_0 must be >= 1", first)
    need(T_mult >= 1, "T_mult must be >= 1", T_mult)
    need(0 <= eta_min <= lr, "eta_min must be in [0, lr]", eta_min)
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
    need(0 <= base_lr <= lr, "base_lr must be in [0, lr]", base_lr)
    need(up >= 1 and down >= 1, "step_size_up and step_size_down must be >= 1", (up, down))
    need(0 < gamma <= 1, "gamma must be in (0, 1]", gamma)
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
    need(0 < pct_start < 1, "pct_start must be in (0, 1)", pct_start)
    need(div_factor >= 1, "div_factor must be >= 1", div_factor)
    need(final_div_factor >= 1, "final_div_factor must be >= 1", final_div_factor)
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
    need(total_iters >= 1, "total_iters must be >= 1", total_iters)
    need(power > 0, "power must be > 0", power)
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
    need(0 < start_factor <= 1, "start_factor must be in (0, 1]", start_factor)
    need(0 <= end_factor <= 1, "end_factor must be in [0, 1]", end_factor)
    need(total_iters >= 1, "total_iters must be >= 1", total_iters)
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
    need(0 <= eta_min <= lr, "eta_min must be in [0, lr]", eta_min)
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
    """ReduceLROnPlateau at each evaluation: dev loss (mode min) or accuracy (max); shown uncut."""
    # PyTorch's patience, 10 epochs, is a tenth of a 100-epoch run; other defaults are PyTorch's
    patience = max(1, budget.evals // 10) if patience is None else patience
    return Plateau(lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps)
