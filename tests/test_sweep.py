"""Sweeps: sweep files, the tuning protocol, the store's claims, executors, resume, the CLI.

The runs are on the in-memory ``digits`` tasks of tests/fakes.py, which sweeps load as a
plugin: in this process, in worker processes, in runner subprocesses and in submitit jobs.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue import tasks
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import PROTOCOL_VERSION, RunSpec
from benchmark.cli import main
from benchmark.records import record, tidy
from benchmark.sweeps import executors, protocol, store
from benchmark.sweeps import runner as sweep
from benchmark.sweeps.deadline import Costs
from testkit import FAKE_RUNS, FAKE_SWEEP, TWO_BUDGETS, fakes_plugin, records, resume, runner

TESTS = Path(__file__).resolve().parent
SWEEP, RUNS = FAKE_SWEEP, FAKE_RUNS


@pytest.fixture
def fake_world(monkeypatch):
    """The fakes plugin importable everywhere, and every registration undone afterwards."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    with fakes_plugin():
        yield


@pytest.fixture
def sweep_file(tmp_path, fake_world):
    path = tmp_path / "fake.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture
def finished_sweep(worlds) -> Path:
    """The fake sweep, run once for every test (conftest.py): tests copy it (``finished``)."""
    return worlds("auto")[0].parent / "whole"


@pytest.fixture
def finished(finished_sweep, sweep_file, tmp_path) -> Path:
    """A copy of the finished fake sweep's results, the fakes plugin importable."""
    return Path(shutil.copytree(finished_sweep, tmp_path / "r"))


def options(results: Path, **kwargs) -> sweep.Options:
    return sweep.Options(results=results, device="cpu", **({"workers": 1} | kwargs))


# ------------------------------------------------------------------------------ sweep files


@pytest.mark.parametrize(
    ("name", "tune", "final"), [("smoke", 8, 8), ("quick", 408, 680), ("full", 3570, 3570)]
)
def test_shipped_sweeps_expand(name, tune, final):
    s = protocol.load(name)
    specs = s.tune_specs({t: tasks.get_task(t).lr for t in s.tasks})
    assert len(specs) == tune
    assert len(s.budgets) * len(s.tasks) * len(s.schedules) * len(s.final_seeds) == final
    assert len({spec.key for spec in specs}) == tune
    assert {spec.phase for spec in specs} == {"tune"}


def test_full_sweep_is_the_reference_design():
    s = protocol.load("full")
    assert set(s.tasks) == set(tasks.TASKS)
    assert len(s.lr_factors) >= 5
    assert len(s.tune_seeds) >= 2
    assert len(s.final_seeds) >= 10
    assert s.run == {"precision": "tf32"}  # on CUDA; every other setting the tasks' own
    assert len(s.budgets) >= 3
    assert s.budgets[-1] is None  # the longest budget: each task's default epochs


def test_quick_sweep_covers_every_schedule_on_two_tasks_at_two_budgets():
    s = protocol.load("quick")
    assert len(s.tasks) >= 2
    assert len(s.budgets) >= 2
    assert len(s.final_seeds) >= 10  # so the paired test can separate schedules (Holm, alpha)
    assert set(s.schedules) == set(protocol.SCHEDULES)


