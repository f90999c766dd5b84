"""The sweep file's options for the batched engine. No silent fallback: a sweep whose runs
the batched engine cannot vectorise (a model with dropout, which vmap refuses) trains them
one at a time with a warning in its summary and a ``fallback`` field in their records, or,
with ``fallback = "forbid"``, fails them with the reason. ``cuda_graphs`` reaches the engine
(on the CPU its step runs through the same static buffers, uncaptured, to the same records).
Each value is checked like any other."""

import dataclasses
import json

import pytest

from benchmark.catalogue import datasets
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.tasks import TASKS
from benchmark.cli import main
from benchmark.engines import group, models
from benchmark.records import record
from benchmark.sweeps import protocol
from testkit import Digits, Noisy

SWEEP = """
tasks = ["noisy_digits"]
schedules = ["constant"]
[tune]
seeds = [100]
lr_factors = [1]
extend = 0
[final]
seeds = [0]
"""


@pytest.fixture
def noisy(monkeypatch, tmp_path):
    """The task ``noisy_digits`` (the Noisy model on in-memory digits), and a sweep file of it
    with ``fallback`` set by ``sweep(value)``."""
    monkeypatch.setitem(datasets.DATASETS, "digits", Digits().dataset)
    monkeypatch.setitem(models.MODELS, "noisy", models.Model(Noisy))
    task = dataclasses.replace(
        TASKS["mnist_logreg"], name="noisy_digits", dataset="digits", model="noisy",
        epochs=2, batch_size=32, evals_per_epoch=2,
    )  # fmt: skip
    monkeypatch.setitem(TASKS, "noisy_digits", task)

    def sweep(fallback: str | None) -> str:
        path = tmp_path / "noisy.toml"
        path.write_text((f'fallback = "{fallback}"\n' if fallback else "") + SWEEP)
        return str(path)

    return sweep


def run(path: str, results) -> int:
    argv = ["run", "--sweep", path, "--results", str(results), "--device", "cpu"]
    return main([*argv, "--workers", "1", "--engine", "batched"])


def test_a_fallback_is_a_warning_in_the_summary_and_the_records(noisy, tmp_path, capsys):
    assert run(noisy(None), tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "warning: 2 run(s) trained one at a time, not batched" in err  # tune and final
    assert err.count("warning:") == 1  # one line per reason
    records = [record.read(p) for p in (tmp_path / "out" / "runs").glob("*.json")]
    assert len(records) == 2
    for r in records:
        assert record.problem(r) is None
        assert r["engine"] == "single"
        assert r["fallback"]["from"] == "batched"
        assert r["fallback"]["reason"] in err


def test_a_sweep_file_can_forbid_the_fallback(noisy, tmp_path, capsys):
    assert protocol.load(noisy("forbid")).fallback == "forbid"
    assert run(noisy("forbid"), tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "FallbackForbiddenError: batched engine: 1 run(s) of noisy_digits" in err
    assert 'the sweep forbids it (fallback = "forbid")' in err
    assert not list((tmp_path / "out" / "runs").glob("*.json"))
    failed = [json.loads(p.read_text()) for p in (tmp_path / "out" / "failed").glob("*.json")]
    assert len(failed) == 1  # the tuning run; the final phase waits for it
    assert 'fallback = "forbid"' in failed[0]["error"]


def test_the_fallback_setting_is_checked(noisy):
    assert protocol.load(noisy(None)).fallback == "allow"
    with pytest.raises(InputError, match="fallback must be one of allow, forbid"):
        protocol.load(noisy("never"))


def test_the_sweep_files_cuda_graphs_reaches_the_engine_and_its_static_buffers_change_nothing(
    noisy, monkeypatch, tmp_path
):
    task = dataclasses.replace(TASKS["noisy_digits"], name="plain_digits", model="logreg")
    monkeypatch.setitem(TASKS, "plain_digits", task)
    steps = []

    class Counted(group.Graphed):
        def __call__(self, *inputs):
            steps.append(self.capture)
            return super().__call__(*inputs)

    monkeypatch.setattr(group, "Graphed", Counted)
    records = {}
    for graphs in ("false", "true"):
        path = tmp_path / f"{graphs}.toml"
        path.write_text(f"cuda_graphs = {graphs}\n" + SWEEP.replace("noisy_", "plain_"))
        assert protocol.load(str(path)).cuda_graphs is (graphs == "true")
        assert run(str(path), tmp_path / graphs) == 0
        records[graphs] = {
            p.name: record.read(p) for p in (tmp_path / graphs / "runs").glob("*.json")
        }
    assert steps  # the true sweep's steps went through Graphed ...
    assert set(steps) == {False}  # ... which captures nothing on a CPU
    assert records["true"].keys() == records["false"].keys()
    for name, r in records["true"].items():
        assert "cuda_graphs" not in r["timing"]  # nothing was captured
        same = records["false"][name]
        assert r["curve"][-1]["val_loss"] == same["curve"][-1]["val_loss"]
        assert r["digests"] == same["digests"]
        assert r["metrics"] == same["metrics"]


def test_the_cuda_graphs_setting_is_checked(noisy, tmp_path):
    path = tmp_path / "graphs.toml"
    path.write_text('cuda_graphs = "yes"\n' + SWEEP)
    with pytest.raises(InputError, match="cuda_graphs must be true or false"):
        protocol.load(str(path))
