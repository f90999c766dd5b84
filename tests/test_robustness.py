"""It survives: kills at each kind of point, a killed concurrent runner, corrupt records, a full
disk, Ctrl-C, bad input of every kind, fuzzed sweep files and ``--set`` values, determinism.

Kills are real: ``SCHEDULE_BENCH_FAULT`` (benchmark/records/faults.py) makes a runner subprocess
SIGKILL itself at a named point; then the sweep resumes and must equal an uninterrupted one
(``worlds``, conftest.py).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.catalogue import datasets, tasks
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import RunSpec
from benchmark.cli import main, parse_set
from benchmark.data import datasets as data
from benchmark.engines.single import SingleRun
from benchmark.records import faults
from benchmark.sweeps import protocol, store
from testkit import (
    FAKE_RUNS,
    TESTS,
    TWO_BUDGETS,
    assert_whole,
    env,
    fakes_plugin,
    records,
    resume,
    runner,
    untimed,
)

RUNS = FAKE_RUNS
FUZZ = int(os.environ.get("FUZZ_EXAMPLES", "150"))  # derandomized in CI; more to hunt locally


@pytest.fixture
def world(worlds):
    return worlds("auto")


# ------------------------------------------------------------------------------ kill and resume

# Each kind of point once, with the engine whose state there is the harder to resume: the
# batched engine claims, trains and writes a group of 6 at once (a group's records are written
# together, so one write point can leave a group half written); runs.csv, curves.csv and
# selection.csv are the same for both. Kills count from the runner's start, which runs every
# run itself (one worker); the resume runs here: a resume needs no process of its own. The
# records kept say that the kill was where its comment says.
KILLS = [  # engine, fault, records kept
    ("batched", "claim:7", 6),  # one run of the second group claimed, the group not started
    ("batched", "step:50", 12),  # mid-training, in the final phase (20 updates a group)
    ("batched", "write:14", 11),  # five of a group's six records renamed into place, one not
    ("single", "write:9", 6),  # a run's record complete in its temporary file, not renamed
    ("single", "write:15", 12),  # selection.csv, at the change from tune to final
    ("single", "tables:1", 24),  # runs.csv rewritten, curves.csv not
]


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "fault", "kept"), KILLS)
def test_kill_at_a_point_then_resume(worlds, tmp_path, engine, fault, kept):
    sweep_path, expected = worlds(engine)
    results = tmp_path / "r"
    killed = runner(sweep_path, results, fault, engine=engine)
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert len(records(results)) == kept
    resume(sweep_path, results, engine=engine)
    assert_whole(results, expected)


@pytest.mark.slow
def test_kill_a_two_budget_sweep_then_resume(worlds, tmp_path):
    """Budgets of 1 and 2 epochs, each tuned and run on its own: killed in the second
    budget's tuning, the resumed sweep equals an uninterrupted one."""
    sweep_path, expected = worlds(sweep=TWO_BUDGETS)
    assert {r["spec"]["epochs"] for r in expected.values()} == {1, 2}
    # logreg trains batched here: 10 group updates tune the 1-epoch budget, 20 the 2-epoch one
    victim = runner(sweep_path, tmp_path / "r", "step:25")
    victim.communicate(timeout=300)
    assert victim.returncode == -signal.SIGKILL
    resume(sweep_path, tmp_path / "r")
    assert_whole(tmp_path / "r", expected)


