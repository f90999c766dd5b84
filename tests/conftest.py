"""Shared fixtures and the marker rules: `gpu` needs CUDA, `data` needs the prepared datasets;
the uninterrupted sweeps that kill, deadline and merge tests compare against (``worlds``)."""

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.catalogue import datasets
from benchmark.data import datasets as data
from benchmark.data import idx
from benchmark.sweeps import protocol
from benchmark.sweeps.runner import Options, run_sweep
from testkit import FAKE_SWEEP, Digits, fakes_plugin, records


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items):
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs CUDA; torch sees no GPU")
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(skip)
    for item in items:
        if "data" in item.keywords and not _real_data_present():
            item.add_marker(pytest.mark.skip(reason="real datasets absent: nox -s data"))


def _real_data_present() -> bool:
    root = data.data_root()
    return all(
        (data.raw_folder(d, root) / data.MARKER).is_file() for d in datasets.DATASETS.values()
    )


class TinyData:
    """A 10-class dataset of 60 training and 20 test 28x28 images, generated from a seed."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.arrays = {
            "train-images-idx3-ubyte": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": np.repeat(np.arange(10, dtype=np.uint8), 6),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": np.repeat(np.arange(10, dtype=np.uint8), 2),
        }
        rng.shuffle(self.arrays["train-labels-idx1-ubyte"])

    def spec(self, offline=()) -> datasets.Dataset:
        files = tuple(
            datasets.IdxFile(
                name,
                array.shape,
                hashlib.sha256(array.tobytes()).hexdigest(),
                tuple(np.bincount(array, minlength=10).tolist()) if array.ndim == 1 else None,
            )
            for name, array in self.arrays.items()
        )
        # folder "MNIST" so torchvision.datasets.MNIST reads it in load()
        return datasets.Dataset("tiny", "MNIST", files, offline=offline, dev_size=10)

    def write(self, folder, names=None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names or self.arrays:
            (folder / name).write_bytes(idx.encode(self.arrays[name]))


@pytest.fixture
def tiny():
    return TinyData()


@pytest.fixture
def register_tiny(monkeypatch, tiny):
    """Register the tiny dataset under the name "tiny"; returns a function taking its sources."""

    def register(*offline) -> datasets.Dataset:
        dataset = tiny.spec(offline)
        monkeypatch.setitem(datasets.DATASETS, "tiny", dataset)
        return dataset

    return register


@pytest.fixture(scope="session")
def digits():
    return Digits()


@pytest.fixture
def digit_tasks(monkeypatch, digits):
    """Every task, on the in-memory digits (a loader's data set) instead of its dataset."""
    import dataclasses

    from benchmark.catalogue import tasks

    monkeypatch.setitem(datasets.DATASETS, "digits", digits.dataset)
    for name, task in list(tasks.TASKS.items()):
        monkeypatch.setitem(tasks.TASKS, name, dataclasses.replace(task, dataset="digits"))
    return digits.splits


def make_world(folder: Path, sweep: str, engine: str) -> None:
    """``folder``/fake.toml holding ``sweep``, and in ``folder``/whole its uninterrupted run:
    in this process, one worker (the tests that compare against it run theirs in other
    processes, with other worker counts, killed and resumed)."""
    path = folder / "fake.toml"
    path.write_text(sweep)
    options = Options(folder / "whole", device="cpu", workers=1, engine=engine)
    with fakes_plugin():
        run_sweep(protocol.load(str(path)), options, log=lambda _: None)
    assert not list((folder / "whole" / "failed").iterdir())  # every run has its record


@pytest.fixture(scope="session")
def worlds(tmp_path_factory):
    """``worlds(engine, sweep)``: the sweep file (default: the fake sweep) and the records of
    its uninterrupted run (``make_world``); ``whole`` beside the sweep file is its folder, which
    tests only read. Made once per test run: pytest-xdist's workers share the run's base
    folder, and the first to need a world makes it while the others wait on its lock."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "worlds"
    shared.mkdir(exist_ok=True)

    def world_of(engine: str = "auto", sweep: str = FAKE_SWEEP) -> tuple[Path, dict[str, dict]]:
        folder = shared / hashlib.sha256(f"{engine}\n{sweep}".encode()).hexdigest()[:12]
        with (shared / f"{folder.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / "made").is_file():
                shutil.rmtree(folder, ignore_errors=True)  # a failed attempt's
                folder.mkdir()
                make_world(folder, sweep, engine)
                (folder / "made").touch()
        return folder / "fake.toml", records(folder / "whole")

    return world_of
