"""Deadlines: which groups may start (on a clock of the test's own: no timings), and a sweep
stopped at its deadline, by ``--deadline`` or by SIGUSR2 mid-run, that resumes to the
uninterrupted sweep's records."""

import pytest

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import RunSpec
from benchmark.cli import main
from benchmark.sweeps import deadline as dl
from benchmark.sweeps import protocol
from testkit import FAKE_RUNS, assert_whole, records, resume, runner


@pytest.fixture(autouse=True)
def unwarned():
    """No SIGUSR2 carried over between tests of this process."""
    dl.WARNED.clear()
    yield
    dl.WARNED.clear()


def specs(n: int, epochs: int = 1, task: str = "mnist_logreg") -> list[RunSpec]:
    return [RunSpec.make(task, "cosine", seed=seed, epochs=epochs) for seed in range(n)]


def test_a_group_starts_only_when_it_is_expected_to_end_in_time():
    now = [0.0]
    deadline = dl.Deadline(100.0, clock=lambda: now[0])
    assert deadline.fits(specs(4))  # cost unknown: it starts, and so its cost is learnt
    for spec in specs(4):
        deadline.costs.add(spec, 10.0)
    now[0] = 50.0  # 50 s left: 4 runs of 10 s, x MARGIN 1.25, fit exactly; 5 do not
    assert deadline.fits(specs(4))
    assert not deadline.reached
    assert not deadline.fits(specs(5))
    assert deadline.reached
    # a budget not measured yet: the task's seconds per epoch (10) times its epochs (3)
    assert deadline.fits(specs(1, epochs=3))
    assert not deadline.fits(specs(2, epochs=3))
    # a task not measured yet: the seconds per epoch of every run measured
    assert deadline.fits(specs(2, epochs=2, task="mnist_mlp"))
    assert not deadline.fits(specs(3, epochs=2, task="mnist_mlp"))
    now[0] = 100.0  # no time left: not even a group of unknown cost starts
    assert not deadline.fits(specs(1, task="smnist_gru"))
    assert deadline.passed()


def test_no_deadline_starts_every_group_until_sigusr2():
    deadline = dl.Deadline(None)
    for spec in specs(3):
        deadline.costs.add(spec, 1e9)
    assert deadline.fits(specs(3))
    assert not deadline.passed()
    dl.warn()  # Slurm's warning before a time limit: the deadline is now
    assert not deadline.fits(specs(1, task="smnist_gru"))
    assert deadline.passed()
    assert deadline.reached


def test_costs_need_a_measured_run():
    costs = dl.Costs()
    assert costs.expected("mnist_logreg", 1) is None
    costs.add(specs(1)[0], 4.0)
    costs.add(specs(2)[1], 6.0)
    assert costs.expected("mnist_logreg", 1) == 5.0


def test_a_deadline_from_the_sweep_file_or_the_command_line(tmp_path, capsys):
    assert protocol.load("smoke").deadline is None
    assert protocol.load("smoke", [("deadline", 600)]).deadline == 600
    for bad in (0, -5, "soon"):
        with pytest.raises(InputError, match="deadline must be a number of seconds > 0"):
            protocol.load("smoke", [("deadline", bad)])
    results = tmp_path / "r"
    assert main(["run", "--sweep", "smoke", "--results", str(results), "--deadline", "-1"]) == 2
    assert "--deadline must be a number of seconds >= 0, got -1.0" in capsys.readouterr().err
    assert not results.exists()


@pytest.mark.slow
def test_a_deadline_already_passed_starts_nothing_and_says_what_remains(worlds, tmp_path):
    sweep_file, expected = worlds("auto")
    results = tmp_path / "r"
    stopped = runner(sweep_file, results, extra=["--deadline", "0"])
    _out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == dl.STOPPED, err
    assert "stopped at the deadline: records kept: 0 of 12 tune runs; go on with:" in err
    assert records(results) == {}
    assert (results / "runs.csv").is_file()  # the tables of what is done: nothing yet
    resume(sweep_file, results)
    assert_whole(results, expected)


@pytest.mark.slow
def test_sigusr2_mid_run_stops_at_the_group_then_resume_gives_the_uninterrupted_records(
    worlds, tmp_path
):
    """SIGUSR2 during the 60th optimizer update (tune: digits_logreg's batched group makes 20,
    then digits_mlp's runs 20 each): that run finishes, no other starts, the tables hold the
    8 records made; the resumed sweep equals the uninterrupted one."""
    sweep_file, expected = worlds("auto")
    results = tmp_path / "r"
    stopped = runner(sweep_file, results, "step:60:usr2")
    _out, err = stopped.communicate(timeout=300)
    assert stopped.returncode == dl.STOPPED, err
    assert "stopped at the deadline: records kept: 8 of 12 tune runs" in err
    made = records(results)
    assert made == {key: expected[key] for key in made}
    assert len((results / "runs.csv").read_text().splitlines()) == 1 + 8
    assert not list((results / "claims").iterdir())
    resume(sweep_file, results)
    assert_whole(results, expected)
    assert len(records(results)) == FAKE_RUNS
