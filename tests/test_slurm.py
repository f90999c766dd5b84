"""The Slurm executor against a real one-node Slurm cluster (tests/slurm/start): a running
array task cancelled (scancel), then resumed; a time limit's warning (SIGUSR2), on which the
task checkpoints, requeues and finishes; slurmd and the job killed mid-job (a node failure),
the node DOWN, the job requeued: each array sweep equals the local executor's records, no
record lost or duplicated.

The cluster is started once per test process and stopped by the last process that used it
(a shared lock: pytest-xdist runs several); the node-failure test takes the node alone, since a
node DOWN requeues every job on it. Where the packages are not installed, or we are not
root, the tests skip with one line (README, "Development": the cluster tests' system line).
"""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import testkit
from testkit import FAKE_SWEEP, TESTS, records, runner

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPTS = TESTS / "slurm"
STATE = Path(os.environ.get("SLURM_TEST_DIR", "/tmp/schedule-bench-slurm"))
# one task, single engine: each run is its own unit, so the array tasks share six units a phase
SWEEP = FAKE_SWEEP.replace('"digits_logreg", ', "")
RUNS = 12
ARRAY = ["--executor", "slurm", "--array-parallelism", "2", "--slurm-time", "60"]


@pytest.fixture(scope="session")
def cluster():
    """The environment that reaches the test cluster: its slurm.conf, and the sacct stand-in
    (tests/slurm/bin/sacct) first on PATH."""
    if os.geteuid() != 0:
        pytest.skip("slurm: the test cluster's daemons run as root; not root here")
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "users.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # a process stopping the cluster holds it exclusively
        started = subprocess.run([SCRIPTS / "start"], capture_output=True, text=True)
        if started.returncode == 3:  # a daemon or client is not installed
            pytest.skip(f"{started.stderr.strip()} (README: the cluster tests' system line)")
        assert started.returncode == 0, started.stderr
        path = f"{SCRIPTS / 'bin'}{os.pathsep}{os.environ['PATH']}"
        yield {"SLURM_CONF": str(STATE / "slurm.conf"), "PATH": path}
        fcntl.flock(lock, fcntl.LOCK_UN)
        with contextlib.suppress(BlockingIOError):  # another process still uses it: it stops it
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            subprocess.run([SCRIPTS / "stop"], capture_output=True, check=True)


@contextlib.contextmanager
def node_lock(mode: int):
    with (STATE / "node.lock").open("w") as lock:
        fcntl.flock(lock, mode)
        yield


@pytest.fixture
def node(cluster):
    """The cluster, its node shared with the other tests but the node-failure test."""
    with node_lock(fcntl.LOCK_SH):
        yield cluster


@pytest.fixture
def alone(cluster):
    """The cluster, its node to this test alone: a node DOWN requeues every job on it."""
    with node_lock(fcntl.LOCK_EX):
        yield cluster


@pytest.fixture
def world(worlds):
    """The sweep file, and the records of the local executor (conftest.py)."""
    return worlds("auto", SWEEP)


def drive(world, results: Path, cluster: dict):
    """The sweep's driver on the cluster: ``python -m benchmark run --executor slurm``."""
    return runner(world[0], results, extra=ARRAY, environ=cluster)


def assert_whole(results: Path, expected: dict) -> None:
    """Every run once, as the local executor made it; nothing failed."""
    testkit.assert_whole(results, expected)
    assert not list((results / "failed").iterdir())


def running_run(results: Path, timeout: float = 120) -> int:
    """The pid of a process training a run of ``results`` (its claim names it), once one is."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for claim in (results / "claims").glob("*.claim") if results.exists() else ():
            with contextlib.suppress(OSError, ValueError):
                return json.loads(claim.read_text())["pid"]
        time.sleep(0.2)
    raise AssertionError(f"no run of {results} started within {timeout} s")


def job_of(pid: int) -> str:
    """The array task of process ``pid``, ARRAYID_TASK (task 0's own job id is the array's)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    slurm = dict(v.decode().split("=", 1) for v in environ if v.startswith(b"SLURM_ARRAY_"))
    return f"{slurm['SLURM_ARRAY_JOB_ID']}_{slurm['SLURM_ARRAY_TASK_ID']}"


