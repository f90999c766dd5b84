"""The schedules (benchmark.catalogue), the gallery and ``python -m benchmark schedule``.

PyTorch's lr_scheduler classes are the reference: every schedule of the issue's table must give
the sequence its class gives when stepped after each optimizer step (or epoch), to rel. 1e-9.
"""

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import schedulefree
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as ref

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.plateau import Plateau
from benchmark.catalogue.schedules import (
    SCHEDULES,
    Budget,
    controller,
    optimizer_kwargs,
    sequences,
)
from benchmark.cli import main
from benchmark.tools import gallery

ROOT = Path(__file__).resolve().parents[1]
LR = 0.1
RTOL = 1e-9
BUDGETS = {
    "3x10": Budget.from_epochs(3, 10),
    "partial-epoch": Budget(95, 10),  # steps per epoch do not divide the budget
    "7x13": Budget.from_epochs(7, 13),
    "one-step": Budget(1, 1),
}


def torch_sequences(make, budget: Budget, per_epoch: bool, lr: float = LR):
    """Each update's lr and momentum under ``make(optimizer, budget)``, stepped as in the table."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    scheduler = make(optimizer, budget)
    lrs, momenta = [], []
    for k in range(budget.total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()  # no gradients: changes nothing, but keeps torch's step order
        if not per_epoch or (k + 1) % budget.steps_per_epoch == 0:
            scheduler.step()
    return np.array(lrs), np.array(momenta)


def warmup_cosine_ref(o, b, warmup, start_factor=0.01, eta_min=0.0):
    phases = [
        ref.LinearLR(o, start_factor, 1.0, warmup),
        ref.CosineAnnealingLR(o, b.total_steps - warmup, eta_min),
    ]
    return ref.SequentialLR(o, phases, [warmup])


# (name, params, torch scheduler, stepped per epoch): every row of the issue's table
CASES = [
    ("constant", {}, lambda o, b: ref.LambdaLR(o, lambda _: 1.0), False),
    ("step", {"step_size": 2, "gamma": 0.5}, lambda o, b: ref.StepLR(o, 2, 0.5), True),
    ("step", {"step_size": 1}, lambda o, b: ref.StepLR(o, 1), True),
    ("multistep", {"milestones": [2, 5]}, lambda o, b: ref.MultiStepLR(o, [2, 5]), True),
    (
        "multistep",
        {"milestones": [0, 3, 3], "gamma": 0.5},
        lambda o, b: ref.MultiStepLR(o, [0, 3, 3], 0.5),
        True,
    ),
    ("exponential", {"gamma": 0.9}, lambda o, b: ref.ExponentialLR(o, 0.9), True),
    ("cosine", {}, lambda o, b: ref.CosineAnnealingLR(o, b.total_steps), False),
    (
        "cosine",
        {"T_max": 7, "eta_min": 0.001},
        lambda o, b: ref.CosineAnnealingLR(o, 7, 0.001),
        False,
    ),
    ("cosine_restarts", {"T_0": 7}, lambda o, b: ref.CosineAnnealingWarmRestarts(o, 7), False),
    (
        "cosine_restarts",
        {"T_0": 4, "T_mult": 2, "eta_min": 0.01},
        lambda o, b: ref.CosineAnnealingWarmRestarts(o, 4, 2, 0.01),
        False,
    ),
    ("cosine_restarts", {"T_0": 1}, lambda o, b: ref.CosineAnnealingWarmRestarts(o, 1), False),
    (
        "cyclic",
        {"base_lr": 0.01, "step_size_up": 5, "step_size_down": 3},
        lambda o, b: ref.CyclicLR(o, 0.01, LR, 5, 3),
        False,
    ),
    (
        "cyclic",
        {"base_lr": 0.01, "step_size_up": 4, "mode": "triangular2"},
        lambda o, b: ref.CyclicLR(o, 0.01, LR, 4, mode="triangular2"),
        False,
    ),
    (
        "cyclic",
        {
            "base_lr": 0.02,
            "step_size_up": 6,
            "step_size_down": 2,
            "mode": "exp_range",
            "gamma": 0.99,
        },
        lambda o, b: ref.CyclicLR(o, 0.02, LR, 6, 2, mode="exp_range", gamma=0.99),
        False,
    ),
    (
        "cyclic",
        {"base_lr": 0.0, "step_size_up": 3, "base_momentum": 0.7, "max_momentum": 0.95},
        lambda o, b: ref.CyclicLR(o, 0.0, LR, 3, base_momentum=0.7, max_momentum=0.95),
        False,
    ),
    (
        "cyclic",
        {"base_lr": 0.01, "step_size_up": 5, "cycle_momentum": False},
        lambda o, b: ref.CyclicLR(o, 0.01, LR, 5, cycle_momentum=False),
        False,
    ),
    ("onecycle", {}, lambda o, b: ref.OneCycleLR(o, LR, b.total_steps), False),
    (
        "onecycle",
        {
            "pct_start": 0.25,
            "anneal_strategy": "linear",
            "div_factor": 10.0,
            "final_div_factor": 100.0,
        },
        lambda o, b: ref.OneCycleLR(
            o,
            LR,
            b.total_steps,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        False,
    ),
    (
        "onecycle",
        {"three_phase": True},
        lambda o, b: ref.OneCycleLR(o, LR, b.total_steps, three_phase=True),
        False,
    ),
    (
        "onecycle",
        {"cycle_momentum": False},
        lambda o, b: ref.OneCycleLR(o, LR, b.total_steps, cycle_momentum=False),
        False,
    ),
    ("polynomial", {}, lambda o, b: ref.PolynomialLR(o, b.total_steps), False),
    (
        "polynomial",
        {"total_iters": 10, "power": 2.0},
        lambda o, b: ref.PolynomialLR(o, 10, 2.0),
        False,
    ),
    ("polynomial", {"power": 0.5}, lambda o, b: ref.PolynomialLR(o, b.total_steps, 0.5), False),
    ("linear", {}, lambda o, b: ref.LinearLR(o, 1.0, 0.0, b.total_steps), False),
    (
        "linear",
        {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 5},
        lambda o, b: ref.LinearLR(o, 0.25, 1.0, 5),
        False,
    ),
    (
        "warmup_cosine",
        {"warmup_steps": 5, "start_factor": 0.1, "eta_min": 0.001},
        lambda o, b: warmup_cosine_ref(o, b, 5, 0.1, 0.001),
        False,
    ),
    ("warmup_cosine", {"warmup_steps": 0}, lambda o, b: warmup_cosine_ref(o, b, 0), False),
    ("warmup_cosine", {"warmup_steps": 1}, lambda o, b: warmup_cosine_ref(o, b, 1), False),
]
TABLE = {name for name, *_ in CASES} | {"plateau"}


def fits(params, budget) -> bool:
    return params.get("warmup_steps", 0) < budget.total_steps


CONFORMANCE = [
    pytest.param(name, params, make, per_epoch, budget, id=f"{name}-{i}-{label}")
    for i, (name, params, make, per_epoch) in enumerate(CASES)
    for label, budget in BUDGETS.items()
    if fits(params, budget)
]


# ------------------------------------------------------------------------ conformance with torch


@pytest.mark.parametrize(("name", "params", "make", "per_epoch", "budget"), CONFORMANCE)
def test_matches_pytorch(name, params, make, per_epoch, budget):
    ours = sequences(name, LR, budget, params)
    lrs, momenta = torch_sequences(make, budget, per_epoch)
    assert ours.lr.dtype == np.float64
    np.testing.assert_allclose(ours.lr, lrs, rtol=RTOL, atol=0)
    if ours.momentum is None:
        assert np.all(momenta == 0.9)  # the schedule leaves momentum alone, as torch's does
    else:
        np.testing.assert_allclose(ours.momentum, momenta, rtol=RTOL, atol=0)


def test_every_table_row_has_a_conformance_case():
    issue_table = {"constant", "step", "multistep", "exponential", "cosine", "cosine_restarts"}
    issue_table |= {"cyclic", "onecycle", "polynomial", "linear", "warmup_cosine", "plateau"}
    assert issue_table == TABLE
    assert issue_table <= set(SCHEDULES)


@pytest.mark.parametrize(
    ("name", "explicit"),
    [
        ("step", {"step_size": 4, "gamma": 0.1}),  # 10 epochs: a third, rounded up
        ("multistep", {"milestones": [5, 7]}),
        ("exponential", {"gamma": 0.01**0.1}),
        ("cosine", {"T_max": 500}),
        ("cosine_restarts", {"T_0": 125, "T_mult": 1}),
        ("cyclic", {"base_lr": LR / 4, "step_size_up": 125, "step_size_down": 125}),
        ("polynomial", {"total_iters": 500}),
        ("linear", {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 500}),
        ("warmup_cosine", {"warmup_steps": 25, "start_factor": 0.01}),
        ("wsd", {"warmup_steps": 25}),
        ("rsqrt", {"warmup_steps": 25}),
        ("exponential_decay", {"decay_steps": 50, "decay_rate": 0.01**0.1}),
        ("inverse_time", {"decay_steps": 50, "decay_rate": 0.9}),
    ],
)
def test_defaults_follow_the_budget(name, explicit):
    budget = Budget.from_epochs(10, 50)
    defaults, given_ = sequences(name, LR, budget), sequences(name, LR, budget, explicit)
    np.testing.assert_allclose(defaults.lr, given_.lr, rtol=1e-12, atol=0)


def test_onecycle_with_a_one_step_warmup_continues_torchs_sequence():
    """pct_start * total_steps == 1: OneCycleLR divides by 0; ours is its limit from above."""
    lr = sequences("onecycle", LR, Budget(10, 10), {"pct_start": 0.1}).lr
    make = lambda o, b: ref.OneCycleLR(o, LR, 10, pct_start=0.1 + 1e-12)  # noqa: E731
    np.testing.assert_allclose(lr, torch_sequences(make, Budget(10, 10), False)[0], rtol=1e-9)


def test_schedule_free_matches_the_optimizers_own_warmup():
    budget = Budget(40, 10)
    param = torch.zeros(1, requires_grad=True)
    param.grad = torch.zeros(1)
    kwargs = optimizer_kwargs("schedule_free", budget, {"warmup_steps": 8})
    optimizer = schedulefree.SGDScheduleFree([param], lr=LR, **kwargs)
    optimizer.train()
    applied = []
    for _ in range(budget.total_steps):
        optimizer.step()
        applied.append(optimizer.param_groups[0]["scheduled_lr"])
    ours = sequences("schedule_free", LR, budget, {"warmup_steps": 8}).lr
    np.testing.assert_allclose(ours, applied, rtol=RTOL, atol=0)
    assert optimizer_kwargs("schedule_free", budget) == {"warmup_steps": 2}  # round(0.05 * 40)
    assert optimizer_kwargs("cosine", budget) is None  # keeps the task's optimizer


# ------------------------------------------------------------------- schedules without torch class


def at(name, steps, lr=LR, budget=None, **params):
    """The registered function evaluated at the given steps (may go past the budget's end)."""
    budget = budget or Budget(100, 10)
    out = SCHEDULES[name].fn(np.array(steps), lr, budget, **params)
    return out[0] if isinstance(out, tuple) else out


def test_exponential_decay_hand_computed():
    kw = {"decay_steps": 10, "decay_rate": 0.5}
    smooth = at("exponential_decay", [0, 5, 10, 25], staircase=False, **kw)
    np.testing.assert_allclose(smooth, [0.1, 0.1 * 0.5**0.5, 0.05, 0.1 * 0.5**2.5], rtol=1e-12)
    stairs = at("exponential_decay", [0, 5, 10, 25], staircase=True, **kw)
    np.testing.assert_allclose(stairs, [0.1, 0.1, 0.05, 0.025], rtol=1e-12)


def test_exponential_decay_with_staircase_is_exponential():
    budget = Budget.from_epochs(10, 50)
    stairs = sequences("exponential_decay", LR, budget, {"staircase": True}).lr
    np.testing.assert_allclose(stairs, sequences("exponential", LR, budget).lr, rtol=1e-12)


def test_inverse_time_hand_computed():
    kw = {"decay_steps": 10, "decay_rate": 0.5}
    smooth = at("inverse_time", [0, 5, 10, 25], staircase=False, **kw)
    np.testing.assert_allclose(smooth, [0.1, 0.08, 0.1 / 1.5, 0.1 / 2.25], rtol=1e-12)
    stairs = at("inverse_time", [0, 5, 10, 25], staircase=True, **kw)
    np.testing.assert_allclose(stairs, [0.1, 0.1, 0.1 / 1.5, 0.1 / 2], rtol=1e-12)


@pytest.mark.parametrize(
    ("shape", "at_85"),
    [
        ("linear", 0.1 + 0.9 * 0.75),
        ("1-sqrt", 0.1 + 0.9 * 0.5),
        ("cosine", 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2),
    ],
)
def test_wsd_hand_computed(shape, at_85):
    kw = {"warmup_steps": 10, "start_factor": 0.1, "final_lr_frac": 0.1, "decay_shape": shape}
    lr = at("wsd", [0, 5, 10, 79, 80, 85, 100], **kw, warmup_frac=0.05, decay_frac=0.2)
    expected = [0.01, 0.1 * (0.1 + 0.9 * 0.5), 0.1, 0.1, 0.1, 0.1 * at_85, 0.01]
    np.testing.assert_allclose(lr, expected, rtol=1e-12)


def test_rsqrt_hand_computed():
    lr = at("rsqrt", [0, 2, 4, 16, 64], warmup_steps=4, warmup_frac=0.05, start_factor=0.25)
    np.testing.assert_allclose(lr, [0.025, 0.0625, 0.1, 0.05, 0.025], rtol=1e-12)
    no_warmup = at("rsqrt", [0, 1, 4, 100], warmup_steps=0, warmup_frac=0.05, start_factor=0.25)
    np.testing.assert_allclose(no_warmup, [0.1, 0.1, 0.05, 0.01], rtol=1e-12)


# ----------------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(1, 3000),
    steps_per_epoch=st.integers(1, 400),
    lr=st.floats(1e-5, 10.0),
)
def test_every_schedule_is_sane_on_any_budget(total, steps_per_epoch, lr):
    budget = Budget(total, steps_per_epoch)
    for name in SCHEDULES:
        seq = sequences(name, lr, budget)
        assert seq.lr.shape == (total,), name
        assert seq.lr.dtype == np.float64, name
        assert np.all(np.isfinite(seq.lr)), name
        assert np.all(seq.lr >= 0), name
        assert seq.lr.max() <= lr * (1 + 1e-12), name  # no default exceeds the run's lr
        if seq.momentum is not None:
            assert np.all((seq.momentum >= 0) & (seq.momentum <= 1)), name


