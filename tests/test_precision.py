"""Precision: the full sweep trains in TF32 on CUDA (full.toml), every record says which
arithmetic it ran with (``spec.precision`` and ``provenance.tf32_*``), and each precision keeps
the tolerance ``spec.TOLERANCES`` declares against fp32 (README "Precision").

On the CPU the GPU's arithmetic is imitated around the single engine, forward and backward:
TF32 by rounding the float32 factors of every product to 10 mantissa bits (what a tensor core
reads; sums stay float32), bf16 by the CPU's own autocast. The ``gpu`` test holds the real
thing through the engine's own ``precision``."""

import contextlib
import functools
from typing import ClassVar

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmark.catalogue.spec import TOLERANCES, RunSpec
from benchmark.catalogue.tasks import TASKS, representatives
from benchmark.cli import main
from benchmark.data import datasets as data
from benchmark.engines.device import torch_threads
from benchmark.engines.registry import ENGINES
from benchmark.sweeps import protocol
from benchmark.tools.perf import sweep_group

aten = torch.ops.aten
CPU = torch.device("cpu")


def tf32(x):
    """``x`` rounded to TF32's 10 mantissa bits (to nearest, ties to even), kept in float32."""
    if not (isinstance(x, torch.Tensor) and x.dtype == torch.float32):
        return x
    bits = x.view(torch.int32)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & ~0x1FFF
    return bits.view(torch.float32)


class TF32Products(TorchDispatchMode):
    """Every matrix product and convolution with TF32 inputs and float32 sums; which
    arguments are the factors, by operator (a bias is added in float32)."""

    FACTORS: ClassVar = {
        aten.mm.default: (0, 1), aten.bmm.default: (0, 1), aten.addmm.default: (1, 2),
        aten.baddbmm.default: (1, 2), aten.convolution.default: (0, 1),
    }  # fmt: skip

    def __init__(self):
        super().__init__()
        self.rounded = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        factors = self.FACTORS.get(func, ())
        args = tuple(tf32(a) if i in factors else a for i, a in enumerate(args))
        self.rounded += bool(factors)
        return func(*args, **(kwargs or {}))


# imitations of the GPU's arithmetic; autocast without its cache of cast weights, which would
# keep the first cast of each weight for every evaluation inside one context
ARITHMETIC = {
    "tf32": TF32Products,
    "bf16": lambda: torch.autocast("cpu", torch.bfloat16, cache_enabled=False),
}
# their imitated convolutions and cells took 7 minutes on this CPU, most of the suite's budget
SLOW_ON_CPU = ("cnn_2c2d", "gru")


@functools.cache
def trained(task: str, precision: str = "fp32") -> tuple[dict, ...]:
    """Records of 20 updates of ``task`` (the task's optimizer and the schedule-free twin)
    in ``precision``'s arithmetic (imitated); the first step-0 evaluation sees the same weights
    and data whatever the arithmetic."""
    splits = data.load(TASKS[task].dataset, None, CPU)
    specs = [RunSpec.make(task, s, seed=0, epochs=1, train_size=20 * 128, eval_size=1000,
                          evals_per_epoch=1) for s in ("cosine", "schedule_free")]  # fmt: skip
    with torch_threads(1), ARITHMETIC.get(precision, contextlib.nullcontext)():
        return tuple(ENGINES["single"].train(specs, splits, CPU))


def assert_within(tolerance, exact: tuple[dict, ...], other: tuple[dict, ...]) -> None:
    for a, b in zip(exact, other, strict=True):
        loss0 = a["curve"][0]["val_loss"]
        assert b["curve"][0]["val_loss"] != loss0  # the arithmetic differs: the bound is tested
        assert abs(b["curve"][0]["val_loss"] - loss0) / loss0 <= tolerance.loss
        for metric in ("val_acc_final", "test_acc"):
            assert abs(b["metrics"][metric] - a["metrics"][metric]) <= tolerance.acc


def test_tf32_rounding_keeps_10_mantissa_bits():
    x = torch.tensor([1 + 2**-10, 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-12, -3.0])
    assert tf32(x).tolist() == [1 + 2**-10, 1.0, 1 + 2**-9, 1.0, -3.0]  # ties to even


@pytest.mark.data
@pytest.mark.parametrize(
    "task", [t for t in representatives() if TASKS[t].model not in SLOW_ON_CPU]
)  # the CNN and GRU: on a GPU (test_on_a_gpu_each_precision_keeps_its_tolerance)
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_each_precision_keeps_its_tolerance_on_every_model(task, precision):
    assert_within(TOLERANCES[precision], trained(task), trained(task, precision))


def test_the_full_sweep_trains_in_tf32_and_the_cpu_is_told_how_to_run_it(tmp_path, capsys):
    full = protocol.load("full")
    assert full.run["precision"] == "tf32"
    assert full.spec("mnist_cnn", "cosine", 0.05, 0, "tune", 1).precision == "tf32"
    if torch.cuda.is_available():
        return
    results = tmp_path / "r"
    assert main(["run", "--sweep", "full", "--device", "cpu", "--results", str(results)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "precision tf32 needs CUDA" in line
    assert "--set run.precision=fp32" in line
    assert not results.exists() or not any(results.iterdir())


@pytest.mark.data
def test_a_cpu_record_says_no_tf32_applies():
    splits = data.load("mnist", None, CPU)
    (record,) = ENGINES["single"].train(
        sweep_group("mnist_logreg", 1, 2, eval_size=100), splits, CPU
    )
    assert record["spec"]["precision"] == "fp32"
    assert (record["provenance"]["tf32_matmul"], record["provenance"]["tf32_cudnn"]) == (None, None)


@pytest.mark.gpu
@pytest.mark.data
@pytest.mark.parametrize("task", representatives())
def test_on_a_gpu_each_precision_keeps_its_tolerance(task):
    cuda = torch.device("cuda")
    splits = data.load(TASKS[task].dataset, None, cuda)
    runs = {}
    for precision in ("fp32", "tf32", "bf16"):
        specs = [RunSpec.make(task, s, seed=0, epochs=1, train_size=10_000, eval_size=2000,
                              evals_per_epoch=2, precision=precision)
                 for s in ("cosine", "schedule_free")]  # fmt: skip
        runs[precision] = ENGINES["single"].train(specs, splits, cuda)
    for precision in ("tf32", "bf16"):
        assert {r["provenance"]["tf32_matmul"] for r in runs[precision]} == {precision == "tf32"}
        assert_within(TOLERANCES[precision], runs["fp32"], runs[precision])
