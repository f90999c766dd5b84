"""Every code block of the README runs as written.

Python blocks run where the README says they go (in the namespace of that module), and what
they add is used. Shell commands run in a scratch folder, in README order (the sweep before
its status, tables and report): `python -m ...` lines as a subprocess, the long ones on a data
subset with flags appended after the README's (argparse keeps the last), `nox -s NAME` lines
checked against the noxfile's sessions, installs skipped. A command the README marks as needing
a GPU or a cluster must refuse with its documented one-line error here.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.catalogue import datasets, schedules_beyond, tasks
from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.schedules import SCHEDULES, Budget, sequences
from benchmark.catalogue.spec import RunSpec
from benchmark.data import datasets as data
from benchmark.engines import models, stacked
from benchmark.engines.semantics import build_model
from benchmark.engines.single import train
from benchmark.sweeps import protocol, runner
from report.build import build
from report.load import load
from report.render import html
from testkit import assert_engine_matches_single, env

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# the fewest examples, updates and evaluations that run each command's whole path (train: 2
# updates and 1 evaluation; lr-find: its minimum of steps); the sweeps: one budget, and 3 final
# seeds, so that the README's two quick sweeps (the second with a deadline) are one, resumed
SUBSET = ["--train-size", "64", "--batch-size", "32", "--eval-size", "100",
          "--evals-per-epoch", "1", "--epochs", "1"]  # fmt: skip
SWEEP_SUBSET = ["--set", 'tasks=["mnist_logreg"]', "--set", 'schedules=["cosine","wsd"]',
                "--set", "run.epochs=[1]", "--set", "final.seeds=[0,1,2]",
                "--set", "run.train_size=500", "--set", "run.eval_size=200",
                "--set", "tune.lr_factors=[1]"]  # fmt: skip
# command prefix -> (flags appended, expected exit status, expected text on stderr)
COMMANDS = {
    "python -m benchmark train": (SUBSET, 0, ""),
    "python -m benchmark lr-find": (
        ["--train-size", "256", "--batch-size", "16", "--steps", "10"],
        0,
        "",
    ),
    "python -m benchmark run --sweep quick": (SWEEP_SUBSET, 0, ""),
    "python -m benchmark run --sweep full --device cuda": ([], 2, "torch sees no GPU"),
    "python -m benchmark run --sweep full --executor slurm": ([], 2, "the cluster's login node"),
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def commands() -> list[str]:
    """Every shell command of the README, continuation lines joined, comments dropped."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#", line)[0].strip()
            if line:
                out.append(" ".join(line.split()))
    return out


def python_block(marker: str) -> str:
    (block,) = [b for b in blocks("python") if marker in b]
    return block


def test_every_python_block_is_run_here():
    markers = ("@schedule(", "@model(", "@optimizer(", "loader=")
    assert all(any(m in b for m in markers) for b in blocks("python"))
    assert len(blocks("python")) == len(markers)


def test_adding_a_schedule():
    namespace = dict(vars(schedules_beyond))
    exec(python_block("@schedule("), namespace)
    try:
        lr = sequences("cosine_floor", 1.0, Budget(10, 5)).lr
        assert lr[0] == 1.0
        assert lr[-1] == pytest.approx(0.1 + 0.9 * (1 + np.cos(np.pi * 9 / 10)) / 2)
    finally:
        SCHEDULES.pop("cosine_floor", None)


