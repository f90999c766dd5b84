"""Shared fixtures and the marker rules: `gpu` needs CUDA, `data` needs the prepared datasets."""

import hashlib

import numpy as np
import pytest

from benchmark import data, idx


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
    return all((data.raw_folder(d, root) / data.MARKER).is_file() for d in data.DATASETS.values())


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

    def spec(self, offline=()) -> data.Dataset:
        files = tuple(
            data.IdxFile(
                name,
                array.shape,
                hashlib.sha256(array.tobytes()).hexdigest(),
                tuple(np.bincount(array, minlength=10).tolist()) if array.ndim == 1 else None,
            )
            for name, array in self.arrays.items()
        )
        # folder "MNIST" so torchvision.datasets.MNIST reads it in load()
        return data.Dataset("tiny", "MNIST", files, offline=offline, dev_size=10)

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

    def register(*offline) -> data.Dataset:
        dataset = tiny.spec(offline)
        monkeypatch.setitem(data.DATASETS, "tiny", dataset)
        return dataset

    return register


class Digits:
    """A learnable 10-class problem in memory: class c lights up row band c, plus noise.

    ``splits`` are uint8 tensors like ``data.load``'s; ``dataset`` is the matching registry
    entry (shapes only: nothing is on disk), so tasks and specs can name it.
    """

    def __init__(self, n_train: int = 300, n_dev: int = 100, n_test: int = 100, seed: int = 0):
        import torch

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


@pytest.fixture(scope="session")
def digits():
    return Digits()


@pytest.fixture
def digit_tasks(monkeypatch, digits):
    """Every task, on the in-memory digits instead of its dataset; ``data.load`` serves them."""
    import dataclasses

    from benchmark import tasks

    monkeypatch.setitem(data.DATASETS, "digits", digits.dataset)
    for name, task in list(tasks.TASKS.items()):
        monkeypatch.setitem(tasks.TASKS, name, dataclasses.replace(task, dataset="digits"))
    monkeypatch.setattr(data, "load", lambda name, root=None, device="cpu": digits.splits)
    return digits.splits
