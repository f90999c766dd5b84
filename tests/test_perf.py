"""The perf harness (benchmark/tools/perf.py) on real MNIST, a few updates per method: its
groups are a sweep's, its figures the engines' own (trained through ``ENGINES``) after a
warm-up turn, its ratios follow from them, its file is written after every task and holds the
operations per step. Speeds themselves are never asserted."""

import dataclasses
import json

import pytest
import torch

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.schedules import SCHEDULES
from benchmark.catalogue.tasks import TASKS, representatives
from benchmark.sweeps import protocol
from benchmark.tools import perf

CPU = torch.device("cpu")


def test_a_group_is_a_sweeps_mixed_schedules_both_optimizer_blocks_and_two_seeds():
    full = protocol.load("full")
    assert full.lr_factors == perf.GROUP_LR_FACTORS
    assert full.tune_seeds == perf.GROUP_SEEDS
    group = perf.sweep_group("mnist_mlp", 68, steps=5)
    assert [s.seed for s in group] == [1000] * 34 + [1001] * 34  # sorted by seed
    configs = [(s.schedule, s.lr) for s in group]
    assert configs[:34] == configs[34:]  # every configuration on both seeds, as in a sweep
    assert {s.schedule for s in group} == set(SCHEDULES)
    factors = {round(s.lr / TASKS["mnist_mlp"].lr, 9) for s in group}
    assert factors == {0.1, 0.3}  # two laps of the schedules, each at the next lr of the grid
    assert all(s.budget().total_steps == 5 and s.evals_per_epoch == 1 for s in group)

    def classes(runs: int) -> set[str]:
        return {
            optim.resolve(s.optimizer, s.optimizer_params, s.schedule == "schedule_free")[0]
            for s in perf.sweep_group("mnist_mlp", runs, steps=5)
        }

    assert classes(1) == {"torch.optim:SGD"}  # the standard pattern's optimizer
    assert classes(perf.OPS_RUNS) == {"torch.optim:SGD", "schedulefree:SGDScheduleFree"}


def test_by_default_every_model_and_every_optimizer_is_measured():
    tasks = representatives()
    assert {TASKS[t].model for t in tasks} == {t.model for t in TASKS.values()}
    assert {(TASKS[t].model, TASKS[t].optimizer) for t in tasks} == {
        (t.model, t.optimizer) for t in TASKS.values()
    }
    assert len(tasks) == len({(TASKS[t].model, TASKS[t].optimizer) for t in tasks})


@pytest.mark.data
def test_perf_measures_every_method_through_the_engines_after_a_warm_up(tmp_path, monkeypatch):
    trained, batched = [], perf.ENGINES["batched"]
    flags = []

    def spy(specs, splits, device):  # the batched engine, counting its calls and runs
        trained.append(len(specs))
        return batched.train(specs, splits, device)

    monkeypatch.setitem(perf.ENGINES, "batched", dataclasses.replace(batched, target=spy))
    monkeypatch.setattr(perf, "autocast", lambda *args: flags.append((args, list(trained))))
    monkeypatch.setattr(perf, "matmul_gflops", lambda device: 10.0)
    path = perf.run(
        ["mnist_logreg"], CPU, out=tmp_path, steps=3, repeats=2, max_runs=4, log=lambda line: None
    )
    figures = json.loads(path.read_text())
    (task,) = figures["tasks"]
    rate = {(m["method"], m["runs"]): m["run_samples_per_s"] for m in task["measurements"]}
    assert set(rate) == {("standard", 1), ("single", 1), ("batched", 1), ("batched", 4)}
    assert flags == [(("fp32", CPU), [])]  # the flags set before any method's first turn
    # a warm-up turn and two timed ones, each R once as a whole group; then the operations
    # of a group of OPS_RUNS runs: a warm-up call, then one step and two, each once profiled
    # and once under the dispatch mode that counts launches
    assert trained == [1, 4] * 3 + [perf.OPS_RUNS] * 5
    ratios = task["ratios"]
    best = max(rate[("batched", 1)], rate[("batched", 4)])
    assert ratios["batched_vs_single"] == pytest.approx(best / rate[("single", 1)])
    assert ratios["single_vs_standard"] == pytest.approx(
        rate[("single", 1)] / rate[("standard", 1)]
    )
    assert rate[("batched", ratios["best_runs"])] == best
    for m in task["measurements"]:  # run-samples per second from the median seconds
        assert m["run_samples_per_s"] == pytest.approx(m["runs"] * 3 * 128 / m["seconds"])
    for kind in ("ops_per_step", "launches_per_step"):
        counts = task[kind]
        assert counts["runs"] == perf.OPS_RUNS
        assert counts["single"] > 0
        assert counts["batched"] > 0
    # views and reshapes are operators but launch nothing
    assert task["launches_per_step"]["batched"] < task["ops_per_step"]["batched"]
    assert task["capped"] is False
    assert "| `mnist_logreg` |" in perf.summary(figures)


@pytest.mark.data
def test_a_task_past_its_time_cap_starts_no_turn_and_says_so(monkeypatch):
    monkeypatch.setitem(perf.GFLOPS, "cpu", 10.0)
    figures = perf.measure("mnist_logreg", CPU, steps=2, task_seconds=0.0, log=lambda line: None)
    assert figures["capped"] is True
    assert figures["measurements"] == []
    assert set(figures["ratios"].values()) == {None}
    summary = perf.summary({"device": "x", "threads": 1, "matmul_gflops": 1.0, "tasks": [figures]})
    assert "| `mnist_logreg` | - | - | - | - | - | - |" in summary


def test_the_file_is_written_after_every_task(tmp_path, monkeypatch):
    def measure(task, device, **kwargs):
        if task == "mnist_cnn":
            raise TimeoutError("killed while measuring the second task")
        return {"task": task}

    monkeypatch.setattr(perf, "measure", measure)
    monkeypatch.setattr(perf, "matmul_gflops", lambda device: 10.0)
    with pytest.raises(TimeoutError):
        perf.run(["mnist_logreg", "mnist_cnn"], CPU, out=tmp_path)
    (path,) = tmp_path.glob("*.json")
    assert json.loads(path.read_text())["tasks"] == [{"task": "mnist_logreg"}]
