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
import functools
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

from benchmark.catalogue.datasets import Dataset, IdxFile, Source, get
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.params import load_named
from benchmark.data import idx, sources
from benchmark.records.atomic import fsync_dir, write_atomic
from benchmark.records.faults import fault_point
from benchmark.records.folders import HOME

if TYPE_CHECKING:
    import torch

ROOT_ENV = "SCHEDULE_BENCH_DATA"
DEFAULT_ROOT = HOME / "data"
MARKER = ".verified.json"  # in the raw folder; torchvision ignores it


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
                "bytes": idx.file_size(f.shape),
                "mtime_ns": (folder / f.name).stat().st_mtime_ns,
            }
            for f in dataset.files
        },
    }


def check_prepared(dataset: Dataset, root: Path) -> None:
    """Cheap check before loading: a marker from a verified prepare, and files unchanged since
    (a loader's dataset has nothing prepared: its loader is checked when it loads)."""
    if dataset.loader is not None:
        return
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
            or stat.st_size != idx.file_size(f.shape)
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
            load_named(source.fetch)(dataset, staging)
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
    chain: tuple[Source, ...] | None = None,
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
    if dataset.loader is not None:
        log(f"{name}: loaded by its loader when a run needs it; nothing to prepare")
        return root
    raw = raw_folder(dataset, root)
    _ensure_writable(root)
    missing = [f.name for f in dataset.files if not (raw / f.name).is_file()]
    if not missing:
        _use_present(dataset, root, log)
        return raw
    log(f"{name}: files already present in {raw}: no ({len(missing)} missing)")
    failures = _acquire(dataset, root, sources.chain(dataset) if chain is None else chain, log)
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
    images: "torch.Tensor"  # [N, *dataset.shape], raw inputs (uint8 pixel bytes for IDX files)
    labels: "torch.Tensor"  # int64 [N], class indices (torchvision's targets dtype)

    def __len__(self) -> int:
        return len(self.labels)

    @functools.cached_property
    def standardisation(self) -> tuple[float, float]:
        """Mean and std of the inputs / 255 (in float64), computed once per split: every run
        standardises its inputs with the training split's (the data set's constants)."""
        pixels = self.images.double() / 255
        return pixels.mean().item(), pixels.std().item()


@dataclass(frozen=True)
class Splits:
    train: Split  # MNIST family: the first 50,000 official training images
    dev: Split  # the last 10,000 of them: tuning reads this split only
    test: Split  # the official 10,000 test images: the reported numbers


def load(name: str, root: Path | None = None, device: "str | torch.device" = "cpu") -> Splits:
    """The train / dev / test splits of a prepared dataset, as tensors on ``device``."""
    import torch
    import torchvision.datasets

    dataset = get(name)
    root = data_root(root)
    if dataset.loader is not None:
        return _from_loader(dataset, root, device)
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


def _from_loader(dataset: Dataset, root: Path, device) -> Splits:
    """A loader's splits, checked against the declaration: sizes, input shape, labels."""
    import torch

    parts = load_named(dataset.loader)(dataset, root)
    out = []
    for part, (inputs, labels), size in zip(
        ("train", "dev", "test"), parts, dataset.sizes, strict=True
    ):
        inputs, labels = np.asarray(inputs), np.asarray(labels)
        ok = inputs.shape == (size, *dataset.shape) and labels.shape == (size,)
        ok = ok and np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0
        if not (ok and labels.max() < dataset.classes):
            raise InputError(
                f"dataset {dataset.name}: the loader's {part} split is inputs {inputs.shape}, "
                f"labels {labels.shape} in [{labels.min()}, {labels.max()}]; declared "
                f"{(size, *dataset.shape)} and {size} labels in [0, {dataset.classes - 1}]"
            )
        out.append(
            Split(
                torch.as_tensor(inputs).to(device), torch.as_tensor(labels).to(device, torch.int64)
            )
        )
    return Splits(*out)
