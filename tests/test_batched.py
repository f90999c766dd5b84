"""The batched engine (benchmark/engines/batched.py) against the single engine, and its parts.

Every task trains on the in-memory digits (conftest.py). A group mixes schedules (plateau,
schedule_free, onecycle, a user schedule), lrs and seeds, with one run that early-stops and one
whose lr diverges; each batched record must equal the single engine's record of the same spec
in everything discrete (status, the step it diverged or stopped at, the curve's steps and lrs,
the targets reached, the fields) and in its numbers to within ``RTOL``.

The comparison is the test kit's engine harness (``testkit.assert_engine_matches_single``),
which any engine runs against the single engine. Why a tolerance: the batched engine computes
the same functions with other summation orders (a batched matrix product instead of one per run,
a wide product for runs that share inputs, the loss averaged per run from unreduced losses) and
fused multiply-adds, so its float32 results differ from the single engine's in the last bits,
and training carries that difference on. Over these runs' 20 updates it stays below 1e-4
relative for losses; accuracies count whole examples and agree exactly here.
"""

import weakref

import numpy as np
import pytest
import torch

from benchmark.catalogue.schedules import SCHEDULES, Schedule
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import TASKS
from benchmark.data import datasets as data
from benchmark.engines import batched, device, models, stacked
from benchmark.engines.batched import GroupRun, chunk_size, train_group
from benchmark.engines.registry import ENGINES
from benchmark.engines.semantics import build_model
from benchmark.engines.single import SingleRun
from benchmark.records import record
from testkit import Noisy, assert_engine_matches_single, assert_equivalent

CPU = torch.device("cpu")
# 4 updates an epoch; 2 epochs, 2 evaluations each; 50 dev and test examples
SMALL = {"epochs": 2, "batch_size": 32, "evals_per_epoch": 2, "train_size": 128, "eval_size": 50}
# overflows float32 within two updates: a softmax's bounded gradient needs the largest lr
DIVERGING_LR = {"logreg": 1e38}
# The CNN's runs train on the split's first examples: on the subsets that seed 0 draws, one
# CNN trajectory amplifies float32 rounding ~1000-fold in 8 updates (1e-7 relative noise on
# its gradients moves its final dev loss by ~1e-4 in the single engine alone), so the engines'
# summation orders part beyond RTOL there. Every other model trains on per-seed subsets.
SUBSET = {"cnn_2c2d": "first"}


def group(task: str) -> list[RunSpec]:
    """Eight runs of ``task``, four per seed (so the two seeds' runs share their batches)."""
    lr = TASKS[task].lr
    user = "examples.user_schedule:halve_every_3_epochs"
    diverging = DIVERGING_LR.get(TASKS[task].model, 1e36)
    runs = [
        ("constant", 0, lr / 2, {}), ("plateau", 0, lr, {}), ("schedule_free", 0, lr, {}),
        ("constant", 0, diverging, {}), ("onecycle", 1, lr, {}), ("schedule_free", 1, lr / 2, {}),
        (user, 1, lr, {}), ("cosine", 1, 2 * lr, {"early_stopping": 1}),
    ]  # fmt: skip
    subset = {"subset": SUBSET.get(TASKS[task].model, "per-seed")}
    return [
        RunSpec.make(task, sch, seed=seed, lr=x, **SMALL | subset | more)
        for sch, seed, x, more in runs
    ]


@pytest.mark.parametrize("task", list(TASKS))
def test_batched_records_equal_the_single_engines(digit_tasks, task):
    specs = group(task)
    batched = assert_engine_matches_single("batched", specs, digit_tasks)
    assert [r["status"] for r in batched].count("diverged") == 1
    timing = batched[0]["timing"]
    assert timing["group_runs"] == len(specs)
    assert timing["train_s"] == pytest.approx(timing["group_train_s"] / len(specs))