def test_keys_are_stable_across_processes():
    s = protocol.load("smoke")
    keys = [spec.key for spec in s.tune_specs({"mnist_logreg": 0.5})]
    code = (
        "from benchmark.sweeps import protocol; "
        "print(*[s.key for s in protocol.load('smoke').tune_specs({'mnist_logreg': 0.5})])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == keys


def test_grid_and_overrides():
    s = protocol.load("smoke", [("run.epochs", 3), ("tune.lr_factors", [0.1, 1.0, 10.0])])
    assert s.grid(0.5) == [0.05, 0.5, 5.0]
    assert s.tune_specs({"mnist_logreg": 0.5})[0].epochs == 3


@pytest.mark.parametrize(
    ("text", "sets", "message"),
    [
        (SWEEP.replace("[tune]", "[tune\n"), [], "fake.toml: "),
        (
            SWEEP,
            [("run.epochs", -1)],
            "run.epochs must be an integer >= 1 or a list of them",
        ),
        (SWEEP, [("final.seeds", [])], "final.seeds must be a non-empty list"),
        (SWEEP, [("final.seeds", [100, 1])], "tune.seeds and final.seeds must be disjoint"),
        (SWEEP, [("tasks", ["nope"])], "unknown task 'nope'"),
        (SWEEP, [("schedules", ["nope"])], "unknown schedule 'nope'"),
        (SWEEP, [("colour", "red")], "unknown key(s) in [top level]"),
        (SWEEP, [("run.lr", 1.0)], "[run] takes epochs"),
        (SWEEP, [("tune.centre", "middle")], "tune.centre must be one of"),
        (SWEEP, [("schedule_params.plateau", {"factor": "x"})], "factor must be a number"),
    ],
)
def test_bad_sweep_files(tmp_path, fake_world, text, sets, message):
    path = tmp_path / "fake.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        protocol.load(str(path), sets)


@pytest.mark.parametrize(
    ("epochs", "message"),
    [
        (0, 'run.epochs must be an integer >= 1 or a list of them (or "default"), got 0'),
        (-2, "got -2"),
        (1.5, "got 1.5"),
        ([1, 0], "got [1, 0]"),
        ([], "got []"),
        ([2, 2], "run.epochs has repeats, got [2, 2]"),
        ("3", "got '3'"),
        (True, "got True"),
        (["default", 3, "default"], "run.epochs has repeats"),
        ("long", "got 'long'"),
    ],
)
def test_bad_budgets_are_one_line_exit_2_and_nothing_written(tmp_path, capsys, epochs, message):
    results = tmp_path / "r"
    argv = ["run", "--sweep", "smoke", "--results", str(results), "--set", f"run.epochs={epochs!r}"]
    argv[-1] = argv[-1].replace("'", '"').replace("True", "true")  # TOML literals
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not results.exists()


def test_one_budget_keeps_the_keys_and_several_tune_each_on_their_own():
    base = protocol.load("smoke")
    one = protocol.load("smoke", [("run.epochs", [base.budgets[0]])])
    centres = {"mnist_logreg": 0.5}
    assert [s.key for s in one.tune_specs(centres)] == [s.key for s in base.tune_specs(centres)]
    two = protocol.load("smoke", [("run.epochs", [1, 2])])
    specs = two.tune_specs(centres)
    assert two.budgets == (1, 2)
    assert len(specs) == 2 * len(base.tune_specs(centres))
    assert {s.epochs for s in specs} == {1, 2}
    # the best lr differs per budget: each budget selects its own
    frame = pd.DataFrame(
        [(s.epochs, s.task, s.schedule, s.lr, s.seed, s.lr * (1 if s.epochs == 1 else -1), "ok")
         for s in specs],
        columns=["epochs", "task", "schedule", "lr", "seed", "val_acc_final", "status"],
    )  # fmt: skip
    chosen = protocol.select(frame, {"mnist_logreg": 0.1}, {"mnist_logreg": two.grid(0.5)})
    assert len(chosen) == 2 * len(two.schedules)
    lrs = chosen.groupby("epochs").lr.unique()
    assert list(lrs[1]) == [max(s.lr for s in specs)]
    assert list(lrs[2]) == [min(s.lr for s in specs)]
    final = two.final_specs(chosen)
    assert {(s.epochs, s.lr) for s in final} == {(1, lrs[1][0]), (2, lrs[2][0])}
    default = protocol.load("smoke", [("run.epochs", [1, "default"])])
    assert {s.epochs for s in default.tune_specs(centres)} == {
        1,
        tasks.TASKS["mnist_logreg"].epochs,
    }


def test_a_two_budget_sweep_runs_and_reports_each_budget(worlds):
    sweep_path, _expected = worlds(sweep=TWO_BUDGETS)  # one task, budgets of 1 and 2 epochs
    results = sweep_path.parent / "whole"
    selection = pd.read_csv(results / "selection.csv")
    assert sorted(selection.epochs.unique()) == [1, 2]
    assert json.loads((results / "sweep.json").read_text())["budgets"] == [1, 2]
    status = sweep.status(results)
    assert status[["phase", "epochs", "runs", "done"]].values.tolist() == [
        ["tune", 1, 6, 6], ["tune", 2, 6, 6], ["final", 1, 6, 6], ["final", 2, 6, 6],
    ]  # fmt: skip
    runs_csv = pd.read_csv(results / "runs.csv")
    assert runs_csv.groupby(["phase", "epochs"]).size().tolist() == [6, 6, 6, 6]


def test_malformed_toml_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text('tasks = ["mnist_logreg"]\nschedules = all\n[tune]\n')
    results = tmp_path / "results"
    assert main(["run", "--sweep", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep file {path}: ")
    assert "line 2" in err
    assert not results.exists()  # nothing written


def test_unknown_sweep_lists_the_shipped_ones(capsys):
    assert main(["run", "--sweep", "nope"]) == 2
    assert capsys.readouterr().err == (
        "error: unknown sweep 'nope'; valid: full, quick, smoke, or a path to a .toml file\n"
    )


# ------------------------------------------------------------------------------ the protocol


def test_selection_takes_the_best_mean_and_breaks_ties_to_the_smaller_lr():
    rows = [
        ("t", "a", 0.1, 0, 0.90, "ok"), ("t", "a", 0.1, 1, 0.92, "ok"),
        ("t", "a", 0.3, 0, 0.95, "ok"), ("t", "a", 0.3, 1, 0.93, "ok"),
        ("t", "a", 1.0, 0, 0.96, "diverged"), ("t", "a", 1.0, 1, 0.99, "ok"),
        ("t", "b", 0.1, 0, 0.80, "ok"), ("t", "b", 0.3, 0, 0.80, "ok"),
    ]  # fmt: skip
    frame = pd.DataFrame(
        rows, columns=["task", "schedule", "lr", "seed", "val_acc_final", "status"]
    ).assign(epochs=3)
    chosen = protocol.select(frame, {"t": 0.1}, {"t": [0.1, 0.3, 1.0]}).set_index("schedule")
    # lr 1 scored 0.96 on seed 0 before it diverged: as chance (0.1), its mean is 0.545, not
    # 0.975, and the stable 0.3 (mean 0.94) wins
    assert chosen.loc["a", "lr"] == 0.3
    assert chosen.loc["a", "dev_acc_mean"] == pytest.approx(0.94)
    assert chosen.loc["a", "n_seeds"] == 2
    assert chosen.loc["a", "grid"] == "0.1;0.3;1"
    assert chosen.loc["b", "lr"] == 0.1  # a tie: the smaller lr
    assert (chosen.loc["a", "edge"], chosen.loc["b", "edge"]) == ("", "low")
    assert not chosen.loc["a", "at_grid_edge"]
    assert chosen.loc["b", "at_grid_edge"]


EDGE_SWEEP = """
tasks = ["digits_logreg"]
schedules = ["constant", "cosine"]
plugins = ["fakes"]
[run]
epochs = 2
[tune]
seeds = [100, 101]
lr_factors = [0.0002, 0.0004]  # far below the lrs that work: the choice starts at the top
extend = EXTEND
[final]
seeds = [0]
"""


@pytest.mark.parametrize("extend", [2, 12])
def test_an_off_centre_grid_extends_until_the_choice_is_inside(fake_world, tmp_path, extend):
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_SWEEP.replace("EXTEND", str(extend)))
    s, results = protocol.load(str(path)), tmp_path / "r"
    lines = []
    sweep.run_sweep(s, options(results), log=lines.append)
    chosen = pd.read_csv(results / "selection.csv", keep_default_na=False)
    grid = s.grid(tasks.TASKS["digits_logreg"].lr)
    planned = sweep.plan(results)
    tried = {(e["schedule"], e["lr"]) for e in planned["extensions"]}
    assert {e["past"] for e in planned["extensions"]} == {"high"}
    for row in chosen.itertuples():
        lrs = [float(x) for x in row.grid.split(";")]
        outward = [lr for lr in lrs if lr > max(grid)]
        assert outward == sorted(lr for sch, lr in tried if sch == row.schedule)
        assert all(b / a == pytest.approx(2, rel=1e-3) for a, b in itertools.pairwise(lrs))
        assert row.beyond == len(outward)
        if extend == 2:  # the bound is reached with the choice still at the top: flagged
            assert (row.edge, row.at_grid_edge, row.beyond) == ("high", True, 2)
        else:  # the search ends inside what it tried
            assert (row.edge, row.at_grid_edge) == ("", False)
            assert row.lr < max(lrs)
    assert any(line.startswith("tune+1: 2 choice(s) at an edge") for line in lines)
    assert len(planned["tune"]) == 2 * (2 * len(grid) + len(tried))  # 2 seeds, 2 schedules


@pytest.mark.slow
def test_a_sweep_killed_in_a_grid_extension_resumes_to_the_same_choice(fake_world, tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_SWEEP.replace("EXTEND", "3"))
    whole = tmp_path / "whole"
    sweep.run_sweep(protocol.load(str(path)), options(whole), log=lambda _: None)
    tune_runs = 2 * 2 * 2  # the grid's: schedules x lrs x seeds
    killed = runner(path, tmp_path / "r", fault=f"claim:{tune_runs + 2}")  # in round 1
    killed.communicate(timeout=300)
    assert killed.returncode == -9
    planned = json.loads((tmp_path / "r" / "plan.json").read_text())
    assert {e["round"] for e in planned["extensions"]} == {1}  # killed in round 1
    assert len(records(tmp_path / "r")) < len(records(whole))
    resume(path, tmp_path / "r")
    assert records(tmp_path / "r") == records(whole)
    assert (tmp_path / "r" / "selection.csv").read_bytes() == (whole / "selection.csv").read_bytes()


def test_eta_weighs_each_kind_of_run_by_its_own_cost(monkeypatch):
    cheap = [RunSpec.make("mnist_logreg", "cosine", seed=s, epochs=1) for s in range(4)]
    dear = [RunSpec.make("mnist_logreg", "cosine", seed=s, epochs=3) for s in range(4)]
    eta = sweep.Eta(cheap + dear, Costs())
    clock = iter([100.0, 101.0, 110.0, 120.0])
    monkeypatch.setattr(sweep.time, "perf_counter", lambda: next(clock))
    assert eta.after(cheap[0], executors.Outcome(cheap[0].key, "ok", 1.0)) is None  # no rate yet
    # 1 s of work in 1 s of wall time: one run at a time; 2 cheap runs (1 s each) and 4 of 3
    # epochs left, unseen: 1 s per epoch of this task, so 3 s each
    assert eta.after(cheap[1], executors.Outcome(cheap[1].key, "ok", 1.0)) == pytest.approx(14.0)
    # a 3-epoch run took 9 s: 10 s of work in 10 s; 2 cheap (1 s) and 3 dear (9 s) left
    assert eta.after(dear[0], executors.Outcome(dear[0].key, "ok", 9.0)) == pytest.approx(29.0)
    # 19 s of work in 20 s; 2 cheap and 2 dear left
    assert eta.after(dear[1], executors.Outcome(dear[1].key, "ok", 9.0)) == pytest.approx(
        (2 * 1 + 2 * 9) / (19 / 20)
    )


def test_sweep_runs_resumes_and_builds_tables(sweep_file, tmp_path):
    results = tmp_path / "r"
    s = protocol.load(str(sweep_file), [("tasks", ["digits_logreg"])])  # half the fake sweep
    lines: list[str] = []
    outcomes = sweep.run_sweep(s, options(results), log=lines.append)
    assert [len(outcomes["tune"]), len(outcomes["final"])] == [6, 6]
    assert {o.status for phase in outcomes.values() for o in phase} <= {"ok", "diverged"}
    selection = pd.read_csv(results / "selection.csv")
    assert len(selection) == 3
    final = [record.read(p) for p in (results / "runs").glob("*.json")]
    final = [r for r in final if r["spec"]["phase"] == "final"]
    for row in selection.itertuples():  # final runs use the selected lr, the final seeds
        runs = [
            r
            for r in final
            if (r["spec"]["task"], r["spec"]["schedule"]) == (row.task, row.schedule)
        ]
        assert {r["spec"]["lr"] for r in runs} == {row.lr}
        assert sorted(r["spec"]["seed"] for r in runs) == [0, 1]
    runs_csv = pd.read_csv(results / "runs.csv")
    assert len(runs_csv) == 12
    assert len(pd.read_csv(results / "curves.csv")) == sum(
        len(record.read(p)["curve"]) for p in (results / "runs").glob("*.json")
    )
    assert any("tune: 6 runs, 0 done, 6 to run" in line for line in lines)

    again: list[str] = []
    outcomes = sweep.run_sweep(s, options(results), log=again.append)
    assert outcomes == {"tune": [], "final": []}
    assert "tune: 6 runs, 6 done, 0 to run" in again

    victim = next((results / "runs").glob("*.json"))
    victim.write_text(victim.read_text()[:200])  # a truncated record
    again.clear()
    outcomes = sweep.run_sweep(s, options(results), log=again.append)
    assert sum(len(o) for o in outcomes.values()) == 1
    assert any(f"the record of {victim.stem} is corrupt" in line for line in again)
    assert record.read(victim)["key"] == victim.stem


def test_rebuilt_tables_equal_the_sweeps(finished, capsys):
    results = finished
    written = (results / "runs.csv").read_bytes(), (results / "curves.csv").read_bytes()
    (results / "runs.csv").unlink()
    assert main(["tables", str(results)]) == 0
    assert ((results / "runs.csv").read_bytes(), (results / "curves.csv").read_bytes()) == written
    recs, bad = tidy.read_records(results / "runs")
    assert not bad
    assert len(pd.read_csv(results / "runs.csv")) == len(recs) == RUNS
    capsys.readouterr()
    assert main(["status", "--results", str(results)]) == 0
    assert capsys.readouterr().out.split("\n")[1].split() == [
        "tune",
        "2",  # epochs: the budget
        "12",
        "12",
        "0",
        "0",
        "0",
        "0",
    ]


def test_a_crashing_run_is_recorded_and_the_sweep_goes_on(
    sweep_file, tmp_path, monkeypatch, capsys
):
    calls = {"n": 0}
    real = sweep.data.load

    def flaky(name, root=None, device="cpu"):
        calls["n"] += 1
        raise RuntimeError("disk on fire")

    protocol.load(str(sweep_file))  # imports the fakes plugin, which wraps data.load first
    monkeypatch.setattr(executors, "_SPLITS", {})
    monkeypatch.setattr(sweep.data, "load", flaky)
    results = tmp_path / "r"
    code = main(["run", "--sweep", str(sweep_file), "--results", str(results), "--workers", "1",
                 "--device", "cpu"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "failed: " in err
    assert "RuntimeError: disk on fire" in err
    assert len(list((results / "failed").glob("*.json"))) == 12  # every tune run
    status = sweep.status(results).set_index("phase")
    assert status.loc["tune", "failed"] == 12
    monkeypatch.setattr(sweep.data, "load", real)
    # one load for the batched group of digits_logreg's 6 tuning runs (auto on the CPU trains
    # logreg batched), one for each of digits_mlp's 6 single runs
    assert calls["n"] == 1 + 6


def test_tables_dir_tabulates_the_plans_runs_only(finished, capsys):
    results = finished
    stray = record.read(next((results / "runs").glob("*.json")))
    stray["spec"]["seed"] = 999  # a run of another sweep in the same folder
    stray["key"] = RunSpec(**stray["spec"]).key
    record.write(results / "runs" / f"{stray['key']}.json", stray)
    capsys.readouterr()
    assert main(["tables", str(results)]) == 0
    assert "left out 1 record(s) not in plan.json" in capsys.readouterr().err
    assert stray["key"] not in set(pd.read_csv(results / "runs.csv").key)
    assert len(pd.read_csv(results / "runs.csv")) == RUNS


def test_records_of_another_protocol_version_are_left_out(finished, sweep_file, monkeypatch):
    results = finished
    s = protocol.load(str(sweep_file), [("tasks", ["digits_logreg"])])
    old_keys = set(pd.read_csv(results / "runs.csv").key)
    monkeypatch.setattr(
        "benchmark.catalogue.spec.PROTOCOL_VERSION", PROTOCOL_VERSION + 1
    )  # training semantics changed
    lines: list[str] = []
    outcomes = sweep.run_sweep(s, options(results), log=lines.append)
    assert len(outcomes["tune"]) == len(outcomes["final"]) == 6  # none of the old ones reused
    assert any(line.startswith(f"{RUNS} record(s) in ") for line in lines)
    runs_csv = pd.read_csv(results / "runs.csv")
    assert len(runs_csv) == 12
    assert not old_keys & set(runs_csv.key)  # only this protocol's records
    assert len(list((results / "runs").glob("*.json"))) == RUNS + 12


PLUGIN = """
from benchmark.catalogue.optimizers import Recipe, need, optimizer
from benchmark.catalogue.tasks import Task, register
import fakes  # the in-memory digits


@optimizer("rmsprop_plugin", family="RMSprop", cycles="momentum")
def rmsprop_plugin(*, alpha: float = 0.99, momentum: float = 0.0) -> Recipe:
    \"\"\"torch.optim.RMSprop, from a plugin.\"\"\"
    need(0 < alpha < 1, "alpha must be in (0, 1)", alpha)
    return Recipe("torch.optim:RMSprop", {"alpha": alpha, "momentum": momentum})


register(Task("digits_rmsprop", "logreg on digits, RMSprop", "digits", "logreg", "rmsprop_plugin",
              lr=0.01, epochs=2, batch_size=32, evals_per_epoch=2, targets=(0.5, 0.9),
              kind="convex"))
"""


def test_an_optimizer_added_by_a_plugin_runs_in_a_sweep(sweep_file, tmp_path, monkeypatch):
    monkeypatch.setattr(optim, "OPTIMIZERS", dict(optim.OPTIMIZERS))
    (tmp_path / "opt_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opt_plugin", raising=False)
    results = tmp_path / "r"
    s = protocol.load(
        str(sweep_file),
        [("plugins", ["fakes", "opt_plugin"]), ("tasks", ["digits_rmsprop"]),
         ("schedules", ["constant", "onecycle"])],
    )  # fmt: skip
    lines = []
    outcomes = sweep.run_sweep(s, options(results), log=lines.append)
    assert len(outcomes["final"]) == 4
    found = [record.read(p) for p in (results / "runs").glob("*.json")]
    assert {r["optimizer"]["family"] for r in found} == {"RMSprop"}
    assert {r["optimizer"]["class"] for r in found} == {"RMSprop"}
    assert {r["engine"] for r in found} == {"single"}  # no vectorised step: one at a time
    assert pd.read_csv(results / "runs.csv").optimizer_family.unique().tolist() == ["RMSprop"]


def test_lr_find_centres_the_grid_and_is_cached(sweep_file, tmp_path, monkeypatch):
    results = tmp_path / "r"
    s = protocol.load(str(sweep_file), [("tasks", ["digits_logreg"]), ("tune.centre", "lr-find")])
    lines: list[str] = []
    sweep.run_sweep(s, options(results), log=lines.append)
    centre = json.loads((results / "centres.json").read_text())["digits_logreg"]
    assert any(line == f"lr-find: digits_logreg centre {centre:g}" for line in lines)
    assert set(pd.read_csv(results / "selection.csv").grid) == {
        ";".join(f"{lr:g}" for lr in s.grid(centre))
    }
    monkeypatch.setattr(
        "benchmark.tools.lr_find.lr_range_test", pytest.fail
    )  # cached: not run again
    assert sweep.run_sweep(s, options(results), log=lambda _: None) == {"tune": [], "final": []}


# ------------------------------------------------------------------------------ claims


def test_a_claim_is_exclusive_and_a_dead_owners_claim_is_taken_over(tmp_path):
    s = store.Store(tmp_path).create()
    with s.claim("k") as mine:
        assert mine
        with s.claim("k") as again:
            assert not again
        assert s.claimed("k")
    assert not (s.claims / "k.claim").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (s.claims / "k.claim").write_text(
        json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout)})
    )
    assert not s.claimed("k")
    with s.claim("k") as mine:
        assert mine


def test_a_claim_taken_over_by_another_process_meanwhile_is_left_to_it(tmp_path, monkeypatch):
    """The race: we judge a dead owner's claim stale; before we remove it, another process
    takes it over and writes its live claim in its place. Ours must not remove theirs."""
    s = store.Store(tmp_path).create()
    claim = s.claims / "k.claim"
    claim.write_text(json.dumps({"host": os.uname().nodename, "pid": dead_pid()}))
    theirs = json.dumps({"host": "other-host", "pid": 4242})
    judged = store._stale

    def stale_then_taken_over(path):
        verdict = judged(path)
        if verdict and path == claim:  # the other process replaces it (a new file, new inode)
            fresh = path.with_name("fresh")
            fresh.write_text(theirs)
            fresh.replace(path)
        return verdict

    monkeypatch.setattr(store, "_stale", stale_then_taken_over)
    with s.claim("k") as mine:
        assert not mine  # we did not take a claim another process holds
    assert claim.read_text() == theirs
    assert sorted(p.name for p in s.claims.iterdir()) == ["k.claim"]  # nothing else left


def test_a_sweep_buries_the_claims_a_killed_process_left(tmp_path):
    s = store.Store(tmp_path).create()
    for key in ("done", "pending"):
        (s.claims / f"{key}.claim").write_text(
            json.dumps({"host": os.uname().nodename, "pid": dead_pid()})
        )
    (s.claims / "live.claim").write_text(json.dumps({"host": "other-host", "pid": 1}))
    store.Store(tmp_path).create()
    assert [p.name for p in s.claims.iterdir()] == ["live.claim"]


def dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_an_old_heartbeat_is_stale(tmp_path):
    s = store.Store(tmp_path).create()
    claim = s.claims / "k.claim"
    claim.write_text(json.dumps({"host": "another-host", "pid": 1}))
    assert s.claimed("k")
    old = time.time() - store.STALE_S - 1
    os.utime(claim, (old, old))
    assert not s.claimed("k")


# ------------------------------------------------------------------------------ processes


@pytest.mark.slow
def test_two_runners_on_one_folder_run_each_run_once(sweep_file, tmp_path, finished_sweep):
    results = tmp_path / "two"
    first, second = runner(sweep_file, results), runner(sweep_file, results)
    logs = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], logs
    ran = [line.split("] ", 1)[1].split(":")[0] for out, _ in logs for line in out.splitlines()
           if line.startswith("[")]  # fmt: skip
    assert len(ran) == len(set(ran)) == RUNS  # each run once, by one of the two
    assert records(results) == records(finished_sweep)  # one runner's records, to the last bit


