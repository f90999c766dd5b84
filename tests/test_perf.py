"""The perf harness (benchmark/tools/perf.py) on real MNIST, a few updates per method: its
figures are the engines' own (trained through ``ENGINES``), its ratios follow from them, and
its file and summary carry every method measured. Speeds themselves are never asserted."""

import dataclasses
import json

import pytest
import torch

from benchmark.tools import perf

pytestmark = pytest.mark.data
CPU = torch.device("cpu")


def test_perf_measures_every_method_through_the_engines(tmp_path, monkeypatch):
    trained, batched = [], perf.ENGINES["batched"]

    def spy(specs, splits, device):  # the batched engine, counting its calls and runs
        trained.append(len(specs))
        return batched.train(specs, splits, device)

    monkeypatch.setitem(perf.ENGINES, "batched", dataclasses.replace(batched, target=spy))
    path = perf.run(
        ["mnist_logreg"], CPU, out=tmp_path, steps=3, repeats=2, max_runs=4, log=lambda line: None
    )
    figures = json.loads(path.read_text())
    (task,) = figures["tasks"]
    rate = {(m["method"], m["runs"]): m["run_samples_per_s"] for m in task["measurements"]}
    assert set(rate) == {("standard", 1), ("single", 1), ("batched", 1), ("batched", 4)}
    assert trained == [1, 4, 1, 4]  # two turns, each R once, as whole groups
    ratios = task["ratios"]
    best = max(rate[("batched", 1)], rate[("batched", 4)])
    assert ratios["batched_vs_single"] == pytest.approx(best / rate[("single", 1)])
    assert ratios["single_vs_standard"] == pytest.approx(
        rate[("single", 1)] / rate[("standard", 1)]
    )
    assert rate[("batched", ratios["best_runs"])] == best
    for m in task["measurements"]:  # run-samples per second from the median seconds
        assert m["run_samples_per_s"] == pytest.approx(m["runs"] * 3 * 128 / m["seconds"])
    assert "| `mnist_logreg` |" in perf.summary(figures)