def test_gamma_above_one_may_exceed_the_runs_lr():
    """Allowed as in PyTorch: exponential growth is the LR range test (Smith 2017)."""
    assert sequences("exponential", LR, Budget(30, 10), {"gamma": 2.0}).lr.max() == 4 * LR


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("warmup_cosine", {}),
        ("wsd", {}),
        ("rsqrt", {}),
        ("schedule_free", {}),
        ("warmup_cosine", {"warmup_steps": 100}),
        ("wsd", {"warmup_frac": 0.3, "start_factor": 0.5}),
    ],
)
def test_warmup_rises_monotonically_to_the_peak(name, params):
    budget = Budget(1000, 100)
    warmup = params.get("warmup_steps", round(params.get("warmup_frac", 0.05) * 1000))
    lr = sequences(name, LR, budget, params).lr
    assert np.all(np.diff(lr[: warmup + 1]) >= 0)
    assert lr[0] < lr[warmup] == pytest.approx(LR)


def test_onecycle_rises_to_the_peak_then_falls():
    seq = sequences("onecycle", LR, Budget(1000, 100))
    peak = int(np.argmax(seq.lr))
    assert peak == 299  # pct_start = 0.3
    assert seq.lr[peak] == pytest.approx(LR)
    assert np.all(np.diff(seq.lr[: peak + 1]) > 0)
    assert np.all(np.diff(seq.lr[peak:]) < 0)
    assert seq.momentum[peak] == pytest.approx(0.85)  # momentum is lowest at the peak