@pytest.mark.slow
def test_records_do_not_depend_on_the_worker_count(sweep_file, tmp_path, finished_sweep):
    """Two worker processes, or every run in this process (the finished sweep): one torch
    thread per run either way, the same groups, the same records to the last bit; this
    process's threads restored."""
    before = torch.get_num_threads()
    outcomes = sweep.run_sweep(
        protocol.load(str(sweep_file)), options(tmp_path / "2", workers=2), log=lambda _: None
    )
    assert len(outcomes["tune"]) == len(outcomes["final"]) == 12
    alone = records(finished_sweep)
    assert records(tmp_path / "2") == alone
    assert {r["provenance"]["cpu_threads"] for r in alone.values()} == {1}
    assert torch.get_num_threads() == before


def test_the_sweeps_thread_count_is_every_runs(sweep_file, tmp_path):
    overrides = [("tasks", ["digits_logreg"]), ("schedules", ["constant"]), ("threads", 2)]
    s = protocol.load(str(sweep_file), overrides)
    sweep.run_sweep(s, options(tmp_path / "r"), log=lambda _: None)
    assert {r["provenance"]["cpu_threads"] for r in records(tmp_path / "r").values()} == {2}


# submitit 1.5's DebugJob leaves its log files open; the ResourceWarning is submitit's, not ours
DEBUG_LEAKS = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.mark.parametrize(
    "cluster",
    [pytest.param("debug", marks=DEBUG_LEAKS), pytest.param("local", marks=pytest.mark.slow)],
)
def test_submitit_executor(sweep_file, tmp_path, finished_sweep, cluster):
    results = tmp_path / "r"
    s = protocol.load(str(sweep_file), [("tasks", ["digits_logreg"])])
    opts = options(results, executor="slurm", slurm={"cluster": cluster, "array_parallelism": 2})
    outcomes = sweep.run_sweep(s, opts, log=lambda _: None)
    assert len(outcomes["tune"]) == len(outcomes["final"]) == 6
    assert {o.status for phase in outcomes.values() for o in phase} <= {"ok", "diverged"}
    # the same records as the local executor's (a run's record is its spec's, whatever
    # other tasks the sweep holds)
    local = records(finished_sweep)
    assert records(results) == {
        k: r for k, r in local.items() if r["spec"]["task"] == "digits_logreg"
    }


def test_missing_data_stops_the_sweep_before_it_starts(tmp_path, capsys):
    results = tmp_path / "r"
    argv = ["run", "--sweep", "smoke", "--results", str(results), "--root", str(tmp_path / "empty")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    empty = tmp_path / "empty"
    hint = f"run `python -m benchmark data mnist --root {empty}`"
    assert err == f"error: mnist is not prepared under {empty}: {hint}\n"
    assert not results.exists()


def test_slurm_without_sbatch_is_bad_input(sweep_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep.shutil, "which", lambda _: None)
    results = tmp_path / "r"
    assert main(["run", "--sweep", str(sweep_file), "--results", str(results),
                 "--executor", "slurm"]) == 2  # fmt: skip
    assert "no sbatch on PATH" in capsys.readouterr().err
    assert not results.exists()


def test_specs_survive_a_round_trip_through_dicts():
    spec = RunSpec.make("mnist_mlp", "onecycle", seed=3, schedule_params={"pct_start": 0.2})
    assert RunSpec(**json.loads(json.dumps(spec.to_dict()))).key == spec.key
