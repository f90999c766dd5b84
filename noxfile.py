# /// script
# dependencies = ["nox>=2025.2.9", "uv>=0.5"]
# ///
"""Sessions: tests (default), lint, data, benchmark, perf, report; `nox -l` lists them;
`-- ARGS` passes ARGS.

Every session that needs torch installs it with uv, whose cache hard-links the ~6 GB of torch
and CUDA wheels into each session's virtualenv: a fresh machine downloads them once, and each
further session's install takes seconds (figures in the README). The block above makes a plain
`pip install nox` enough: nox installs uv into .nox/_nox_script_mode on first use.
"""

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"  # keep each session's venv; installs re-check in ~1 s
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"


# uv installs without bytecode: the first import of torch would then compile it (~9 s)
COMPILE = {"UV_COMPILE_BYTECODE": "1"}


def install_project(session: nox.Session, *groups: str) -> None:
    """The project in editable mode (data/ stays at the repo root) plus dependency groups,
    compiled to bytecode at install."""
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    session.install("-e", ".", *deps, env=COMPILE)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite on every core (pytest -n auto; pass options after --, e.g.
    -- -m 'not slow', or -- -n 0 for one process)."""
    install_project(session, "test")
    session.run("pytest", "-n", "auto", "--dist", "worksteal", *session.posargs)


@nox.session(python=PYTHON, default=False)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "dev"))
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


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
    session.install("--no-deps", "-e", ".")  # no torch: the report reads records only
    session.install(*nox.project.dependency_groups(PYPROJECT, "report"), env=COMPILE)
    session.run("python", "-m", "report", *session.posargs)
