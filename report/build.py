"""From loaded results to everything the report shows: tables, figures, sentences, notes.

``build`` returns the template's context; ``render.py`` turns it into HTML and PDF. The
report answers first (a takeaway per task and the verdict matrix), then, when a task ran at
several budgets, which schedule at which budget (``budgets.py``), then shows how sure
(accuracy and comparisons with the best), how fast (time to target), how robust (lr
sensitivity), how the numbers were made (methods), and where they came from (reproducibility,
how to cite). The cited tables are computed first (``cited.py``).
The same records give the same bytes: no clock, fixed seeds, fixed SVG ids.
"""

import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark.records import folders
from report import (
    budgets,
    classification,
    findings,
    identical,
    mcb,
    mcb_sim,
    planning,
    stats,
    tables,
    verdicts,
)
from report.cited import TITLES, tables_of
from report.load import Results
from report.plots import plots
from report.tables import Table

ROOT = folders.HOME  # the repository
SECTIONS = {  # anchor: heading, in reading order; the budget section only with budgets
    "details": "The answer in detail",
    "budget-section": "Which schedule at which budget",
    "accuracy-section": "Final accuracy",
    "time-section": "Time to target",
    "across-section": "Across tasks",
    "curves-section": "Learning curves",
    "sensitivity-section": "Learning-rate sensitivity",
    "methods": "Methods",
    "reproducibility": "Reproducibility",
    "cite": "How to cite",
}


def build(results: Results, other: Results | None = None, perf: pd.DataFrame | None = None) -> dict:
    """The template's context for ``results`` (a reproduction check against ``other``; the perf
    chart when ``perf``, from ``load.load_perf``, has rows)."""
    margin, n_records = verdicts.margin(results.sweep), len(results.final)
    progress = tqdm(total=3, desc="report", unit="part", disable=None)
    results, merged, cited, every_ttt = tables_of(results)
    final = results.final
    order = budgets.order(results, final.task.unique())  # problems: task x budget
    progress.update()
    drawn = plots(results, cited, order, perf)
    progress.update()
    if other is not None:
        other = identical.merge(budgets.split(other))[0]
        check = findings.reproduction(final, other.final, margin)
        both = pd.concat([final, other.final])
        env = tables.environment(results, final.key)
        env += f"; other: {tables.environment(other, other.final.key)}"
        title = f"{TITLES['reproduction']} ({_shown(other.folder)})"
        cited["reproduction"] = Table("reproduction", title, check, both.key.tolist(), env)
    progress.update()
    progress.close()
    unreached = every_ttt.groupby(["task", "target"]).n_reached.sum()
    kinds = findings.kinds(final)
    section = _budget_section(results, cited)
    return {
        "meta": _meta(results, n_records, cited["accuracy"].environment),
        "sections": _numbered(section is not None),
        "takeaways": _takeaways(results, cited, kinds, section),
        "answer": _answer(results, cited, merged, order),
        "budget": section,
        "matrix": _matrix_rows(
            cited["recommendation"].frame,
            cited["ranks"].frame.schedule,
            order,
            kinds,
            tables.grid_edges(final, results.tune),
        ),
        "guidance": findings.guidance(cited["recommendation"].frame, kinds, results.task_of),
        "merged": merged,
        "undigested": identical.undigested(final),
        "without_examples": classification.unsupported(final, results),
        "unreached": [f"{t} {g:g}" for (t, g), n in unreached.items() if n == 0],
        "tables": cited,
        "plots": drawn,
        "friedman": stats.friedman(tables.task_scores(final, results.task_of)),
        "sensitivity": cited.get("robustness"),
        "reproduction": cited.get("reproduction"),
        "single_seed": int(cited["accuracy"].frame.n.max()) < 2,
        "constants": {
            "alpha": planning.ALPHA,
            "level": f"{100 * stats.LEVEL:g}%",
            "margin": f"{100 * margin:g}",
            "default_margin": f"{100 * verdicts.MARGIN:g}",
            "power": f"{100 * planning.POWER:g}%",
            "resamples": f"{stats.RESAMPLES:,}",
            "mcb_resamples": f"{mcb.RESAMPLES:,}",
            "robust_points": f"{100 * stats.ROBUST_POINTS:g}",
            "reach": f"{100 * tables.REACH_QUANTILE:g}th percentile",
            "simulated": mcb_sim.MEASURED,
        },
        "coverage": {
            d: {n: stats.coverage(n, d) for n in stats.COVERAGE_N} for d in stats.DISTRIBUTIONS
        },
        "provenance": _provenance(results),
        "machines": machines(results.provenance),
        "diverged": results.runs[results.runs.status == "diverged"],
        "results": results,
    }


def _numbered(with_budgets: bool) -> dict[str, tuple[int, str]]:
    """Each section's number and heading, the budget section only when there is one."""
    shown = [s for s in SECTIONS if with_budgets or s != "budget-section"]
    return {s: (i, SECTIONS[s]) for i, s in enumerate(shown, start=1)}