def test_adding_a_task_and_a_model_the_batched_engine_can_vectorise(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.setattr(tasks, "TASKS", dict(tasks.TASKS))
    namespace = vars(models) | vars(tasks)
    exec(python_block("@model("), namespace)
    assert tasks.get_task("fmnist_mlp_small").kind == "MLP"
    module = build_model(tasks.get_task("fmnist_mlp_small"), 0, torch.device("cpu"))
    forward = stacked.forward_for(module, models.get_model("mlp_small").stacked)
    assert stacked.vectorisable(forward, module, torch.device("cpu"), (28, 28)) is None


DIGITS_SWEEP = """
tasks = ["sk_digits_mlp"]
schedules = ["constant", "cosine", "onecycle"]
plugins = ["my_digits"]
[run]
epochs = 1
[tune]
seeds = [100]
lr_factors = [1]
[final]
seeds = [0, 1]
"""


def test_adding_a_data_set_of_another_shape(tmp_path, monkeypatch):
    """The README's 8x8 plugin: both engines agree on it, and a sweep on it reaches the
    report (the fakes' digits are 28x28; these are 8x8, values 0-16)."""
    (tmp_path / "my_digits.py").write_text(python_block("loader="))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(datasets, "DATASETS", dict(datasets.DATASETS))
    monkeypatch.setattr(tasks, "TASKS", dict(tasks.TASKS))
    monkeypatch.delitem(sys.modules, "my_digits", raising=False)
    sweep_file = tmp_path / "digits.toml"
    sweep_file.write_text(DIGITS_SWEEP)
    plan = protocol.load(str(sweep_file))  # imports the plugin: registers the data set and task
    splits = data.load("sk_digits")
    assert splits.train.images.shape == (1000, 8, 8)
    specs = [RunSpec.make("sk_digits_mlp", s, seed=seed, epochs=1) for s in ("cosine", "onecycle")
             for seed in (0, 1)]  # fmt: skip
    batched = assert_engine_matches_single("batched", specs, splits)
    assert min(r["metrics"]["test_acc"] for r in batched) > 0.5  # it learns: chance is 0.1
    results = tmp_path / "results"
    options = runner.Options(results=results, device="cpu", workers=1)
    runner.run_sweep(plan, options, log=lambda _: None)
    context = build(load(results))
    assert [t["task"] for t in context["takeaways"]] == ["sk_digits_mlp"]
    assert "sk_digits_mlp" in html(context)


def test_adding_an_optimizer(monkeypatch, digit_tasks):
    monkeypatch.setattr(optim, "OPTIMIZERS", dict(optim.OPTIMIZERS))
    exec(python_block("@optimizer("), vars(optim) | {"OPTIMIZERS": optim.OPTIMIZERS})
    assert optim.check_settings("rmsprop", {"alpha": 0.9})["momentum"] == 0.0
    spec = RunSpec.make("mnist_logreg", "cosine", optimizer="rmsprop", lr=0.01, epochs=1,
                        batch_size=32, optimizer_params={"alpha": 0.9})  # fmt: skip
    record = train(spec, digit_tasks, "cpu")
    assert record["optimizer"]["class"] == "RMSprop"
    assert record["optimizer"]["family"] == "RMSprop"
    assert record["status"] == "ok"


def test_ci_installs_the_readmes_system_lines_and_nothing_else():
    """CI runs the quick start's system line and the cluster tests' line, read from the README,
    and no other install."""
    quick, cluster = [c for c in commands() if c.startswith("sudo apt-get")]
    assert "libharfbuzz-subset0" in quick  # WeasyPrint's subsetter: a reproducible PDF
    assert cluster.split()[-4:] == ["slurmctld", "slurmd", "slurm-client", "munge"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 '^sudo apt-get update' README.md" in ci
    assert f"grep -m1 '^{' '.join(cluster.split()[:5])} slurmctld' README.md" in ci
    assert [c for c in ci.splitlines() if "apt-get install" in c and "grep -m1" not in c] == []


def test_nox_sessions_the_readme_names_exist():
    sessions = set(re.findall(r"^def (\w+)\(session", (ROOT / "noxfile.py").read_text(), re.M))
    named = set(re.findall(r"nox -s (\w+)", README))
    assert named <= sessions, named - sessions


@pytest.mark.slow
@pytest.mark.data
def test_every_shell_command_runs_as_written(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    scratch = env() | {"SCHEDULE_BENCH_RESULTS": str(folder / "results"), "PYTHONPATH": str(ROOT)}
    ran = []
    for command in commands():
        if command.startswith(("pip ", "nox ", "sudo ")):
            continue  # installs (CI runs the system line); nox: test_nox_sessions_the_readme...
        extra, status, message = next(
            (rule for prefix, rule in COMMANDS.items() if command.startswith(prefix)), ([], 0, "")
        )
        if "--compare results/quick-rerun" in command:  # the README's second results folder
            shutil.copytree(folder / "results" / "quick", folder / "results" / "quick-rerun")
        if "--device cuda" in command and torch.cuda.is_available():
            continue  # on a GPU machine this is the full reference: hours, not a test
        argv = [sys.executable, *command.split()[1:], *extra]
        done = subprocess.run(argv, cwd=folder, env=scratch, capture_output=True, text=True)
        assert done.returncode == status, (command, done.stderr[-2000:])
        assert message in done.stderr, (command, done.stderr)
        ran.append(command)
    assert any("run --sweep quick" in c for c in ran)
    assert (folder / "results" / "quick" / "report" / "index.html").is_file()  # --compare's
    assert (folder / "run.json").is_file()
    assert (folder / "lr.png").is_file()
    assert (folder / "ms.png").is_file()
