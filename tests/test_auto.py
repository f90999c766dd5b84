"""``--engine auto`` decides from the perf file of the device it runs on, matched by the
device's name, and says which file or default rule it used (benchmark/sweeps/auto.py); the
driver's decision is the one every worker uses (``Options.batched``)."""

import json

import pytest

from benchmark.records.folders import PERF
from benchmark.sweeps import auto, executors, protocol, runner
from benchmark.sweeps.executors import Options


def perf_file(folder, device: str, ratios: dict[str, float]) -> None:
    tasks = [{"task": t, "ratios": {"batched_vs_single": r}} for t, r in ratios.items()]
    path = folder / f"{device.lower().replace(' ', '-')}.json"
    path.write_text(json.dumps({"device": device, "threads": 1, "tasks": tasks}))


def test_the_perf_file_of_this_device_decides_each_model_it_measured(tmp_path):
    perf_file(tmp_path, "Other CPU", {"mnist_logreg": 0.5, "mnist_mlp": 3.0})
    perf_file(tmp_path, "Some CPU", {"mnist_logreg": 0.8, "mnist_mlp": 1.5, "smnist_gru": 0.9})
    choice = auto.choose("Some CPU", cuda=False, folder=tmp_path)
    # the file says mlp batched and logreg not: the opposite of the CPU's default rule
    assert choice.batched == ("mlp",)
    assert str(tmp_path / "some-cpu.json") in choice.source
    assert "default rule for cnn_2c2d" in choice.source  # not measured there
    assert "engine auto: batched for mlp, single for the rest" in auto.describe(choice)


def test_a_model_is_batched_only_where_batched_won_on_every_task_of_it(tmp_path):
    perf_file(tmp_path, "Some GPU", {"mnist_mlp": 2.0, "mnist_mlp_adam": 0.7, "mnist_cnn": 4.0})
    choice = auto.choose("Some GPU", cuda=True, folder=tmp_path)
    assert choice.batched == ("cnn_2c2d", "gru", "logreg")  # gru, logreg: the CUDA rule


@pytest.mark.parametrize(("cuda", "batched"), [(False, ("logreg",)), (True, None)])
def test_without_a_perf_file_the_default_rule_says_so(tmp_path, cuda, batched):
    perf_file(tmp_path, "Other CPU", {"mnist_mlp": 3.0})
    choice = auto.choose("Some CPU", cuda=cuda, folder=tmp_path)
    models = sorted({t.model for t in auto.TASKS.values()})
    assert choice.batched == (batched or tuple(models))
    assert choice.source.startswith("default rule")
    assert "no perf file" in choice.source
    assert "not known here" in auto.choose(None, cuda, tmp_path).source  # a Slurm job's node


def test_the_committed_cpu_file_gives_what_the_readme_says():
    choice = auto.choose("AMD EPYC", cuda=False, folder=PERF)
    assert choice.batched == ("gru", "logreg")
    readme = (PERF.parents[1] / "README.md").read_text()
    assert f"`{auto.describe(choice).split(';')[0]};" in readme
    assert "amd-epyc.json" in choice.source


def test_the_engine_of_a_model_follows_the_drivers_decision():
    chosen = Options(results=None, engine="auto", batched=("mlp",))
    assert executors.engine_for(chosen, "mlp", cuda=False).name == "batched"
    assert executors.engine_for(chosen, "logreg", cuda=False).name == "single"
    undecided = Options(results=None, engine="auto")  # the default rule
    assert executors.engine_for(undecided, "logreg", cuda=False).name == "batched"
    assert executors.engine_for(undecided, "mlp", cuda=True).name == "batched"


@pytest.mark.data
def test_a_sweep_decides_once_says_so_and_hands_the_decision_on(tmp_path, monkeypatch):
    seen = []

    def capture(phase, pending, options, deadline):  # an executor that trains nothing
        seen.append(options)
        return iter(())

    monkeypatch.setitem(executors.EXECUTORS, "capture", capture)
    monkeypatch.setattr(auto, "PERF", tmp_path)
    perf_file(
        tmp_path, runner._device_name(Options(results=None, device="cpu")), {"mnist_logreg": 0.5}
    )
    lines = []
    options = Options(results=tmp_path / "r", executor="capture", device="cpu")
    runner.run_sweep(protocol.load("smoke"), options, log=lines.append)
    assert seen
    assert all(o.batched == () for o in seen)  # logreg: single, as the file says
    (said,) = [line for line in lines if line.startswith("engine auto:")]
    assert str(tmp_path) in said