END = LR / 25 / 1e4  # onecycle's last lr: initial / final_div_factor


@pytest.mark.parametrize(
    ("name", "params", "step", "expected"),
    [  # budget: 10 epochs of 50 steps; step 499 is the last update, 500 the end of training
        ("constant", {}, 499, LR),
        ("step", {}, 499, LR * 0.01),  # two cuts by 0.1
        ("multistep", {"milestones": [2], "gamma": 0.5}, 499, LR / 2),
        ("exponential", {}, 500, LR * 0.01),
        ("cosine", {"eta_min": 0.003}, 500, 0.003),
        (
            "cosine_restarts",
            {"eta_min": 0.003},
            499,
            0.003 + 0.097 * (1 + math.cos(math.pi * 124 / 125)) / 2,
        ),
        ("cyclic", {}, 500, LR / 4),  # a cycle's end: back at base_lr
        ("onecycle", {}, 499, END),
        ("onecycle", {"three_phase": True}, 499, END),
        ("polynomial", {}, 500, 0.0),
        ("linear", {"end_factor": 0.2}, 500, 0.2 * LR),
        ("warmup_cosine", {"eta_min": 0.003}, 500, 0.003),
        ("exponential_decay", {}, 500, LR * 0.01),
        ("inverse_time", {}, 500, LR / 10),
        ("wsd", {"final_lr_frac": 0.1}, 500, 0.1 * LR),
        ("rsqrt", {}, 500, LR * math.sqrt(25 / 500)),
        ("schedule_free", {}, 499, LR),
    ],
)
def test_ends_where_its_parameters_say(name, params, step, expected):
    budget = Budget.from_epochs(10, 50)
    sequences(name, LR, budget, params)  # the parameters are valid
    params = {k: p.default for k, p in SCHEDULES[name].params.items()} | params
    assert at(name, [step], budget=budget, **params)[0] == pytest.approx(expected, rel=1e-9)