def test_plateau_cuts_follow_the_single_engine(digit_tasks):
    # patience 0 and a 50% threshold: nearly every evaluation cuts the lr, mid-group
    cut = {"patience": 0, "threshold": 0.5}
    specs = [
        RunSpec.make("mnist_mlp", "plateau", seed=s, lr=lr, schedule_params=cut, **SMALL)
        for s in (0, 1) for lr in (0.05, 0.3)
    ]  # fmt: skip
    batched = assert_engine_matches_single("batched", specs, digit_tasks)
    cuts = [len({p["lr"] for p in b["curve"]}) - 1 for b in batched]
    assert min(cuts) >= 1, cuts  # every run cut
    assert max(cuts) >= 2, cuts  # some twice


def test_the_loss_is_the_tasks_in_both_engines(digit_tasks, monkeypatch):
    """A task that declares another loss (multi-class hinge) trains with it in both engines,
    and its curve is not cross-entropy's."""
    import dataclasses

    task = TASKS["mnist_mlp"]  # cross-entropy, the default
    hinge = dataclasses.replace(task, loss="torch.nn.functional:multi_margin_loss")
    monkeypatch.setitem(TASKS, "mnist_mlp", hinge)
    specs = group("mnist_mlp")[:3]
    batched = assert_engine_matches_single("batched", specs, digit_tasks)
    monkeypatch.setitem(TASKS, "mnist_mlp", task)
    plain = SingleRun(specs[0], digit_tasks, CPU).run()
    assert batched[0]["curve"][0]["val_loss"] != pytest.approx(plain["curve"][0]["val_loss"])
    assert batched[0]["curve"][0]["val_loss"] < 1.5  # a hinge loss at init, not log(10) ~ 2.3


class Halving:
    """A plugin's controller: halves the lr after every evaluation whose dev accuracy is
    below ``bar`` (plateau's controller would keep it while the dev loss falls)."""

    metric = "val_acc"

    def __init__(self, lr: float, bar: float):
        self.lr, self.bar, self.fed = lr, bar, []

    def step(self, value: float) -> float:
        self.fed.append(value)
        self.lr *= 0.5 if value < self.bar else 1.0
        return self.lr


def halving(t, lr, budget, *, bar: float = 2.0):
    """Halve the lr at each evaluation below ``bar`` dev accuracy (a plugin's stateful schedule)."""
    return Halving(lr, bar)


def test_a_plugin_stateful_schedule_gets_its_own_controller(digit_tasks, monkeypatch):
    """Declared stateful, it is fed its own metric and its lr follows it, in both engines,
    next to plateau runs that keep plateau's controller."""
    monkeypatch.setitem(SCHEDULES, "halving", Schedule("halving", halving, stateful=True))
    specs = [
        RunSpec.make("mnist_mlp", name, seed=s, lr=0.05, schedule_params=params, **SMALL)
        for s in (0, 1)
        for name, params in (("halving", {}), ("plateau", {"patience": 100}))
    ]  # fmt: skip
    batched = assert_engine_matches_single("batched", specs, digit_tasks)
    for spec, b in zip(specs, batched, strict=True):
        lrs = [p["lr"] for p in b["curve"]]  # the single engine's, exactly (the harness)
        if spec.schedule == "halving":  # bar 2: every evaluation halves, from the next update
            assert lrs == [0.05 * 0.5 ** max(i - 1, 0) for i in range(len(lrs))]
        else:  # patience 100: plateau never cuts
            assert set(lrs) == {0.05}
    plateau_digest = {b["digests"]["lr"] for b in batched if b["spec"]["schedule"] == "plateau"}
    halving_digest = {b["digests"]["lr"] for b in batched if b["spec"]["schedule"] == "halving"}
    assert len(plateau_digest) == len(halving_digest) == 1  # the same lrs on both seeds
    assert plateau_digest != halving_digest


