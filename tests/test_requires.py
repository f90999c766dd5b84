"""A missing optional package fails at start-up, in one line naming it, the schedules or tasks
that need it and what to do (benchmark/catalogue/requires.py), never after the training. A
missing package is simulated as Python knows one: ``sys.modules[name] = None`` makes
``importlib.util.find_spec`` answer None and ``import`` raise."""

import dataclasses
import sys

import pytest

from benchmark.catalogue import requires, tasks
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import RunSpec
from benchmark.cli import main
from benchmark.sweeps import protocol, runner


@pytest.fixture
def no_schedulefree(monkeypatch):
    monkeypatch.setitem(sys.modules, "schedulefree", None)
    with pytest.raises(ImportError):
        import schedulefree  # noqa: F401  the simulation is what a missing package does


def specs(*schedules: str, task: str = "mnist_mlp") -> list[RunSpec]:
    return [RunSpec.make(task, s, epochs=1) for s in schedules]


def test_only_the_schedules_that_need_a_missing_package_are_named(no_schedulefree):
    assert requires.missing(specs("cosine", "onecycle", "plateau")) == {}
    both = specs("cosine", "schedule_free") + specs("schedule_free", task="mnist_mlp_adam")
    assert requires.missing(both) == {"schedulefree": ["schedule schedule_free"]}
    with pytest.raises(InputError) as err:
        requires.check_packages(both)
    message = str(err.value)
    assert "\n" not in message
    assert "package schedulefree is not installed" in message
    assert "schedule schedule_free need(s) it" in message
    assert "pip install schedulefree" in message
    assert "--set schedules=[...]" in message


def test_a_tasks_loss_in_a_missing_package_names_the_task(monkeypatch):
    task = dataclasses.replace(tasks.TASKS["mnist_logreg"], name="lossy", loss="nopkg_xyz:loss")
    monkeypatch.setitem(tasks.TASKS, "lossy", task)
    assert requires.needs(specs("cosine", task="lossy")[0]) == {
        "torch": "task lossy",  # torch.optim:SGD
        "nopkg_xyz": "task lossy",
    }
    assert requires.missing(specs("cosine", task="lossy")) == {"nopkg_xyz": ["task lossy"]}


def test_a_sweep_needing_a_missing_package_stops_before_anything_is_written(
    no_schedulefree, tmp_path, capsys
):
    results = tmp_path / "results"
    argv = ["run", "--sweep", "smoke", "--device", "cpu", "--results", str(results)]
    status = main([*argv, "--set", 'schedules=["cosine", "schedule_free"]'])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1
    assert "package schedulefree is not installed" in err
    assert not (results / "runs").exists()


@pytest.mark.data
def test_the_slurm_executor_without_submitit_stops_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", None)
    options = runner.Options(tmp_path, executor="slurm", engine="auto", slurm={"cluster": "local"})
    with pytest.raises(InputError, match=r"^--executor slurm needs the package submitit: pip"):
        runner.check(protocol.load("smoke"), options)