def test_registry_entries_are_documented():
    for name, entry in SCHEDULES.items():
        assert entry.summary, name
        budget_relative = {k for k, p in entry.params.items() if p.default is None}
        assert set(entry.auto) == budget_relative, name


def test_registry_lists_pytorchs_schedules_first():
    """schedules.py imports schedules_pytorch before schedules_beyond: --list and the gallery
    follow."""
    modules = [entry.fn.__module__.rsplit(".", 1)[-1] for entry in SCHEDULES.values()]
    assert modules == sorted(modules, key=["schedules_pytorch", "schedules_beyond"].index)


# ------------------------------------------------------------------------------ plateau


def torch_plateau(metrics, lr=LR, **options):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = ref.ReduceLROnPlateau(optimizer, **options)
    lrs = []
    for metric in metrics:
        scheduler.step(metric)
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


PLATEAU_CASES = [
    ({"patience": 2}, [5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.5, 3.5, 3.5, 3.5]),
    ({"patience": 1, "cooldown": 2}, [1.0] * 12),
    ({"patience": 0, "factor": 0.5, "min_lr": 0.02}, [1.0] * 8),  # floors at min_lr
    ({"patience": 0, "factor": 0.5, "min_lr": 0.1 - 5e-9}, [1.0] * 3),  # cut below eps: skipped
    (
        {"mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 1},
        [0.5, 0.505, 0.52, 0.525, 0.528, 0.6],
    ),
    ({"patience": 1}, [1.0, float("nan"), float("nan"), 0.5, float("nan"), float("nan")]),
]


@pytest.mark.parametrize(("options", "metrics"), PLATEAU_CASES)
def test_plateau_matches_pytorch(options, metrics):
    controller = Plateau(LR, **options)
    assert [controller.step(m) for m in metrics] == torch_plateau(metrics, **options)


@settings(max_examples=60, deadline=None)
@given(
    metrics=st.lists(st.sampled_from([0.1, 0.5, 0.50004, 0.9, 1.0, 2.0]), max_size=40),
    patience=st.integers(0, 4),
    cooldown=st.integers(0, 3),
    factor=st.sampled_from([0.1, 0.5, 0.9]),
    min_lr=st.sampled_from([0.0, 1e-3]),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
)
def test_plateau_matches_pytorch_on_any_metrics(metrics, **options):
    controller = Plateau(LR, **options)
    assert [controller.step(m) for m in metrics] == torch_plateau(metrics, **options)


def test_plateau_state_dict_resumes_exactly():
    metrics = [3.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    whole = Plateau(LR, patience=1, cooldown=1)
    expected = [whole.step(m) for m in metrics]
    first = Plateau(LR, patience=1, cooldown=1)
    lrs = [first.step(m) for m in metrics[:5]]
    resumed = Plateau(1.0)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))  # a JSON round trip
    assert lrs + [resumed.step(m) for m in metrics[5:]] == expected


