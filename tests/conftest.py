"""Shared fixtures and the marker rules: `gpu` needs CUDA, `data` needs the prepared datasets;
the uninterrupted sweeps that kill, deadline and merge tests compare against (``worlds``)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from benchmark.catalogue import datasets
from benchmark.data import datasets as data
from benchmark.data import idx
from testkit import FAKE_RUNS, FAKE_SWEEP, Digits, records, runner


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


def make_world(folder: Path, engine: str = "auto") -> tuple[Path, dict[str, dict]]:
    """The sweep file, and the records of an uninterrupted sweep to compare against: made by
    two worker processes, while the runs killed or stopped in the tests run in one process (so
    that a fault point counts every run) and resume with two workers, or in this process when
    one unit is left."""
    path = folder / "fake.toml"
    path.write_text(FAKE_SWEEP)
    whole = folder / "whole"
    done = runner(path, whole, engine=engine, workers=2).communicate(timeout=300)
    assert len(records(whole)) == FAKE_RUNS, done
    return path, records(whole)


@pytest.fixture(scope="session")
def worlds(tmp_path_factory):
    """``worlds(engine)``: the uninterrupted sweep of each engine, made once per test process
    (a parametrized module fixture was made again each time the tests' order switched engine)
    and only read by the tests (test_robustness, test_deadline, test_travel)."""
    made = {}

    def world_of(engine: str):
        if engine not in made:
            made[engine] = make_world(tmp_path_factory.mktemp(f"world-{engine}"), engine)
        return made[engine]

    return world_of
