"""Test helpers: ``Digits``, a learnable problem in memory; ``untimed``, a record sans times;
a small sweep on the fakes plugin's tasks, and a runner subprocess for it."""

import contextlib
import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.catalogue import datasets, tasks
from benchmark.data import datasets as data
from benchmark.engines.registry import ENGINES
from benchmark.engines.single import train
from benchmark.records import faults, record
from benchmark.sweeps import protocol
from benchmark.sweeps.runner import Options, run_sweep

TESTS = Path(__file__).resolve().parent
# engines compute the same functions in other summation orders: float32 losses agree to this
RTOL = 1e-4
FAKE_SWEEP = """
tasks = ["digits_logreg", "digits_mlp"]
schedules = ["constant", "onecycle", "plateau"]
plugins = ["fakes"]
[tune]
seeds = [100]
lr_factors = [0.5, 2]
extend = 0  # the grid only: the tests count runs (test_sweep.py tests the extension)
[final]
seeds = [0, 1]
"""
FAKE_RUNS = 24  # tune: 2 tasks x 3 schedules x 2 lrs x 1 seed; final: 2 x 3 x 2 seeds
# one task at budgets of 1 and 2 epochs, each tuned and run on its own: 24 runs too
TWO_BUDGETS = FAKE_SWEEP.replace(', "digits_mlp"', "") + "[run]\nepochs = [1, 2]\n"


class Digits:
    """A learnable 10-class problem in memory: class c lights up row band c, plus noise.

    ``splits`` are uint8 tensors like ``data.load``'s; ``dataset`` is the matching registry
    entry, whose loader gives the same examples, so tasks and specs can name it and
    ``data.load`` loads it like any plugin data set.
    """

    def __init__(self, n_train: int = 300, n_dev: int = 100, n_test: int = 100, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)

        def split(n: int) -> data.Split:
            labels = torch.arange(n) % 10
            images = torch.randint(0, 96, (n, 28, 28), generator=gen)
            for c in range(10):  # rows 2c+4 and 2c+5 bright for class c
                images[labels == c, 2 * c + 4 : 2 * c + 6] += 150
            perm = torch.randperm(n, generator=gen)
            return data.Split(images[perm].to(torch.uint8), labels[perm])

        self.splits = data.Splits(split(n_train), split(n_dev), split(n_test))
        self.dataset = datasets.Dataset(
            "digits", sizes=(n_train, n_dev, n_test), loader=self.arrays
        )  # a loader's data set, as a plugin declares one: nothing on disk

    def arrays(self, dataset, root) -> tuple:
        """The loader: (inputs, labels) NumPy pairs of the train, dev and test splits."""
        parts = (self.splits.train, self.splits.dev, self.splits.test)
        return tuple((part.images.numpy(), part.labels.numpy()) for part in parts)


def untimed(record: dict) -> dict:
    """The record without what may differ between identical runs: times, timestamp, git state."""
    out = copy.deepcopy(record)
    del out["timing"], out["provenance"]["timestamp"], out["provenance"]["git_dirty"]
    for point in out["curve"]:
        del point["wall_s"]
    for hit in out["time_to_target"].values():
        if hit:
            del hit["wall_s"]
    return out


def records(results: Path) -> dict[str, dict]:
    """The untimed records of a results folder, by key."""
    paths = sorted((results / "runs").glob("*.json"))
    return {p.stem: untimed(record.read(p)) for p in paths}


def assert_whole(results: Path, expected: dict[str, dict]) -> None:
    """Every run once, equal to the uninterrupted sweep's to the last bit (provenance included:
    the same thread count); no temporary files; tables agree."""
    assert records(results) == expected
    leftovers = [p for p in results.rglob("*") if p.name.endswith(".tmp") or ".stale-" in p.name]
    assert leftovers == []
    assert not list((results / "claims").iterdir())
    runs_csv = pd.read_csv(results / "runs.csv")
    assert sorted(runs_csv.key) == sorted(expected)
    assert len(pd.read_csv(results / "curves.csv")) == sum(
        len(r["curve"]) for r in expected.values()
    )


def env(fault: str | None = None) -> dict:
    """A subprocess environment that sees the fakes plugin, with ``fault`` injected if given."""
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    out = {k: v for k, v in os.environ.items() if k != faults.ENV} | {"PYTHONPATH": path}
    return out | ({faults.ENV: fault} if fault else {})


def runner(
    sweep: Path,
    results: Path,
    fault: str | None = None,
    workers: int = 1,
    engine: str = "auto",
    extra: list[str] = (),
    environ: dict | None = None,
):
    """``python -m benchmark run`` on ``sweep`` in a subprocess (stdout, stderr piped), the
    leader of its own process group (as a terminal's foreground job is); ``environ`` adds to
    its environment."""
    argv = [sys.executable, "-m", "benchmark", "run", "--sweep", str(sweep), "--results",
            str(results), "--device", "cpu", "--workers", str(workers),
            "--engine", engine, *extra]  # fmt: skip
    pipe = subprocess.PIPE
    return subprocess.Popen(
        argv,
        stdout=pipe,
        stderr=pipe,
        text=True,
        env=env(fault) | (environ or {}),
        process_group=0,
    )