def test_the_plugin_controller_is_fed_the_metric_it_names(digit_tasks, monkeypatch):
    monkeypatch.setitem(SCHEDULES, "halving", Schedule("halving", halving, stateful=True))
    single = SingleRun(RunSpec.make("mnist_mlp", "halving", seed=0, **SMALL), digit_tasks, CPU)
    record = single.run()
    assert single.rules.controller.fed == [p["val_acc"] for p in record["curve"][1:]]


@pytest.mark.parametrize("task", list(TASKS))
def test_every_model_vectorises(task):
    module = build_model(TASKS[task], 0, CPU)
    forward = stacked.forward_for(module, models.MODELS[TASKS[task].model].stacked)
    assert stacked.vectorisable(forward, module, CPU, (28, 28)) is None


def test_a_model_that_cannot_vectorise_trains_alone(digit_tasks, monkeypatch):
    import dataclasses

    monkeypatch.setitem(models.MODELS, "noisy", models.Model(Noisy))
    monkeypatch.setitem(TASKS, "noisy", dataclasses.replace(TASKS["mnist_logreg"], model="noisy"))
    specs = [RunSpec.make("noisy", "constant", seed=s, **SMALL) for s in (0, 1)]
    notices = []
    records = train_group(specs, digit_tasks, CPU, log=notices.append)
    assert [r["engine"] for r in records] == ["single", "single"]
    assert len(notices) == 1
    assert "train one at a time" in notices[0]
    assert "vmap" in notices[0] or "random" in notices[0].lower()
    for r in records:  # the record says which engine it was meant for, and why not
        assert r["fallback"]["from"] == "batched"
        assert r["fallback"]["reason"] in notices[0]
        assert record.problem(r) is None
    with pytest.raises(
        batched.FallbackForbiddenError, match=r"2 run\(s\) of noisy .*forbid"
    ) as err:
        train_group(specs, digit_tasks, CPU, fallback="forbid")
    assert records[0]["fallback"]["reason"] in str(err.value)


def test_records_trained_as_asked_carry_no_fallback(digit_tasks):
    records = train_group(group("mnist_logreg")[:2], digit_tasks, CPU, fallback="forbid")
    assert [r["engine"] for r in records] == ["batched", "batched"]
    assert not any("fallback" in r for r in records)


def test_precision_flags_are_set_before_the_check_and_the_sizes(digit_tasks, monkeypatch):
    calls = []
    for module, name in ((batched, "autocast"), (stacked, "vectorisable"), (batched, "chunk_size")):
        real = getattr(module, name)
        monkeypatch.setattr(
            module,
            name,
            lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k),
        )
    train_group(group("mnist_logreg")[:2], digit_tasks, CPU)
    assert calls[:3] == ["autocast", "vectorisable", "chunk_size"]


def test_the_check_runs_in_strict_fp32_and_restores_the_flags():
    inside = []

    def forward(params, x, reads):
        inside.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return torch.ones(sum(u * k for u, k in reads), x.shape[1], 10, requires_grad=True)

    module = build_model(TASKS["mnist_logreg"], 0, CPU)
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        assert stacked.vectorisable(forward, module, CPU, (28, 28)) is not None  # ones: no match
        assert inside
        assert set(inside) == {(False, False)}
        assert torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def test_out_of_memory_halves_the_chunk_and_loses_nothing(digit_tasks, monkeypatch):
    specs = group("mnist_logreg")[:8]
    whole = train_group(specs, digit_tasks, CPU)
    original = GroupRun.__init__

    def small_memory(self, part, *args):
        if len(part) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        original(self, part, *args)

    monkeypatch.setattr(GroupRun, "__init__", small_memory)
    notices = []
    chunked = train_group(specs, digit_tasks, CPU, log=notices.append)
    assert notices == [
        "batched engine: out of memory; 4 runs at a time",
        "batched engine: out of memory; 2 runs at a time",
    ]
    assert [r["key"] for r in chunked] == [s.key for s in specs]
    assert {r["timing"]["group_runs"] for r in chunked} == {2}
    for a, b in zip(whole, chunked, strict=True):
        assert_equivalent(a, b, "batched")


