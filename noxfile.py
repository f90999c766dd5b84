# /// script
# dependencies = ["nox>=2025.2.9", "uv>=0.5"]
# ///
"""Sessions: tests (default), lint, data, benchmark, perf, report; `nox -l` lists them;
`-- ARGS` passes ARGS.

Every session installs the exact versions pinned in uv.lock (`uv sync --locked`: it fails when
the lock is stale against pyproject.toml), so a fresh machine gets the versions the reference
results were made with. uv's cache hard-links the ~6 GB of torch and CUDA wheels into each
session's virtualenv: a fresh machine downloads them once, and each further session's install
takes seconds (figures in the README). The block above makes a plain `pip install nox` enough:
nox installs uv into .nox/_nox_script_mode on first use.
"""

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"  # keep each session's venv; installs re-check in ~1 s
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


# uv installs without bytecode: the first import of torch would then compile it (~9 s)
COMPILE = {"UV_COMPILE_BYTECODE": "1"}


def sync(session: nox.Session, *args: str) -> None:
    """Install from uv.lock into the session's virtualenv, compiled to bytecode at install."""
    env = {**COMPILE, "UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install("uv", "sync", "--locked", "--no-default-groups", *args, env=env)


def install_project(session: nox.Session, *groups: str) -> None:
    """The project in editable mode (data/ stays at the repo root), its locked dependencies and
    the locked dependency groups ``groups``."""
    sync(session, *(f"--group={group}" for group in groups))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite on every core (pytest -n auto; pass options after --, e.g.
    -- -m 'not slow', or -- -n 0 for one process)."""
    install_project(session, "test")
    session.run("pytest", "-n", "auto", "--dist", "worksteal", *session.posargs)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff, and the layers with import-linter."""
    sync(session, "--only-group=lint")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports", env={"PYTHONPATH": "."})  # the contracts in pyproject.toml


@nox.session(python=PYTHON, default=False)
def data(session: nox.Session) -> None:
    """Acquire and verify MNIST and Fashion-MNIST (python -m benchmark data ARGS)."""
    install_project(session)
    session.run("python", "-m", "benchmark", "data", *session.posargs)


@nox.session(python=PYTHON, default=False)
def benchmark(session: nox.Session) -> None:
    """Run a sweep (default quick; -- --sweep smoke|full|FILE.toml ...), its tables and report."""
    install_project(session)
    session.run("python", "-m", "benchmark", "data")  # verifies in ~0.5 s once prepared
    session.run("python", "-m", "benchmark", "run", "--report", *session.posargs)


@nox.session(python=PYTHON, default=False)
def perf(session: nox.Session) -> None:
    """Measure training throughput: standard pattern, single and batched engine (-- ARGS)."""
    install_project(session)
    session.run("python", "-m", "benchmark", "data")
    session.run("python", "-m", "benchmark", "perf", *session.posargs)


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Render a results folder's HTML + PDF report (-- DIR; default: the committed reference
    drawn into results/report-preview/)."""
    sync(session, "--only-group=report")  # no torch: the report reads records only
    session.install("--no-deps", "-e", ".")
    session.run("python", "-m", "report", *session.posargs)