@pytest.mark.slow
def test_kill_during_data_install_then_prepare_again(tmp_path, register_tiny, tiny):
    """Killed with two of four files renamed into place: the next prepare (here) repairs it."""
    script = f"""
import sys; sys.path.insert(0, {str(TESTS)!r})
from conftest import TinyData
from benchmark.catalogue import datasets
from benchmark.data import datasets as data
tiny = TinyData()
datasets.register(tiny.spec((datasets.Source("local", lambda d, dest: tiny.write(dest)),)))
data.prepare("tiny", sys.argv[1], log=lambda _: None)
"""
    root = tmp_path / "data"
    argv = [sys.executable, "-c", script, str(root)]
    killed = subprocess.run(argv, env=env("install:1"), capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    raw = root / "MNIST" / "raw"
    assert len(list(raw.glob("*-ubyte"))) == 2
    assert not (raw / data.MARKER).exists()  # not marked: nothing passes as verified
    register_tiny(datasets.Source("local", lambda d, dest: tiny.write(dest)))
    data.prepare("tiny", root, log=lambda _: None)
    splits = data.load("tiny", root)
    assert (len(splits.train.labels), len(splits.dev.labels), len(splits.test.labels)) == (
        50,
        10,
        20,
    )
    assert not list((root / "MNIST").glob(".staging-*"))


@pytest.mark.slow
def test_two_runners_one_killed_midway(worlds, tmp_path):
    """The victim is killed mid-run (its 100th update): the survivor, waiting on its claim,
    takes the run over."""
    sweep_path, expected = worlds("single")
    results = tmp_path / "r"
    victim = runner(sweep_path, results, "step:100", engine="single")
    survivor = runner(sweep_path, results, engine="single")
    victim.communicate(timeout=300)
    out, err = survivor.communicate(timeout=300)
    assert victim.returncode == -signal.SIGKILL
    assert survivor.returncode == 0, err
    ran = [
        line.split("] ", 1)[1].split(":")[0] for line in out.splitlines() if line.startswith("[")
    ]
    assert len(ran) == len(set(ran))  # the survivor ran nothing twice
    assert_whole(results, expected)


# ------------------------------------------------------------------------------ corruption


CORRUPT = {
    "empty": "",
    "truncated": '{"schema": 1, "key": ',
    "garbage": "\x00\xff garbage",
    "another schema": '{"schema": 99}',
    "not an object": "[1, 2, 3]",
}


def test_corrupt_records_are_reported_and_run_again(world, tmp_path, capsys):
    """Five records, each corrupt in its own way: status counts them, the resumed sweep names
    each and runs it again."""
    sweep_path, expected = world
    results = tmp_path / "r"
    shutil_copy(sweep_path.parent / "whole", results)
    victims = sorted((results / "runs").glob("*.json"))[3 : 3 + len(CORRUPT) * 3 : 3]
    for victim, content in zip(victims, CORRUPT.values(), strict=True):
        victim.write_text(content)
    assert main(["status", "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert sum(int(line.split()[-1]) for line in table.splitlines()[1:]) == len(CORRUPT)
    lines = "\n".join(resume(sweep_path, results))
    for victim in victims:
        assert f"the record of {victim.stem} is corrupt" in lines
    assert_whole(results, expected)


def shutil_copy(source: Path, dest: Path) -> None:
    import shutil

    shutil.copytree(source, dest)


# ------------------------------------------------------------------------------ disk full


def test_disk_full_fails_the_run_cleanly(world, tmp_path, monkeypatch, capsys):
    """The fault raises in this process: a full disk needs no process of its own."""
    sweep_path, expected = world
    results = tmp_path / "r"
    monkeypatch.setenv(faults.ENV, "write:3:enospc")  # the third atomic write: a record's
    monkeypatch.setattr(faults, "_reached", {})
    with fakes_plugin():
        code = main(["run", "--sweep", str(sweep_path), "--results", str(results),
                     "--workers", "1", "--device", "cpu"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert "No space left on device" in err
    assert "could not write the record" in out
    runs = list((results / "runs").glob("*"))
    assert all(store.Store(results).done(p.stem) for p in runs)  # no partial record
    assert not list(results.rglob("*.tmp"))
    monkeypatch.delenv(faults.ENV)
    resume(sweep_path, results)
    assert_whole(results, expected)


# ------------------------------------------------------------------------------ Ctrl-C


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "stop", "send"),
    [(2, signal.SIGINT, os.killpg), (1, signal.SIGTERM, os.kill)],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_stops_prints_the_resume_command_and_exits_130(world, tmp_path, workers, stop, send):
    """Ctrl-C, as a terminal sends it (to the driver and its worker processes), or SIGTERM, as
    a cluster sends it to the driver before a kill: the same graceful stop."""
    sweep_path, expected = world
    results = tmp_path / "r"
    proc = runner(sweep_path, results, workers=workers)
    deadline = time.monotonic() + 120
    while len(list((results / "runs").glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    send(proc.pid, stop)  # the driver leads its process group
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    said = err.strip().splitlines()[-1]
    written = len(list((results / "runs").glob("*.json")))
    kept = re.fullmatch(r"interrupted: records kept: (\d+) of 12 tune runs(, .*)?; resume with: "
                        r"python -m benchmark run .*", said)  # fmt: skip
    assert kept, said
    assert int(kept[1]) + int((kept[2] or ", 0").split()[1]) == written  # what was written
    assert all(store.Store(results).done(p.stem) for p in (results / "runs").glob("*"))
    assert len(records(results)) < RUNS
    resume(sweep_path, results)
    assert_whole(results, expected)


@pytest.mark.slow
def test_an_interrupted_rerun_resumes_as_a_rerun(world, tmp_path):
    sweep_path, expected = world
    results = tmp_path / "r"
    shutil_copy(sweep_path.parent / "whole", results)
    before = time.time()
    rerun = runner(sweep_path, results, "write:5", extra=["--rerun"])  # killed at a write
    rerun.communicate(timeout=300)
    assert rerun.returncode == -signal.SIGKILL
    resume(sweep_path, results)  # a plain resume, as the Ctrl-C message prints it
    stamps = [p.stat().st_mtime for p in (results / "runs").glob("*.json")]
    assert len(stamps) == RUNS
    assert min(stamps) >= before  # every record ran again: none kept from before the rerun
    assert not (results / "rerun.json").exists()
    assert_whole(results, expected)


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """Ctrl-C while the sweep starts (loading torch takes seconds): one line, exit 130."""
    env_ = env() | {data.ROOT_ENV: str(tmp_path / "no-data")}
    argv = [sys.executable, "-m", "benchmark", "run", "--sweep", "smoke", "--results",
            str(tmp_path / "r"), "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env_)
    time.sleep(1.0)  # past the parser, in torch's import (the data check comes after it)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("interrupted")


# ------------------------------------------------------------------------------ bad input

GOOD_SWEEP = (
    'tasks = ["mnist_logreg"]\nschedules = ["cosine"]\n[tune]\nseeds = [1]\n[final]\nseeds = [0]\n'
)
BAD_SWEEPS = {
    "syntax": ('tasks = ["mnist_logreg"\n', "sweep file"),
    "tasks-type": (GOOD_SWEEP.replace('["mnist_logreg"]', "5"), "tasks must be a list of names"),
    "no-tasks": (GOOD_SWEEP.replace('["mnist_logreg"]', "[]"), "must not be empty"),
    "schedules-type": (GOOD_SWEEP.replace('["cosine"]', "3.5"), 'schedules must be "all"'),
    "seeds-float": (GOOD_SWEEP.replace("seeds = [0]", "seeds = [0.5]"), "final.seeds must be"),
    "seeds-negative": (GOOD_SWEEP.replace("seeds = [0]", "seeds = [-1]"), "final.seeds must be"),
    "seeds-overlap": (GOOD_SWEEP.replace("seeds = [0]", "seeds = [1]"), "must be disjoint"),
    "run-not-table": ("run = 3\n" + GOOD_SWEEP, "[run] must be a table"),
    "plugin-missing": (GOOD_SWEEP.replace("[tune]", 'plugins = ["no_such_module"]\n[tune]'),
                       "plugin 'no_such_module'"),
}  # fmt: skip

BAD_ARGV = [
    (["train", "--task", "nope", "--schedule", "cosine"], "unknown task 'nope'; valid: "),
    (["train", "--task", "mnist_mlp", "--schedule", "nope"], "unknown schedule 'nope'; valid: "),
    (["train", "--task", "mnist_mlp", "--schedule", "no_module:f"], "user schedule 'no_module:f'"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--lr", "-1"], "lr must be > 0"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--lr", "x"], "invalid float value"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--epochs", "0"], "epochs must be"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--batch-size", "0"], "batch_size"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--seed", "-3"], "seed must be"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--train-size", "0"], "train_size"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--precision", "fp8"], "precision"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--device", "tpu"],
     "invalid choice: 'tpu'"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--set", "schedule.x=1"],
     "unknown parameter 'x'"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--set", "schedule.T_max=-4"],
     "T_max"),
    (["train", "--task", "mnist_mlp", "--schedule", "onecycle", "--set", "schedule.pct_start=2"],
     "pct_start"),
    (["train", "--task", "mnist_mlp", "--schedule", "cyclic", "--set", 'schedule.mode="up"'],
     "mode must be one of"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--set", "optimizer.momentum=2"],
     "momentum must be in [0, 1)"),
    (["train", "--task", "mnist_mlp_adam", "--schedule", "cosine", "--set",
      "optimizer.betas=[0.9]"], "betas must be [b1, b2]"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--set", "optimizer.nesterov=1"],
     "nesterov must be true or false"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--set", "lr"], "expected KEY=VALUE"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine", "--out", "/nonexistent/r.json"],
     "expected FILE.json in an existing folder"),
    (["train", "--task", "mnist_mlp", "--schedule", "cosine"], "is not prepared under"),
    (["lr-find", "--task", "mnist_mlp", "--steps", "1"], "steps must be >= 5"),
    (["schedule", "nope"], "unknown schedule 'nope'"),
    (["schedule", "cosine", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["data", "nope"], "unknown dataset 'nope'"),
    (["run", "--sweep", "nope"], "unknown sweep 'nope'"),
    (["run", "--sweep", "smoke", "--set", "run.epochs=-1"], "run.epochs must be an integer >= 1"),
    (["run", "--sweep", "smoke", "--set", "final.seeds=[]"], "final.seeds must be a non-empty"),
    (["run", "--sweep", "smoke", "--set", "tune.lr_factors=[0]"], "tune.lr_factors"),
    (["run", "--sweep", "smoke", "--set", "tasks.x=1"], "tasks is not a table"),
    (["run", "--sweep", "smoke", "--workers", "0"], "--workers must be >= 1"),
    (["run", "--sweep", "smoke", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["run", "--sweep", "smoke", "--device", "cpu", "--set", 'run.precision="bf16"'],
     "precision bf16 needs CUDA"),
    (["run", "--sweep", "smoke", "--executor", "mpi"], "invalid choice: 'mpi'"),
    (["run", "--sweep", "smoke"], "is not prepared under"),
    (["status", "--results", "/nonexistent"], "no sweep has run here"),
    (["tables", "/nonexistent"], "no runs/ folder"),
    (["nope"], "invalid choice: 'nope'"),
]  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_SWEEPS))
def test_bad_sweep_file_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, name):
    text, message = BAD_SWEEPS[name]
    (tmp_path / "bad.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--sweep", "bad.toml", "--results", "out", "--root", "empty"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


@pytest.mark.parametrize(
    "argv", [a for a, _ in BAD_ARGV], ids=[" ".join(a)[:60] for a, _ in BAD_ARGV]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv):
    message = {tuple(a): m for a, m in BAD_ARGV}[tuple(argv)]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(data.ROOT_ENV, str(tmp_path / "empty"))
    monkeypatch.setattr("benchmark.cli.RESULTS", tmp_path / "results")
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors (our parser keeps them to one line)
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_binary_sweep_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00 not text")
    assert main(["run", "--sweep", str(tmp_path / "bin.toml")]) == 2
    assert capsys.readouterr().err.startswith(f"error: sweep file {tmp_path / 'bin.toml'}: ")


def test_corrupt_data_file_is_one_line(tmp_path, capsys, register_tiny, tiny):
    raw = data.raw_folder(register_tiny(), tmp_path)
    tiny.write(raw)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01garbage")
    assert main(["data", "tiny", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "train-labels-idx1-ubyte" in err
    assert err.count("\n") == 1


# ------------------------------------------------------------------------------ fuzzing

toml_scalars = st.one_of(
    st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.booleans(),
    st.text(max_size=8), st.sampled_from(["all", "mnist_logreg", "cosine", "task", "lr-find"]),
)  # fmt: skip
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.sampled_from([
    "tasks", "schedules", "plugins", "description", "run", "run.epochs", "run.train_size",
    "run.batch_size", "run.precision", "tune", "tune.seeds", "tune.lr_factors", "tune.centre",
    "final", "final.seeds", "schedule_params", "schedule_params.cosine",
    "schedule_params.cosine.eta_min", "tasks.x", "colour",
])  # fmt: skip


def load_or_error(overrides) -> protocol.Sweep | str:
    """The sweep, or the message of the InputError it raised; any other exception escapes."""
    try:
        return protocol.load("smoke", overrides)
    except InputError as err:
        return str(err)


@settings(
    max_examples=FUZZ, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.tuples(keys, toml_values), max_size=4))
def test_fuzzed_sweep_overrides_load_or_fail_cleanly(overrides):
    result = load_or_error(overrides)
    if isinstance(result, str):
        assert "\n" not in result
    else:
        assert result.tasks
        assert result.schedules


@settings(max_examples=FUZZ, deadline=None, derandomize=True)
@given(st.text(max_size=30))
def test_fuzzed_set_values_parse_or_fail_cleanly(text):
    try:
        override = parse_set(f"run.epochs={text}")
    except InputError:
        return
    result = load_or_error([override])
    assert isinstance(result, protocol.Sweep) or "\n" not in result


# ------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_every_task_is_deterministic_on_the_cpu(digit_tasks, task):
    def once():  # 2 updates, 2 evaluations: as many chances to differ as a longer run
        spec = RunSpec.make(task, "onecycle", seed=5, epochs=1, batch_size=64, train_size=128,
                            eval_size=50, evals_per_epoch=2)  # fmt: skip
        return untimed(SingleRun(spec, digit_tasks, __import__("torch").device("cpu")).run())

    first, second = once(), once()
    assert first == second
    assert json.dumps(first) == json.dumps(second)
