"""``python -m benchmark check`` (benchmark/tools/check.py, stages.py): every stage in its own
process under a cap, a hang or a failure recorded and passed over, the JSON and the archive
written after every stage, the engines' agreement and the projection from the measured
figures, a one-line reason and a non-zero status when something did not pass. Faults are
injected through the documented hook, ``SCHEDULE_BENCH_CHECK_FAULT``."""

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from benchmark.cli.check_command import plan_run_steps
from benchmark.sweeps import protocol
from benchmark.tools import check
from benchmark.tools.stages import FAULT_ENV

ROOT = Path(__file__).resolve().parents[1]


def run_check(out: Path, *args: str, faults: str = "") -> tuple[subprocess.CompletedProcess, float]:
    env = os.environ | {FAULT_ENV: faults, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "check", "--out", str(out), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    return done, time.monotonic() - t0


def archived(out: Path) -> dict[str, bytes]:
    with tarfile.open(out / check.ARCHIVE) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


@pytest.mark.data
def test_a_hanging_and_a_failing_stage_are_recorded_and_the_check_goes_on(tmp_path):
    tasks = ["--task", "mnist_logreg", "--task", "mnist_mlp"]
    done, seconds = run_check(
        tmp_path, "--deadline", "30", *tasks, faults="mnist_logreg=hang,mnist_mlp=fail"
    )
    assert done.returncode == 1
    assert seconds < 30 + 5  # the deadline holds (the interpreter's start-up on top)
    report = json.loads((tmp_path / "check.json").read_text())
    stages = report["stages"]
    assert list(stages) == ["environment", "mnist_logreg", "mnist_mlp"]
    assert stages["environment"]["status"] == "ok"
    hung = stages["mnist_logreg"]
    assert hung["status"] == "timed out"
    assert hung["seconds"] == pytest.approx(hung["cap_s"], abs=2)  # killed at its cap
    # the environment's unused time went to the later stages
    assert hung["cap_s"] > (30 - check.RESERVE_S) / 3
    assert stages["mnist_mlp"]["status"] == "failed"  # after the hang, the next stage ran
    assert stages["mnist_mlp"]["error"] == f"RuntimeError: failure injected by {FAULT_ENV}"
    (reason,) = done.stderr.strip().splitlines()
    assert reason == (
        f"check: mnist_logreg timed out; mnist_mlp failed: RuntimeError: failure injected by "
        f"{FAULT_ENV}"
    )
    files = archived(tmp_path)
    assert json.loads(files["check.json"]) == report
    assert {"stages/environment.json", "stages/mnist_mlp.log", "stages/mnist_logreg.log"} <= set(
        files
    )
    assert report["projection"]["hours"] is None  # nothing measured


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU can run it")
def test_a_machine_that_cannot_run_the_benchmark_says_why_in_one_line(tmp_path):
    done, _ = run_check(tmp_path, "--device", "cuda", "--deadline", "30", "--task", "mnist_logreg")
    assert done.returncode == 1
    (reason,) = done.stderr.strip().splitlines()
    assert reason.startswith("check: this machine cannot run the benchmark: environment failed")
    assert "torch sees no GPU" in reason
    report = json.loads((tmp_path / "check.json").read_text())
    assert list(report["stages"]) == ["environment"]  # nothing else was started
    assert "check.json" in archived(tmp_path)


@pytest.mark.data
def test_both_engines_on_a_group_agree_and_the_projection_follows(tmp_path):
    done, _ = run_check(tmp_path, "--deadline", "60", "--task", "mnist_logreg")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "check.json").read_text())
    figures = report["stages"]["mnist_logreg"]
    assert (figures["runs"], figures["steps"]) == check.SIZES["cpu"]
    assert figures["agreement"]["loss_rel"] <= check.AGREE["fp32"]
    assert figures["agreement"]["same_steps_and_status"]
    for engine in ("single", "batched"):
        assert (
            figures[engine]["ops_per_group_step"] > figures[engine]["launches_per_group_step"] > 0
        )
        runs_steps = figures["runs"] * figures["steps"]
        assert figures[engine]["run_step_ms"] == pytest.approx(
            1000 * figures[engine]["train_s"] / runs_steps
        )
    assert figures["batched"]["engine"] == ["batched"]  # no fallback
    projection = report["projection"]
    plan = plan_run_steps(protocol.load("full"))
    engine = "batched" if "logreg" in report["auto"]["batched"] else "single"
    for task in ("mnist_logreg",):  # the task measured; the others are not
        assert projection["tasks"][task]["seconds"] == pytest.approx(
            plan[task] * figures[engine]["run_step_ms"] / 1000 / projection["workers"]
        )
    assert projection["tasks"]["mnist_cnn"]["seconds"] is None
    assert "full sweep here" in done.stdout


def test_the_plan_counts_every_run_of_every_budget():
    smoke = protocol.load("smoke")  # 4 schedules x (2 lrs x 1 seed + 2 final seeds) x 32 steps
    assert plan_run_steps(smoke) == {"mnist_logreg": 4 * 4 * 2 * -(-2000 // 128)}
    full = protocol.load("full")
    runs = 7 * 17 * 3 * (5 * 2 + 10)  # README: 7,140 runs
    assert runs == 7140
    cnn = 17 * 20 * 391 * (1 + 3 + 6)  # mnist_cnn: budgets 1, 3 and its default 6 epochs
    assert plan_run_steps(full)["mnist_cnn"] == cnn


def test_the_verdict_names_a_disagreement():
    ok = {"status": "ok", "agreement": {"loss_rel": 1e-7, "same_steps_and_status": True}}
    apart = {"status": "ok", "agreement": {"loss_rel": 0.3, "same_steps_and_status": True}}
    env = {"status": "ok", "precision": "fp32"}
    report = {"stages": {"environment": env, "mnist_logreg": ok, "mnist_mlp": apart}}
    assert check.verdict(report) == (
        "mnist_mlp: the engines disagree (losses 3.0e-01 relative, limit 0.0001)"
    )
    report["stages"].pop("mnist_mlp")
    assert check.verdict(report) is None