def _budget_section(results: Results, cited: dict[str, Table]) -> dict | None:
    """The budget section's sentences per task with several budgets and its possibly-best sets;
    None when every task has one budget."""
    if "budgets" not in cited:
        return None
    table = cited["budgets"].frame
    section = {
        "ranking": cited["budget_ranking"].frame,
        "times": cited["budget_time"].frame,
        "sets": budgets.sets(table),
    }
    section["sentences"] = {
        task: budgets.sentences(results, task, section) for task in budgets.tasks(results)
    }
    return section


def _answer(results: Results, cited: dict[str, Table], merged: dict, order) -> dict:
    """The sentences of the answer in detail, per problem (task x budget) in ``order``."""
    frames = [cited[n].frame for n in ("accuracy", "verdicts", "resolution", "speed")]
    return {
        t: findings.task_sentences(t, *frames, merged.get(t, []),
                                   results.derived_targets.get(results.task_of(t), []))
        for t in order
    }  # fmt: skip


def _takeaways(results: Results, cited: dict[str, Table], kinds: dict, section) -> list[dict]:
    """Page 1's line per task (task, kind, text): with several budgets the sets at each."""
    frames = [cited[n].frame for n in ("verdicts", "resolution", "speed")]
    several, out = budgets.tasks(results), []
    for problem in budgets.order(results, results.final.task.unique()):
        task = results.task_of(problem)
        if task not in several:
            text = findings.takeaway(problem, *frames)
        elif problem == several[task][0]:
            text = budgets.takeaway(task, section["sets"][task])
        else:
            continue
        out.append({"task": task, "kind": kinds[problem], "text": text})
    return out


def _matrix_rows(matrix: pd.DataFrame, order, problems: list[str], kinds: dict, edges) -> dict:
    """The matrix for the template: tasks (kind, headline target) in ``problems``' order and a
    row per schedule name, in ``order`` (by mean rank); each cell (accuracy verdict, the gap's
    interval or None, speed verdict, the grid edge its lr sits on or None:
    ``tables.grid_edges``, the schedule it is identical to at that budget or None). A merged
    schedule ("a = b") gives each of its names the cell of its runs, which are a's."""
    targets = matrix.drop_duplicates("task").set_index("task").target
    heads = [{"task": t, "kind": kinds[t], "target": targets[t]} for t in problems]
    cells = {(m, r.task): r for r in matrix.itertuples() for m in r.schedule.split(" = ")}
    rows = []
    for s in order:
        row = []
        for h in heads:
            c = cells.get((s, h["task"]))
            if c is None:
                row.append(None)
                continue
            first = c.schedule.split(" = ")[0]
            gap = None if pd.isna(c.gap_ci_lo) else tables.Interval(c.gap_ci_lo, c.gap_ci_hi)
            same = first if first != s else None
            row.append((c.accuracy, gap, c.speed, edges.get((c.schedule, h["task"])), same))
        rows.append({"schedule": s, "cells": row})
    return {"tasks": heads, "rows": rows}


def _meta(results: Results, n_final: int, env: str) -> dict:
    sweep, final = results.sweep, results.final
    commits = sorted(results.provenance.git_commit.dropna().unique())
    stamps = results.provenance.get("timestamp", pd.Series(dtype=str)).dropna()
    return {
        "sweep": sweep.get("name", results.folder.name),
        "description": sweep.get("description", ""),
        "folder": _shown(results.folder),
        "n_final": n_final,  # records, before identical schedules were merged
        "n_tune": len(results.tune),
        "tasks": sorted({results.task_of(p) for p in final.task.unique()}),
        "budgets": sorted(
            {results.problems[p][1] for ps in budgets.tasks(results).values() for p in ps}
        ),
        "schedules": sorted(final.schedule.unique()),
        "seeds": sorted(final.seed.unique().tolist()),
        "environment": env,
        "commit": commits[0] if len(commits) == 1 else ", ".join(commits) or "unknown",
        "newest": max(stamps)[:10] if len(stamps) else "unknown",  # the records', not the clock's
        "protocol": "\n".join(f"{k} = {json.dumps(v)}" for k, v in sweep.items()),
    }


def _shown(folder: Path) -> str:
    """A folder inside this repository relative to it (a committed report names no machine)."""
    try:
        return str(folder.resolve().relative_to(ROOT))
    except ValueError:
        return str(folder)


def machines(provenance: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(host, device, records) of each machine and device the records were made on, most
    records first; a record older than ``provenance.host`` names no host ("unnamed")."""
    hosts = provenance.get("host", pd.Series("unnamed", index=provenance.index))
    made = pd.DataFrame({"host": hosts.fillna("unnamed"), "device": provenance.device})
    counts = made.value_counts(sort=False).reset_index(name="n")
    counts = counts.sort_values(["n", "host", "device"], ascending=[False, True, True])
    return [(r.host, r.device, int(r.n)) for r in counts.itertuples()]


def _provenance(results: Results) -> list[tuple[str, str]]:
    """Each provenance field and its distinct values across the runs (with counts if several)."""
    out = []
    for col in results.provenance.columns.drop(["key", "timestamp"], errors="ignore"):
        counts = results.provenance[col].astype(str).value_counts()
        text = (
            counts.index[0]
            if len(counts) == 1
            else "; ".join(f"{v} ({n} runs)" for v, n in counts.items())
        )
        out.append((col, text))
    return out
