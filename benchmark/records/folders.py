"""Where things live: the repository (or, for an installed copy, the current folder), and
beneath it the results root that sweeps write to and the committed perf files."""

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
# data/ and results/ at the repository's root; an installed (non-editable) copy uses the
# current folder's
HOME = REPOSITORY if (REPOSITORY / "pyproject.toml").is_file() else Path.cwd()
RESULTS_ENV = "SCHEDULE_BENCH_RESULTS"  # moves results/<sweep>/
RESULTS = Path(os.environ.get(RESULTS_ENV) or HOME / "results")
PERF = HOME / "results" / "perf"  # perf files, <device>.json, committed with the repository
