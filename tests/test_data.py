"""The data layer: acquisition chain, verification, atomic install, loading, the CLI."""

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmark.catalogue import datasets
from benchmark.catalogue.errors import InputError
from benchmark.cli import main
from benchmark.data import datasets as data
from benchmark.data import sources


def failing(name: str, reason: str) -> datasets.Source:
    def fetch(dataset, dest):
        raise sources.SourceError(reason)

    return datasets.Source(name, fetch)


def writing(name: str, tiny, names=None, then_fail: bool = False) -> datasets.Source:
    """A source that writes the tiny files (some of them), and optionally fails afterwards."""
    calls = []

    def fetch(dataset, dest):
        calls.append(dest)
        tiny.write(dest, names)
        if then_fail:
            raise sources.SourceError("connection reset halfway")

    fetch.calls = calls  # type: ignore[attr-defined]
    return datasets.Source(name, fetch)


def raw_of(root):
    return data.raw_folder(datasets.get("tiny"), root)


def leftovers(root):
    """Everything under root except the installed raw files and the marker."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.parent.name != "raw" and p.name != "raw" and p != root / "MNIST"
    )


# --- the acquisition chain ---------------------------------------------------------------


def test_present_files_are_verified_and_no_source_is_tried(tmp_path, tiny, register_tiny):
    never = failing("never", "must not be called")
    register_tiny(never)
    tiny.write(raw_of(tmp_path))
    log = []
    assert data.prepare("tiny", tmp_path, log=log.append) == raw_of(tmp_path)
    assert log == [f"tiny: files already present in {raw_of(tmp_path)}: verified ({log[0][-6:]}"]
    marker = json.loads((raw_of(tmp_path) / data.MARKER).read_text())
    assert marker["source"] == "present"
    data.check_prepared(datasets.get("tiny"), tmp_path)


def test_download_fails_then_offline_source_works(tmp_path, tiny, register_tiny):
    offline = writing("offline pkg", tiny)
    register_tiny(offline)
    log = []
    chain = (failing("download", "Name or service not known"), offline)
    data.prepare("tiny", tmp_path, chain=chain, log=log.append)
    assert "tiny: files already present" in log[0]
    assert "4 missing" in log[0]
    assert "tiny: download failed: Name or service not known" in log
    assert log[-1].startswith("tiny: offline pkg: verified and installed")
    assert json.loads((raw_of(tmp_path) / data.MARKER).read_text())["source"] == "offline pkg"
    data.check_prepared(datasets.get("tiny"), tmp_path)
    assert leftovers(tmp_path) == []


def test_default_chain_is_torchvision_then_offline(tmp_path, tiny, register_tiny, monkeypatch):
    tried = []
    monkeypatch.setattr(sources, "TORCHVISION", failing("tv", "offline"))
    offline = writing("offline pkg", tiny)
    register_tiny(offline)
    data.prepare("tiny", tmp_path, log=tried.append)
    assert [line.split(" ...")[0] for line in tried if "trying" in line] == [
        "tiny: trying tv",
        "tiny: trying offline pkg",
    ]


def test_all_sources_fail_lists_each_reason_and_the_manual_route(tmp_path, register_tiny):
    register_tiny()
    chain = (failing("download", "no network"), failing("wheel", "pip not found"))
    with pytest.raises(InputError) as err:
        data.prepare("tiny", tmp_path, chain=chain, log=lambda m: None)
    message = str(err.value)
    assert "download: no network" in message
    assert "wheel: pip not found" in message
    assert "put the uncompressed files train-images-idx3-ubyte" in message
    assert str(raw_of(tmp_path)) in message
    assert "\n" not in message
    assert not raw_of(tmp_path).exists()
    assert leftovers(tmp_path) == []


def test_corrupt_delivery_names_the_file_and_next_source_is_used(tmp_path, tiny, register_tiny):
    register_tiny()
    log = []
    data.prepare("tiny", tmp_path, chain=(corrupting(tiny), writing("good", tiny)), log=log.append)
    failure = next(line for line in log if "corrupt failed" in line)
    assert "t10k-images-idx3-ubyte: corrupt (payload SHA-256" in failure
    data.check_prepared(datasets.get("tiny"), tmp_path)


def corrupting(tiny) -> datasets.Source:
    """A source whose test-images file has one flipped byte."""

    def fetch(dataset, dest):
        tiny.write(dest)
        path = dest / "t10k-images-idx3-ubyte"
        raw = bytearray(path.read_bytes())
        raw[100] ^= 0xFF
        path.write_bytes(bytes(raw))

    return datasets.Source("corrupt", fetch)


def test_source_failing_halfway_leaves_nothing_half_written(tmp_path, tiny, register_tiny):
    register_tiny()
    half = writing("half", tiny, names=["train-images-idx3-ubyte"], then_fail=True)
    with pytest.raises(InputError, match="half: connection reset halfway"):
        data.prepare("tiny", tmp_path, chain=(half,), log=lambda m: None)
    assert not raw_of(tmp_path).exists()
    assert leftovers(tmp_path) == []


def test_missing_file_from_a_source_is_a_failure(tmp_path, tiny, register_tiny):
    register_tiny()
    partial = writing("partial", tiny, names=["train-images-idx3-ubyte"])
    with pytest.raises(InputError, match="train-labels-idx1-ubyte: missing"):
        data.prepare("tiny", tmp_path, chain=(partial,), log=lambda m: None)


def test_wrong_class_counts_are_reported(tmp_path, tiny, register_tiny):
    register_tiny()
    tiny.arrays["t10k-labels-idx1-ubyte"][0] = 9  # one 0 becomes a 9: counts change
    tiny.write(raw_of(tmp_path))
    with pytest.raises(InputError, match=r"class counts \(1, 2, 2, 2, 2, 2, 2, 2, 2, 3\)"):
        data.prepare("tiny", tmp_path, log=lambda m: None)


def test_corrupt_present_file_is_named_and_left_alone(tmp_path, tiny, register_tiny):
    never = failing("never", "must not be called")
    register_tiny(never)
    tiny.write(raw_of(tmp_path))
    path = raw_of(tmp_path) / "train-images-idx3-ubyte"
    flipped = bytearray(path.read_bytes())
    flipped[-1] ^= 1
    path.write_bytes(bytes(flipped))
    with pytest.raises(InputError) as err:
        data.prepare("tiny", tmp_path, log=lambda m: None)
    assert str(err.value).startswith(f"{path}: corrupt (payload SHA-256")
    assert "delete it and run `python -m benchmark data tiny`" in str(err.value)
    assert path.read_bytes() == bytes(flipped)
    assert not (raw_of(tmp_path) / data.MARKER).exists()


def test_interrupted_install_never_passes_as_prepared(tmp_path, tiny, register_tiny, monkeypatch):
    register_tiny()
    real_replace = type(tmp_path).replace
    moved = []

    def crash_after_two(self, target):
        if len(moved) == 2:
            raise KeyboardInterrupt  # as if killed between renames
        moved.append(target)
        return real_replace(self, target)

    monkeypatch.setattr(type(tmp_path), "replace", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        data.prepare("tiny", tmp_path, chain=(writing("src", tiny),), log=lambda m: None)
    monkeypatch.undo()
    register_tiny()
    with pytest.raises(InputError, match="is not prepared"):
        data.check_prepared(datasets.get("tiny"), tmp_path)
    data.prepare("tiny", tmp_path, chain=(writing("src", tiny),), log=lambda m: None)
    data.check_prepared(datasets.get("tiny"), tmp_path)
    assert leftovers(tmp_path) == []


def test_stale_staging_of_a_dead_process_is_removed(tmp_path, tiny, register_tiny):
    register_tiny()
    stale = tmp_path / "MNIST" / ".staging-999999999-abc"
    stale.mkdir(parents=True)
    (stale / "train-images-idx3-ubyte").write_bytes(b"partial")
    data.prepare("tiny", tmp_path, chain=(writing("src", tiny),), log=lambda m: None)
    assert not stale.exists()


def test_second_prepare_is_a_no_op(tmp_path, tiny, register_tiny):
    source = writing("src", tiny)
    register_tiny()
    data.prepare("tiny", tmp_path, chain=(source,), log=lambda m: None)
    before = {p.name: p.stat().st_mtime_ns for p in raw_of(tmp_path).iterdir()}
    data.prepare("tiny", tmp_path, chain=(source,), log=lambda m: None)
    assert len(source.fetch.calls) == 1
    assert {p.name: p.stat().st_mtime_ns for p in raw_of(tmp_path).iterdir()} == before


# --- loading -----------------------------------------------------------------------------


def test_load_gives_the_documented_splits(tmp_path, tiny, register_tiny):
    register_tiny()
    data.prepare("tiny", tmp_path, chain=(writing("src", tiny),), log=lambda m: None)
    splits = data.load("tiny", tmp_path)
    images = torch.from_numpy(tiny.arrays["train-images-idx3-ubyte"])
    labels = torch.from_numpy(tiny.arrays["train-labels-idx1-ubyte"]).long()
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (50, 10, 20)
    assert torch.equal(splits.train.images, images[:50])
    assert torch.equal(splits.dev.images, images[50:])
    assert torch.equal(splits.dev.labels, labels[50:])
    assert torch.equal(splits.test.images, torch.from_numpy(tiny.arrays["t10k-images-idx3-ubyte"]))
    for split in (splits.train, splits.dev, splits.test):
        assert split.images.dtype == torch.uint8
        assert split.labels.dtype == torch.int64
        assert split.images.device.type == "cpu"


def test_load_refuses_unprepared_or_changed_data(tmp_path, tiny, register_tiny):
    register_tiny()
    with pytest.raises(InputError, match=r"tiny is not prepared .*`python -m benchmark data tiny"):
        data.load("tiny", tmp_path)
    data.prepare("tiny", tmp_path, chain=(writing("src", tiny),), log=lambda m: None)
    path = raw_of(tmp_path) / "t10k-labels-idx1-ubyte"
    os.utime(path, ns=(0, 0))  # rewritten since verification
    with pytest.raises(InputError, match="changed since it was verified"):
        data.load("tiny", tmp_path)


# --- roots and names ---------------------------------------------------------------------


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ROOT_ENV, raising=False)
    assert data.data_root() == data.DEFAULT_ROOT
    assert data.DEFAULT_ROOT.name == "data"
    monkeypatch.setenv(data.ROOT_ENV, str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"


def test_unwritable_root(tmp_path, register_tiny):
    register_tiny()
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=r"data root .*file/sub is not writable .* --root DIR"):
        data.prepare("tiny", tmp_path / "file" / "sub")


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(InputError, match="unknown dataset 'cifar'; valid: fashion_mnist, mnist"):
        datasets.get("cifar")


# --- the CLI -----------------------------------------------------------------------------


def test_cli_prepares_then_is_a_no_op(tmp_path, tiny, register_tiny, monkeypatch, capsys):
    monkeypatch.setattr(sources, "TORCHVISION", failing("torchvision download", "offline"))
    register_tiny(writing("offline pkg", tiny))
    assert main(["data", "tiny", "--root", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "torchvision download failed: offline" in err
    assert "offline pkg: verified and installed" in err
    assert main(["data", "tiny", "--root", str(tmp_path)]) == 0
    assert "files already present" in capsys.readouterr().err


def test_cli_names_a_flipped_byte_and_exits_2(tmp_path, tiny, register_tiny, capsys):
    register_tiny()
    tiny.write(raw_of(tmp_path))
    path = raw_of(tmp_path) / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[8] = (raw[8] + 1) % 10  # a label changes class: counts no longer match
    path.write_bytes(bytes(raw))
    assert main(["data", "tiny", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: class counts")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "cifar"], "error: unknown dataset 'cifar'; valid: fashion_mnist, mnist"),
        (["data", "--bogus"], "error: unrecognized arguments: --bogus"),
        (["nonsense"], "error: argument COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_cli_subprocess_exit_status_and_nothing_written(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "data", "cifar", "--root", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "error: unknown dataset 'cifar'; valid: fashion_mnist, mnist\n"
    assert not (tmp_path / "r").exists()


# --- the real datasets (when prepared) ---------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_dataset_verifies_and_loads(name):
    data.prepare(name, log=lambda m: None)  # files present: full SHA-256 check, no download
    splits = data.load(name)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (50_000, 10_000, 10_000)
    counts = datasets.get(name).files[1].class_counts
    together = torch.cat([splits.train.labels, splits.dev.labels]).bincount().tolist()
    assert tuple(together) == counts
