"""benchmark/engines/vectorised.py: each vectorised step against its torch.optim /
schedulefree twin.

Three runs share one ``[R, n]`` tensor per parameter, each with its own settings and its own
lr and momentum (or beta1) at every update; each run is also stepped alone by the optimizer
it stands for, on the same gradients, with ``optim.set_hyper`` as the single engine sets them.
The rows must follow those optimizers to float32 rounding: the same operations in the same
order, up to fused multiply-adds (rtol 1e-5 after 25 updates).
"""

import numpy as np
import pytest
import torch

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.params import load_named
from benchmark.engines.vectorised import STEPS

STEPS_TAKEN = 25
SHAPES = [(4, 3), (4,)]  # a weight and a bias


def trajectories(cls: str, kwargs: list[dict], lr: np.ndarray, momentum, warmup=0):
    """The parameters after every update: vectorised ([R, ...] per parameter) and alone."""
    gen = torch.Generator().manual_seed(0)
    runs = len(kwargs)
    start = [torch.randn(runs, *s, generator=gen) for s in SHAPES]
    grads = [[torch.randn(runs, *s, generator=gen) for s in SHAPES] for _ in range(STEPS_TAKEN)]
    stacked = [p.clone() for p in start]
    flat = [p.view(runs, -1) for p in stacked]
    step = STEPS[cls]([dict(k) for k in kwargs], flat)
    tables = {
        name: torch.tensor(t, dtype=torch.bool if t.dtype == bool else torch.float32)
        for name, t in step.coefficients(lr, momentum).items()
    }
    alone = []
    for r in range(runs):
        params = [p[r].clone().requires_grad_() for p in start]
        extra = {"warmup_steps": warmup} if "ScheduleFree" in cls else {}
        peak = float(lr[:, r].max())  # schedule-free: warms up to it by itself
        opt = load_named(cls)(params, lr=peak, **kwargs[r], **extra)
        alone.append((params, opt))
        if "ScheduleFree" in cls:
            opt.train()
    for k in range(STEPS_TAKEN):
        coefficients = {name: t[k][:, None] for name, t in tables.items()}
        step.step(flat, [g.view(runs, -1) for g in grads[k]], coefficients)
        for r, (params, opt) in enumerate(alone):
            if "ScheduleFree" not in cls:  # schedule-free warms up a constant lr itself
                cycles = "beta1" if "betas" in kwargs[r] else "momentum"
                optim.set_hyper(opt, cycles, float(lr[k, r]), float(momentum[k, r]))
            for p, g in zip(params, grads[k], strict=True):
                p.grad = g[r].clone()
            opt.step()
    return step, stacked, alone


def assert_rows_follow(stacked, alone):
    for r, (params, _) in enumerate(alone):
        for p, q in zip(stacked, params, strict=True):
            torch.testing.assert_close(p[r], q.detach(), rtol=1e-5, atol=1e-6)


def table(*columns) -> np.ndarray:
    """Per-update values, one column per run."""
    return np.stack([np.broadcast_to(c, STEPS_TAKEN) for c in columns], axis=1).astype(float)


def test_sgd_momentum_nesterov_decay_and_a_momentum_that_starts_late():
    t = np.arange(STEPS_TAKEN)
    lr = table(0.1, 0.05 + 0.01 * np.cos(t), 0.2)
    # run 0 plain SGD (momentum 0); run 1 Nesterov with a cycled momentum; run 2 a momentum
    # that is 0 for its first 5 updates and again at update 12, so its buffer starts late
    late = np.where((t < 5) | (t == 12), 0.0, 0.9)
    momentum = table(0.0, 0.85 + 0.1 * (t % 5) / 5, late)
    kwargs = [
        {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        {"momentum": 0.9, "nesterov": False, "weight_decay": 1e-2},
    ]
    _, stacked, alone = trajectories("torch.optim:SGD", kwargs, lr, momentum)
    assert_rows_follow(stacked, alone)


def test_sgd_without_momentum_anywhere():
    lr = table(0.1, 0.3, 0.01)
    kwargs = [{"momentum": 0.0, "nesterov": False, "weight_decay": w} for w in (0, 0, 1e-3)]
    step, stacked, alone = trajectories("torch.optim:SGD", kwargs, lr, table(0, 0, 0))
    assert step.mode == "none"
    assert_rows_follow(stacked, alone)


@pytest.mark.parametrize("cls", ["torch.optim:Adam", "torch.optim:AdamW"])
def test_adam_family_with_a_cycled_beta1(cls):
    t = np.arange(STEPS_TAKEN)
    lr = table(1e-3, 3e-3 * (1 - t / STEPS_TAKEN), 1e-2)
    beta1 = table(0.9, 0.85 + 0.1 * (t % 7) / 7, 0.8)
    kwargs = [
        {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        {"betas": (0.9, 0.99), "eps": 1e-6, "weight_decay": 0.01},
        {"betas": (0.8, 0.95), "eps": 1e-8, "weight_decay": 0.1},
    ]
    _, stacked, alone = trajectories(cls, kwargs, lr, beta1)
    assert_rows_follow(stacked, alone)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (
            "schedulefree:SGDScheduleFree",
            [{"momentum": 0.9, "weight_decay": w} for w in (0.0, 5e-4, 1e-2)],
        ),
        (
            "schedulefree:AdamWScheduleFree",
            [
                {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                {"betas": (0.95, 0.99), "eps": 1e-8, "weight_decay": 0.01},
                {"betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.1},
            ],
        ),
    ],
)
def test_schedule_free_and_its_averaged_weights(cls, kwargs):
    warmup = 6
    t = np.arange(STEPS_TAKEN)
    peaks = np.array([0.1, 0.03, 0.5]) if "SGD" in cls else np.array([1e-3, 3e-3, 1e-2])
    lr = peaks * np.minimum(1.0, (t + 1) / warmup)[:, None]  # the schedule_free schedule's lr
    step, stacked, alone = trajectories(cls, kwargs, lr, np.zeros_like(lr), warmup)
    assert_rows_follow(stacked, alone)  # y, the training weights
    flat = [p.view(len(kwargs), -1) for p in stacked]
    step.eval(flat)
    for _, opt in alone:
        opt.eval()
    assert_rows_follow(stacked, alone)  # x, the averaged weights evaluated
    step.train(flat)
    for _, opt in alone:
        opt.train()
    assert_rows_follow(stacked, alone)


def test_every_optimizer_has_a_vectorised_step():
    for name in optim.OPTIMIZERS:
        for schedule_free in (False, True):
            cls, _ = optim.resolve(name, {}, schedule_free)
            assert cls in STEPS, (name, schedule_free)