def test_plateau_controller_defaults_follow_the_budget():
    budget = Budget.from_epochs(10, 50, evals_per_epoch=4)
    plateau = controller("plateau", LR, budget)
    assert plateau.patience == 4  # a tenth of 40 evaluations
    assert plateau.metric == "val_loss"
    assert controller("plateau", LR, budget, {"patience": 2, "mode": "max"}).metric == "val_acc"
    assert np.all(sequences("plateau", LR, budget).lr == LR)  # before any cut
    assert controller("cosine", LR, budget) is None  # closed form: no controller


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("cosine", {"T_maxx": 3}, "unknown parameter 'T_maxx'; known: T_max, eta_min"),
        ("cosine_restarts", {"T_0": 1.5}, "T_0 must be an integer, got 1.5"),
        (
            "cyclic",
            {"mode": "sine"},
            'mode must be one of "triangular", "triangular2", "exp_range"',
        ),
        ("multistep", {"milestones": 3}, "milestones must be a list, each an integer"),
        ("onecycle", {"three_phase": 1}, "three_phase must be true or false"),
        ("step", {"gamma": "0.1"}, "gamma must be a number"),
        ("step", {"gamma": 0}, "gamma must be > 0, got 0"),
        ("exponential", {"gamma": -0.5}, "gamma must be > 0"),
        ("onecycle", {"pct_start": 0.0}, r"pct_start must be in \(0, 1\), got 0.0"),
        ("onecycle", {"pct_start": 1.0}, r"pct_start must be in \(0, 1\)"),
        ("onecycle", {"pct_start": 1.5}, r"pct_start must be in \(0, 1\)"),
        ("cyclic", {"step_size_up": -1}, "step_size_up and step_size_down must be >= 1"),
        ("warmup_cosine", {"warmup_steps": -3}, r"warmup_steps must be in \[0, total steps\)"),
        ("warmup_cosine", {"warmup_steps": 1000}, r"warmup_steps must be in \[0, total steps\)"),
        ("cosine", {"T_max": 0}, "T_max must be >= 1"),
        ("polynomial", {"total_iters": -5}, "total_iters must be >= 1"),
        ("step", {"step_size": 0}, "step_size must be >= 1"),
        ("cosine", {"eta_min": 0.2}, r"eta_min must be in \[0, lr\]"),
        (
            "wsd",
            {"warmup_frac": 0.5, "decay_frac": 0.6},
            "warmup and decay steps must fit in the total steps",
        ),
        ("plateau", {"factor": 1.5}, r"factor must be in \(0, 1\)"),
        ("linear", {"start_factor": 0.0}, r"start_factor must be in \(0, 1\]"),
    ],
)
def test_bad_parameters_raise_one_clear_line(name, params, message):
    with pytest.raises(InputError, match=f"^schedule {name}: {message}") as err:
        sequences(name, LR, Budget(100, 10), params)
    assert "\n" not in str(err.value)