def job(job_id: str, cluster: dict) -> dict:
    shown = scontrol(cluster, "show", "job", "-o", job_id)
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


def scontrol(cluster: dict, *args: str) -> str:
    done = subprocess.run(["scontrol", *args], env=os.environ | cluster, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout


def wait_for(what: str, test, timeout: float = 120, every: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := test():
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_scancel_of_a_running_task_then_resume(world, node, tmp_path):
    """A task cancelled at its first run: Slurm sends SIGCONT and SIGTERM (which submitit
    logs and ignores), then SIGKILL after KillWait; held (SIGSTOP) once the SIGTERM came, it
    cannot finish its runs meanwhile, as it might on a busy machine."""
    cluster, results = node, tmp_path / "r"
    driver = drive(world, results, cluster)
    pid = running_run(results)
    task = job_of(pid)
    subprocess.run(["scancel", task], env=os.environ | cluster, check=True)
    log = results / "slurm" / task / f"{task}_0_log.out"
    wait_for("SIGTERM", lambda: "Bypassing signal SIGTERM" in log.read_text(), 30, every=0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    _out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1, err  # the cancelled task's runs failed; the final phase waits
    assert "UncompletedJobError" in err, err  # no result: the task's unfinished runs failed
    assert job(task, cluster)["JobState"] == "CANCELLED"
    assert len(records(results)) < RUNS
    resumed = drive(world, results, cluster)
    _out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_whole(results, world[1])


def test_a_time_limit_warns_and_the_task_checkpoints_requeues_and_finishes(world, node, tmp_path):
    """A running task is held (SIGSTOP) and its time limit cut to one minute: Slurm sends its
    warning, SIGUSR2 (with a SIGCONT: it goes on), at its next time-limit check (~30 s);
    submitit checkpoints the task and requeues it; the requeued task gets its hour back and
    finishes. The array sweep equals the local executor's, two array tasks a phase."""
    cluster, results = node, tmp_path / "r"
    driver = drive(world, results, cluster)
    pid = running_run(results)
    task = job_of(pid)
    os.kill(pid, signal.SIGSTOP)  # so it is still running when the warning comes
    try:
        scontrol(cluster, "update", f"JobId={task}", "TimeLimit=1")
        wait_for("the task requeued", lambda: int(job(task, cluster)["Restarts"]) >= 1, 90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    scontrol(cluster, "update", f"JobId={task}", "TimeLimit=60")
    _out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert_whole(results, world[1])
    log = (results / "slurm" / task / f"{task}_0_log.out").read_text()
    for step in ("Caught signal SIGUSR2", "Calling checkpoint method", f"Requeued job {task}"):
        assert step in log
    tasks = [p for p in (results / "slurm").glob("*_*") if p.is_dir()]  # ARRAY_TASK
    assert len(tasks) == 4  # the requeued task kept its id


def test_slurmd_and_the_job_killed_then_the_node_back(world, alone, tmp_path):
    """A node failure: slurmd and every process of the job killed; after SlurmdTimeout the
    node is DOWN and the job requeued; slurmd restarted, the job runs again and finishes."""
    cluster, results = alone, tmp_path / "r"
    driver = drive(world, results, cluster)
    task = job_of(running_run(results))
    victims = [int((STATE / "slurmd.pid").read_text()), *processes_of(job(task, cluster)["JobId"])]
    assert len(victims) >= 4  # slurmd; the batch and step slurmstepd; the task's processes
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def down() -> bool:
        shown = subprocess.run(["sinfo", "-h", "-o", "%t"], env=os.environ | cluster, text=True,
                               capture_output=True, check=True)  # fmt: skip
        return shown.stdout.startswith("down")

    wait_for("the node DOWN", down, timeout=60)
    started = subprocess.run([SCRIPTS / "start"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    _out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert int(job(task, cluster)["Restarts"]) >= 1
    assert_whole(results, world[1])


def processes_of(job_id: str) -> list[int]:
    """The pids of job ``job_id`` (numeric): its slurmstepd processes and the processes in
    it."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
            stepd = cmdline.startswith(b"slurmstepd: [" + job_id.encode() + b".")
            if stepd or f"SLURM_JOB_ID={job_id}".encode() in environ:
                out.append(int(proc.name))
    return out
