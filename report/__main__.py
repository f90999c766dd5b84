"""python -m report [RESULTS_DIR] [--compare OTHER_DIR]: the HTML + PDF report of a results folder.

Reads only the run records (never torch), writes RESULTS_DIR/report/{index.html, report.pdf,
tables/}; ``--tables-only`` writes only tables/ (seconds: no figure, HTML or PDF), and
``--plan POINTS`` prints how many seeds a sweep needs to resolve a margin of POINTS accuracy
points on each problem of these results, and writes nothing. Without RESULTS_DIR it reads the
committed reference and writes to an untracked preview folder, so the committed report changes
only when asked (--out). The same records give the same bytes. Bad input (no such folder, no
records, a bad equivalence margin in sweep.json) is one line on stderr and exit status 2; a file
in runs/ that is not a valid record is skipped with a warning that names it.
"""

import argparse
import sys
import warnings
from pathlib import Path

from benchmark.records import folders
from report.load import SkippedRecord, load, load_perf

ROOT = folders.HOME
RESULTS = ROOT / "results"  # the repository's: its committed reference and perf files
REFERENCE = RESULTS / "reference" / "quick"
PREVIEW = RESULTS / "report-preview"  # git-ignored, unlike the reference's own report/


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "results",
        nargs="?",
        type=Path,
        help="a results folder with runs/ (default: the committed reference, "
        f"{REFERENCE.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER_DIR",
        help="a second results folder: add a reproduction check against it",
    )
    parser.add_argument(
        "--perf",
        type=Path,
        default=RESULTS / "perf",
        help="perf files (<device>.json) for the speed chart (default: "
        f"{(RESULTS / 'perf').relative_to(ROOT)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"where to write the report (default: RESULTS_DIR/report; without RESULTS_DIR "
        f"{PREVIEW.relative_to(ROOT)}, so the committed reference report is not overwritten; "
        "paths relative to the repository)",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="write only the cited tables (CSV, Markdown, LaTeX and index.md) to OUT/tables",
    )
    parser.add_argument(
        "--plan",
        type=float,
        metavar="POINTS",
        help="print the seeds per schedule a sweep needs to resolve a margin of POINTS accuracy "
        "points (e.g. 0.5) on each problem, from these results; writes nothing",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = args.out or (args.results / "report" if args.results else PREVIEW)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRecord)
        try:
            results = load(args.results or REFERENCE)
            other = load(args.compare) if args.compare else None
            perf = load_perf(args.perf)
        except FileNotFoundError as err:
            print(f"error: {err} (a results folder holds runs/<key>.json)", file=sys.stderr)
            return 2
    from report import cited  # the statistics (figures and renderer below, ~6 s to import):
    from report.verdicts import margin  # only once the records are known to be there

    try:
        margin(results.sweep)
        if args.plan is not None and not 0 < args.plan < 100:
            raise ValueError(
                f"--plan takes a margin in accuracy points in (0, 100), not {args.plan}"
            )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for w in caught:
        if issubclass(w.category, SkippedRecord):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.plan is not None:
        print(cited.plan_text(results, args.plan / 100))
        return 0
    if args.tables_only:
        print(f"tables: {cited.write_tables(cited.tables_of(results)[2], out / 'tables')}")
        return 0
    from report.build import build
    from report.render import write

    paths = write(build(results, other, perf), out)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