def test_unknown_schedule_suggests_the_closest_and_lists_the_valid_names():
    expected = "unknown schedule 'cosin'; did you mean 'cosine'? valid: constant, cosine,"
    with pytest.raises(InputError, match=re.escape(expected)):
        sequences("cosin", LR, Budget(10, 10))
    with pytest.raises(InputError, match="unknown schedule 'zzz'; valid: constant, cosine,"):
        sequences("zzz", LR, Budget(10, 10))  # nothing close: no guess


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf"), "0.1"])
def test_bad_lr(lr):
    with pytest.raises(InputError, match="lr must be a number > 0"):
        sequences("constant", lr, Budget(10, 10))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Budget(0, 10), "total_steps must be an integer >= 1, got 0"),
        (lambda: Budget(10, 2.5), "steps_per_epoch must be an integer >= 1"),
        (lambda: Budget.from_epochs(0, 10), "epochs must be an integer >= 1"),
        (lambda: Budget.from_epochs(3, -1), "steps_per_epoch must be an integer >= 1"),
    ],
)
def test_bad_budget(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_budget_counts_a_partial_last_epoch():
    budget = Budget(95, 10, evals_per_epoch=2)
    assert (budget.epochs, budget.evals) == (10, 20)
    assert budget.epoch(np.array([0, 9, 10, 94])).tolist() == [0, 0, 1, 9]


# -------------------------------------------------------------------------- user schedules


@pytest.fixture
def examples_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.mark.usefixtures("examples_importable")
def test_user_schedule_per_epoch_chains_like_keras():
    lr = sequences("examples.user_schedule:halve_every_3_epochs", LR, Budget.from_epochs(7, 2)).lr
    per_epoch = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]  # each call sees the previous epoch's lr
    np.testing.assert_allclose(lr, np.repeat(per_epoch, 2), rtol=1e-15)