@contextlib.contextmanager
def fakes_plugin():
    """The fakes plugin importable in this process, imported afresh by the first sweep that
    names it, and every registration undone afterwards (other tests see the shipped
    registries)."""
    saved = [(registry, dict(registry)) for registry in (tasks.TASKS, datasets.DATASETS)]
    path = [] if str(TESTS) in sys.path else [str(TESTS)]
    sys.path[:0] = path
    sys.modules.pop("fakes", None)
    try:
        yield
    finally:
        del sys.path[: len(path)]
        sys.modules.pop("fakes", None)
        for registry, before in saved:
            registry.clear()
            registry.update(before)


def resume(
    sweep: Path, results: Path, engine: str = "auto", workers: int = 1, **options
) -> list[str]:
    """The sweep run to its end in this process, as ``runner`` runs it (a resume needs no
    process of its own: the kill or the stop was another's); its log lines."""
    lines: list[str] = []
    settings = Options(results, device="cpu", workers=workers, engine=engine, **options)
    with fakes_plugin():
        run_sweep(protocol.load(str(sweep)), settings, log=lines.append)
    return lines


def record_fields(value, path="") -> set[str]:
    """Dotted paths of a record's leaves; curve[] for list items, <target> for target keys."""
    opaque = {"spec.schedule_params", "spec.optimizer_params", "optimizer.settings"}
    if isinstance(value, dict) and path not in opaque:
        out = set()
        for key, child in value.items():
            key = "<target>" if path == "time_to_target" else key
            out |= record_fields(child, f"{path}.{key}" if path else key)
        return out or {path}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return set().union(*(record_fields(item, f"{path}[]") for item in value))
    return {path}


def assert_engine_matches_single(engine: str, specs, splits, device="cpu") -> list[dict]:
    """The equivalence harness every engine runs: ``specs`` trained by ``engine``
    (``ENGINES``) and one by one by the single engine give records equal in everything discrete
    (fields, status, steps, curve points and lrs, targets reached, accuracies) and in their
    losses and metrics to ``RTOL``; the engine's records."""
    device = torch.device(device)
    records = ENGINES[engine].train(specs, splits, device)
    for spec, other in zip(specs, records, strict=True):
        assert_equivalent(train(spec, splits, device), other, engine)
    return records


def assert_equivalent(single: dict, batched: dict, engine: str) -> None:
    """One record of ``engine`` against the single engine's record of the same spec."""
    what = (single["spec"]["schedule"], single["spec"]["seed"], single["spec"]["lr"])
    assert batched["engine"] == engine
    assert record_fields(batched) == record_fields(single), what
    for field in ("key", "spec", "task", "status", "diverged_at_step", "stopped_early_at_step"):
        assert batched[field] == single[field], (what, field)
    assert batched["budget"] == single["budget"], what
    assert batched["optimizer"] == single["optimizer"], what
    assert batched["digests"] == single["digests"], what  # the same lr and momentum applied
    for a, b in zip(single["curve"], batched["curve"], strict=True):
        assert (a["step"], a["samples"], a["lr"]) == (b["step"], b["samples"], b["lr"]), what
        assert a["val_acc"] == b["val_acc"], (what, a["step"])
        for loss in ("train_loss", "val_loss"):
            if a[loss] is None or b[loss] is None:
                assert a[loss] == b[loss], (what, a["step"], loss)
            else:
                assert b[loss] == pytest.approx(a[loss], rel=RTOL), (what, a["step"], loss)
    reached = {t: hit and hit["step"] for t, hit in single["time_to_target"].items()}
    assert reached == {t: hit and hit["step"] for t, hit in batched["time_to_target"].items()}
    for name, value in single["metrics"].items():
        other = batched["metrics"][name]
        if isinstance(value, float) and other is not None:
            assert other == pytest.approx(value, rel=RTOL, abs=1e-6), (what, name)
        else:
            assert other == value, (what, name)
    # the same test examples, each right or wrong alike (as the accuracies on the curve)
    curves, other_curves = single["test"]["curves"], batched["test"]["curves"]
    assert {**single["test"], "curves": None} == {**batched["test"], "curves": None}, what
    for name, values in curves.items():
        if values is None or other_curves[name] is None:
            assert other_curves[name] == values, (what, name)
        else:
            assert other_curves[name] == pytest.approx(values, rel=RTOL, abs=1e-5), (what, name)


class Noisy(nn.Module):
    """A plugin model vmap cannot batch: dropout draws random numbers."""

    def __init__(self, classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(784, classes))

    def forward(self, x):
        return self.net(x)
