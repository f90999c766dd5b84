"""Results that travel: a sweep split across two results folders by a deadline, packed and
merged, equals the uninterrupted sweep; records of one key that disagree are reported and kept
out; a merge killed halfway and run again equals an uninterrupted merge; parts of another sweep
or protocol are refused; the report names the machines and devices."""

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.sweeps import deadline, travel
from report.build import machines
from report.load import load
from testkit import FAKE_RUNS, assert_whole, env, records, resume, runner


@pytest.fixture
def whole(worlds) -> tuple[Path, dict]:
    """The uninterrupted sweep's folder (read only) and its records."""
    sweep_file, expected = worlds("auto")
    return sweep_file.parent / "whole", expected


def pack(folder: Path, archive: Path) -> Path:
    assert main(["results", "pack", str(folder), str(archive)]) == 0
    return archive


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_sweep_split_by_a_deadline_packed_and_merged_equals_the_uninterrupted(
    worlds, tmp_path, capsys
):
    """Machine A stops at its deadline (SIGUSR2 mid-tune) and packs; machine B merges A's pack,
    runs the rest and packs; both packs merged: the uninterrupted records, tables, report."""
    sweep_file, expected = worlds("auto")
    first, second, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    stopped = runner(sweep_file, first, "step:60:usr2")
    _out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == deadline.STOPPED, err
    a = pack(first, tmp_path / "a.tar.gz")
    assert main(["results", "merge", str(a), "--into", str(second)]) == 0
    lines = resume(sweep_file, second)
    assert any(line.startswith("tune: 12 runs, 8 done, 4 to run") for line in lines)
    b = pack(second, tmp_path / "b.tar.gz")
    capsys.readouterr()
    assert main(["results", "merge", str(a), str(b), "--into", str(merged)]) == 0
    out = capsys.readouterr().out
    assert f"{FAKE_RUNS} records added, 0 already there" in out
    assert_whole(merged, expected)
    made = machines(load(merged).provenance)
    assert [(host, n) for host, _device, n in made] == [(socket.gethostname(), FAKE_RUNS)]


def test_the_machines_and_devices_with_counts():
    provenance = pd.DataFrame({
        "key": list("abcde"),
        "host": ["b", "a", "b", None, "a"],  # None: a record older than provenance.host
        "device": ["cpu x", "gpu y", "cpu x", "cpu x", "gpu y"],
    })  # fmt: skip
    assert machines(provenance) == [("a", "gpu y", 2), ("b", "cpu x", 2), ("unnamed", "cpu x", 1)]
    old = provenance.drop(columns="host")
    assert machines(old) == [("unnamed", "cpu x", 3), ("unnamed", "gpu y", 2)]


@pytest.mark.slow
def test_records_of_one_key_that_disagree_are_reported_and_kept_out(whole, tmp_path, capsys):
    folder, expected = whole
    ours = pack(folder, tmp_path / "ours.tar.gz")
    assert pack(folder, tmp_path / "again.tar.gz").read_bytes() == ours.read_bytes()
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    key = sorted(expected)[3]
    changed = json.loads((other / "runs" / f"{key}.json").read_text())
    changed["metrics"]["test_acc"] += 0.01
    (other / "runs" / f"{key}.json").write_text(json.dumps(changed, indent=1) + "\n")
    theirs = pack(other, tmp_path / "theirs.tar.gz")
    into = tmp_path / "merged"
    for _ in range(2):  # idempotent: the same folder, the same report
        capsys.readouterr()
        assert main(["results", "merge", str(ours), str(theirs), "--into", str(into)]) == 1
        err = capsys.readouterr().err
        assert err == (f"conflict: {key}: the records of {ours}, {theirs} differ in their "
                       "metrics; kept out\n")  # fmt: skip
        assert records(into) == {k: r for k, r in expected.items() if k != key}
    # a record already in the folder stays: the other part's is kept out
    assert main(["results", "merge", str(ours), "--into", str(into)]) == 0
    assert main(["results", "merge", str(theirs), "--into", str(into)]) == 1
    assert records(into) == expected


@pytest.mark.slow
def test_a_merge_killed_halfway_then_run_again_equals_an_uninterrupted_merge(whole, tmp_path):
    folder, expected = whole
    half = tmp_path / "half"
    shutil.copytree(folder, half)
    for path in sorted((half / "runs").glob("*.json"))[::2]:
        path.unlink()
    archives = [str(pack(folder, tmp_path / "all.tar.gz")), str(pack(half, tmp_path / "h.tar.gz"))]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert main(["results", "merge", *archives, "--into", str(clean)]) == 0
    argv = [sys.executable, "-m", "benchmark", "results", "merge", *archives, "--into", str(killed)]
    # the 9th atomic write: sweep.json, then the 8th record, renamed not yet
    done = subprocess.run(argv, env=env("write:9"), capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert 0 < len(records(killed)) < FAKE_RUNS
    assert main(["results", "merge", *archives, "--into", str(killed)]) == 0
    assert files(killed) == files(clean)
    assert_whole(killed, expected)


@pytest.mark.slow
def test_parts_of_another_sweep_or_protocol_are_refused(whole, tmp_path, monkeypatch, capsys):
    folder, _expected = whole
    ours = pack(folder, tmp_path / "ours.tar.gz")
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    sweep = json.loads((other / "sweep.json").read_text())
    (other / "sweep.json").write_text(json.dumps(sweep | {"deadline": 60}))
    later = pack(other, tmp_path / "later.tar.gz")  # another sitting's deadline: one sweep
    assert main(["results", "merge", str(ours), str(later), "--into", str(tmp_path / "m")]) == 0
    (other / "sweep.json").write_text(json.dumps(sweep | {"final_seeds": [0, 1, 2]}))
    another = pack(other, tmp_path / "another.tar.gz")
    monkeypatch.setattr(travel, "PROTOCOL_VERSION", travel.PROTOCOL_VERSION + 1)
    newer = pack(folder, tmp_path / "newer.tar.gz")
    capsys.readouterr()
    for part, why in [(another, "another sweep than"), (newer, "protocol version")]:
        into = tmp_path / part.stem
        assert main(["results", "merge", str(ours), str(part), "--into", str(into)]) == 2
        assert why in capsys.readouterr().err
        assert not into.exists()  # checked before anything is written
    assert main(["results", "merge", str(tmp_path / "m" / "sweep.json"), "--into", "x"]) == 2
    assert "not a results pack" in capsys.readouterr().err