@pytest.mark.parametrize(
    "err",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        MemoryError(),
    ],
)
def test_out_of_memory_is_recognised_from_every_library(err):
    assert device.out_of_memory(err)


@pytest.mark.parametrize(
    "err", [RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED"), ValueError("out of memory"), KeyError()]
)
def test_other_errors_are_not_out_of_memory(err):
    assert not device.out_of_memory(err)


def test_a_library_out_of_memory_halves_the_chunk_after_releasing_it(digit_tasks, monkeypatch):
    """A cuBLAS allocation failure (a plain RuntimeError) mid-training halves the chunk; by the
    time the memory is given back, nothing holds the failed chunk (its traceback is gone)."""
    specs = group("mnist_logreg")[:4]
    whole = train_group(specs, digit_tasks, CPU)
    failed, held = [], []
    original_run, original_release = GroupRun.run, batched.release

    def run(self, progress=False):
        if self.runs > 2:
            failed.append(weakref.ref(self))
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate")
        return original_run(self, progress)

    def release(device):
        original_release(device)
        held.append([ref() is not None for ref in failed])

    monkeypatch.setattr(GroupRun, "run", run)
    monkeypatch.setattr(batched, "release", release)
    notices = []
    chunked = train_group(specs, digit_tasks, CPU, log=notices.append)
    assert notices == ["batched engine: out of memory; 2 runs at a time"]
    assert held == [[False]]
    for a, b in zip(whole, chunked, strict=True):
        assert_equivalent(a, b, "batched")


def test_an_error_that_is_not_out_of_memory_is_raised(digit_tasks, monkeypatch):
    def run(self, progress=False):
        raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED")

    monkeypatch.setattr(GroupRun, "run", run)
    with pytest.raises(RuntimeError, match="EXECUTION_FAILED"):
        train_group(group("mnist_logreg")[:4], digit_tasks, CPU, log=lambda line: None)


def test_runs_whose_seeds_are_unevenly_many_read_their_own_batches(digit_tasks):
    specs = group("mnist_logreg")[:5]  # seed 0 four times, seed 1 once
    assert [s.seed for s in specs] == [0, 0, 0, 0, 1]
    assert_engine_matches_single("batched", specs, digit_tasks)


def test_groups_and_chunks(digit_tasks):
    a = RunSpec.make("mnist_logreg", "cosine", seed=0, **SMALL)
    assert ENGINES["batched"].group_key(a) == ENGINES["batched"].group_key(
        RunSpec.make("mnist_logreg", "plateau", seed=3, lr=0.1, **SMALL)
    )
    assert ENGINES["batched"].group_key(a) != ENGINES["batched"].group_key(
        RunSpec.make("mnist_logreg", "cosine", **SMALL | {"epochs": 3})
    )
    with pytest.raises(ValueError, match="one group"):
        train_group([a, RunSpec.make("mnist_mlp", "cosine", **SMALL)], digit_tasks, CPU)
    module = build_model(TASKS["mnist_mlp"], 0, CPU)
    runs = chunk_size(module, [a] * 5000, CPU)
    assert 1 <= runs <= 1024


@pytest.mark.gpu
@pytest.mark.parametrize("task", list(TASKS))
def test_batched_records_equal_the_single_engines_on_cuda(digit_tasks, task):
    cuda = torch.device("cuda")
    parts = (digit_tasks.train, digit_tasks.dev, digit_tasks.test)
    splits = data.Splits(*(data.Split(p.images.to(cuda), p.labels.to(cuda)) for p in parts))
    batched = assert_engine_matches_single("batched", group(task), splits, cuda)
    assert np.isfinite([b["timing"]["train_s"] for b in batched]).all()
