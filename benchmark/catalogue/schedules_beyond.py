"""The schedules without a PyTorch class: Keras decays, warmup-stable-decay, rsqrt, schedule-free.

Each docstring names its source (a library or a paper) and its formula; tests/test_schedules.py
checks them by hand-computed values and, for ``schedule_free``, against the ``schedulefree``
optimizers' own warmup. ``schedules`` imports this module after ``schedules_pytorch``.
"""

from typing import Literal

import numpy as np

from benchmark.catalogue.params import need
from benchmark.catalogue.schedule_core import (
    START_FACTOR,
    WARMUP_FRAC,
    Budget,
    _warmup,
    _warmup_steps,
    schedule,
)


def _per_epoch(budget: Budget) -> int:
    """The Keras schedules' default decay_steps: an epoch, or the whole run if shorter."""
    return min(budget.steps_per_epoch, budget.total_steps)


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
    need(decay_steps >= 1, "decay_steps must be >= 1", decay_steps)
    # ends two orders of magnitude down, like ``exponential``
    decay_rate = 0.01 ** (decay_steps / budget.total_steps) if decay_rate is None else decay_rate
    need(decay_rate > 0, "decay_rate must be > 0", decay_rate)
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
    need(decay_steps >= 1, "decay_steps must be >= 1", decay_steps)
    # the slow 1/t tail (Robbins and Monro 1951) ends one order of magnitude down
    decay_rate = 9 * decay_steps / budget.total_steps if decay_rate is None else decay_rate
    need(decay_rate >= 0, "decay_rate must be >= 0", decay_rate)
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
    need(0 < decay_frac <= 1, "decay_frac must be in (0, 1]", decay_frac)
    need(0 <= final_lr_frac <= 1, "final_lr_frac must be in [0, 1]", final_lr_frac)
    decay = max(1, round(decay_frac * budget.total_steps))
    fits = warmup + decay <= budget.total_steps
    need(fits, "warmup and decay steps must fit in the total steps", (warmup, decay))
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


def _schedule_free_kwargs(budget, *, warmup_steps=None, warmup_frac=WARMUP_FRAC) -> dict:
    """schedulefree.SGDScheduleFree / AdamWScheduleFree's arguments besides lr."""
    return {"warmup_steps": _warmup_steps(budget, warmup_steps, warmup_frac)}


@schedule(
    "schedule_free",
    replaces_optimizer=_schedule_free_kwargs,
    warmup_steps="round(warmup_frac * total steps)",
)
def schedule_free(
    t, lr, budget, *, warmup_steps: int | None = None, warmup_frac: float = WARMUP_FRAC
):
    """Schedule-free SGD / AdamW: constant lr after the optimizer's own warmup.

    An optimizer family, not a schedule: the engine builds schedulefree.SGDScheduleFree or
    AdamWScheduleFree with ``optimizer_kwargs`` and evaluates the averaged weights
    (``optimizer.eval()``). This is the lr it applies, lr * min(1, (t + 1) / w). Source: Defazio
    et al. 2024 (arXiv:2405.15682), SGDScheduleFree.step in the schedulefree package.
    """
    warmup = _warmup_steps(budget, warmup_steps, warmup_frac)
    return lr * np.minimum(1.0, (t + 1) / max(warmup, 1))
