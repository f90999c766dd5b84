"""Test helpers: ``Digits``, a learnable problem in memory; ``untimed``, a record sans times;
a small sweep on the fakes plugin's tasks, and a runner subprocess for it."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import torch

from benchmark import data, faults, record

TESTS = Path(__file__).resolve().parent
FAKE_SWEEP = """
tasks = ["digits_logreg", "digits_mlp"]
schedules = ["constant", "onecycle", "plateau"]
plugins = ["fakes"]
[tune]
seeds = [100]
lr_factors = [0.5, 2]
[final]
seeds = [0, 1]
"""
FAKE_RUNS = 24  # tune: 2 tasks x 3 schedules x 2 lrs x 1 seed; final: 2 x 3 x 2 seeds


class Digits:
    """A learnable 10-class problem in memory: class c lights up row band c, plus noise.

    ``splits`` are uint8 tensors like ``data.load``'s; ``dataset`` is the matching registry
    entry (shapes only: nothing is on disk), so tasks and specs can name it.
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
        files = (
            data.IdxFile("train-images-idx3-ubyte", (n_train + n_dev, 28, 28), ""),
            data.IdxFile("train-labels-idx1-ubyte", (n_train + n_dev,), ""),
            data.IdxFile("t10k-images-idx3-ubyte", (n_test, 28, 28), ""),
            data.IdxFile("t10k-labels-idx1-ubyte", (n_test,), ""),
        )
        self.dataset = data.Dataset("digits", "Digits", files, offline=(), dev_size=n_dev)


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
):
    """``python -m benchmark run`` on ``sweep`` in a subprocess (stdout, stderr piped), the
    leader of its own process group (as a terminal's foreground job is)."""
    argv = [sys.executable, "-m", "benchmark", "run", "--sweep", str(sweep), "--results",
            str(results), "--device", "cpu", "--workers", str(workers),
            "--engine", engine, *extra]  # fmt: skip
    pipe = subprocess.PIPE
    return subprocess.Popen(
        argv, stdout=pipe, stderr=pipe, text=True, env=env(fault), process_group=0
    )