@pytest.mark.usefixtures("examples_importable")
def test_user_schedule_per_step_scales_the_runs_lr():
    lr = sequences("examples.user_schedule:cosine_to_tenth", LR, Budget(50, 10)).lr
    t = np.arange(50)
    np.testing.assert_allclose(lr, LR * (0.1 + 0.9 * (1 + np.cos(np.pi * t / 50)) / 2), rtol=1e-12)


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("no_such_module_xyz:f", {}, "No module named 'no_such_module_xyz'"),
        ("math:no_such_function", {}, "no attribute 'no_such_function'"),
        ("math:sqrt", {}, r"is f\(x\); expected f\(epoch, lr\) -> lr or f\(step, total_steps\)"),
        ("user_bad:negative", {}, "lr -0.1 at step 3; an lr must be finite and >= 0"),
        ("user_bad:not_finite", {}, "lr nan at step 0"),
        ("user_bad:fine", {"gamma": 0.5}, "unknown parameter 'gamma'; known: none"),
    ],
)
def test_bad_user_schedules(tmp_path, monkeypatch, spec, params, message):
    (tmp_path / "user_bad.py").write_text(
        "def negative(step, total_steps):\n    return -1.0 if step == 3 else 1.0\n"
        "def not_finite(epoch, lr):\n    return float('nan')\n"
        "def fine(step, total_steps):\n    return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match=message):
        sequences(spec, LR, Budget(10, 5), params)


# ---------------------------------------------------------------------------- gallery


def test_gallery_has_a_panel_per_schedule_and_renders():
    fig = gallery.gallery_figure(budget=Budget(200, 20))
    titles = {ax.get_title() for ax in fig.axes}
    assert {name for name in SCHEDULES if name != "plateau"} <= titles
    assert "plateau (before any cut)" in titles
    png = io.BytesIO()
    fig.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")


def test_csv_round_trips_every_float():
    seq = sequences("onecycle", LR, Budget(30, 10))
    rows = [line.split(",") for line in gallery.to_csv(seq, Budget(30, 10)).splitlines()]
    assert rows[0] == ["step", "epoch", "lr", "momentum"]
    assert [float(r[2]) for r in rows[1:]] == seq.lr.tolist()
    assert [float(r[3]) for r in rows[1:]] == seq.momentum.tolist()
    assert [int(r[1]) for r in rows[1:]] == [k // 10 for k in range(30)]


# ------------------------------------------------------------------------------------ CLI


def run_cli(capsys, *argv: str):
    code = main(["schedule", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def parse_csv(text: str):
    header, *rows = text.splitlines()
    columns = np.array([[float(x) for x in row.split(",")] for row in rows]).T
    return header, dict(zip(header.split(","), columns, strict=True))


def test_done_when_onecycle_csv_is_torchs_onecycle(capsys):
    argv = ["onecycle", "--lr", "0.1", "--epochs", "3", "--steps-per-epoch", "10", "--csv"]
    code, out, err = run_cli(capsys, *argv)
    assert (code, err) == (0, "")
    header, columns = parse_csv(out)
    assert header == "step,epoch,lr,momentum"
    make = lambda o, b: ref.OneCycleLR(o, max_lr=0.1, total_steps=30)  # noqa: E731
    lrs, momenta = torch_sequences(make, Budget(30, 10), per_epoch=False)
    np.testing.assert_allclose(columns["lr"], lrs, rtol=RTOL, atol=0)
    np.testing.assert_allclose(columns["momentum"], momenta, rtol=RTOL, atol=0)
    assert columns["step"].tolist() == list(range(30))


@pytest.mark.parametrize(
    ("name", "params", "make", "per_epoch"),
    [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(CASES)],
)
def test_cli_csv_matches_pytorch_for_every_table_row(capsys, name, params, make, per_epoch):
    sets = [arg for k, v in params.items() for arg in ("--set", f"{k}={json.dumps(v)}")]
    argv = [name, "--lr", str(LR), "--epochs", "7", "--steps-per-epoch", "13", "--csv", *sets]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    _, columns = parse_csv(out)
    lrs, momenta = torch_sequences(make, Budget.from_epochs(7, 13), per_epoch)
    np.testing.assert_allclose(columns["lr"], lrs, rtol=RTOL, atol=0)
    if "momentum" in columns:
        np.testing.assert_allclose(columns["momentum"], momenta, rtol=RTOL, atol=0)


def test_cli_list_shows_every_schedule_and_its_defaults(capsys):
    code, out, _ = run_cli(capsys, "--list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == [*SCHEDULES, "module:function"]
    assert "T_max=<total steps>" in out
    assert 'anneal_strategy="cos"' in out


def test_cli_plot_writes_a_png(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "cyclic", "--plot", str(tmp_path / "cyclic.png"))
    assert (code, out) == (0, f"plot: {tmp_path / 'cyclic.png'}\n")  # says where it went
    assert (tmp_path / "cyclic.png").read_bytes().startswith(b"\x89PNG")


def test_cli_gallery_writes_every_schedule_to_a_png(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "--gallery", str(tmp_path / "all.png"))
    assert (code, out) == (0, f"gallery: {tmp_path / 'all.png'}\n")
    assert (tmp_path / "all.png").read_bytes().startswith(b"\x89PNG")


def test_cli_user_schedule(capsys, examples_importable):
    code, out, _ = run_cli(capsys, "examples.user_schedule:cosine_to_tenth", "--epochs", "2")
    assert code == 0
    assert out.startswith("examples.user_schedule:cosine_to_tenth: 200 steps")


def test_cli_set_takes_a_bare_word_as_text(capsys):
    quoted = run_cli(capsys, "cyclic", "--set", 'mode="triangular2"', "--csv")
    bare = run_cli(capsys, "cyclic", "--set", "mode=triangular2", "--csv")
    default = run_cli(capsys, "cyclic", "--csv")
    assert bare == quoted
    assert bare[0] == 0
    assert bare[1] != default[1]  # triangular2 halves the amplitude each cycle; triangular not


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cosin"], "error: unknown schedule 'cosin'; did you mean 'cosine'? valid: constant,"),
        (["cyclic", "--set", "mode=[1,"], "error: --set 'mode=[1,': expected KEY=VALUE, VALUE"),
        (["cyclic", "--set", "mode"], "error: --set 'mode': expected KEY=VALUE"),
        (
            ["cosine", "--set", "T_maxx=3"],
            "error: schedule cosine: unknown parameter 'T_maxx'; known: T_max, eta_min",
        ),
        (
            ["cosine_restarts", "--set", "T_0=1.5"],
            "error: schedule cosine_restarts: T_0 must be an integer",
        ),
        (["step", "--set", "gamma=0"], "error: schedule step: gamma must be > 0"),
        (["onecycle", "--set", "pct_start=1.5"], "error: schedule onecycle: pct_start must be in"),
        (["cyclic", "--set", "step_size_up=-4"], "error: schedule cyclic: step_size_up and"),
        (["step", "--epochs", "0"], "error: epochs must be an integer >= 1, got 0"),
        (["step", "--lr", "-1"], "error: schedule step: lr must be a number > 0"),
        (
            ["step", "--plot", "/no/such/folder/x.png"],
            "error: --plot /no/such/folder/x.png: expected",
        ),
        (["step", "--plot", "x.jpg"], "error: --plot x.jpg: expected FILE.png"),
        (["--gallery", "x.svg"], "error: --gallery x.svg: expected FILE.png"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_cli_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["schedule", "step", "--lr", "fast"])
    assert exit_.value.code == 2
    assert "--lr: invalid float value" in capsys.readouterr().err


def test_cli_entry_point_in_a_subprocess(capsys):
    argv = ["onecycle", "--lr", "0.1", "--epochs", "3", "--steps-per-epoch", "10", "--csv"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "schedule", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == run_cli(capsys, *argv)[1]
