"""From loaded results to everything the report shows: tables, figures, sentences, notes.

``build`` returns the template's context; ``render.py`` turns it into HTML and PDF. The
report answers first (a takeaway per task and the verdict matrix), then, when a task ran at
several budgets, which schedule at which budget (``budgets.py``), then shows how sure
(accuracy and paired tests), how fast (time to target), how robust (lr sensitivity), how
the numbers were made (methods), and where they came from (reproducibility, how to cite).
The same records give the same bytes: no clock, fixed seeds, fixed SVG ids.
"""

import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark.records import folders
from report import budgets, classification, compare, findings, identical, stats, tables, verdicts
from report.load import Results
from report.plots import plots
from report.tables import Table

ROOT = folders.HOME  # the repository
TITLES = {  # each cited table's title, shown in its caption after its ID
    "recommendation": "Verdict per task and schedule on final test accuracy (with P(best), the "
    "share of seed resamples in which it has the highest mean) and on time to the task's "
    "headline target",
    "accuracy": "Final test accuracy per task and schedule: mean, std, 95% t interval of the "
    "mean, interquartile mean (IQM); diverged runs included",
    "paired": "Each schedule against the task's best on test accuracy, paired by seed on counts "
    "of correct test examples: mean difference (accuracy) with its 95% t interval, two-sided "
    "Wilcoxon signed-rank p and Holm-adjusted p, TOST p that the difference lies within the "
    "margin and Holm-adjusted p, P(best), probability of improvement P(schedule > best) over "
    "all pairs of runs, verdict, and for an inconclusive one the seeds that would likely "
    "settle it",
    "speed": "Time to each task's headline dev-accuracy target: runs that reached it, "
    "Kaplan-Meier median epochs (95% CI), log-rank z and p against the fastest (positive z: "
    "sooner), Holm-adjusted p, verdict",
    "time_to_target": "Time to every dev-accuracy target some run reached: runs that reached "
    "it and the Kaplan-Meier median (95% CI) in steps, epochs and training seconds; n.r.: not "
    "reached (inf in the CSV)",
    "metrics": "Every test metric per task and schedule: accuracy, macro F1, macro precision and "
    "recall, one-vs-rest ROC-AUC and average precision (AP) of the softmax scores, macro; each "
    "the mean over the final runs with its 95% t interval; ROC-AUC and AP over the n_scored "
    "runs whose scores were finite (a diverged run's are not), AP from records of schema 4 on",
    "ranks": "Rank of each schedule on mean test accuracy per task (1 = best) and its mean rank",
    "robustness": "LR robustness from the tune runs: the best grid lr, and the contiguous range "
    f"of grid lrs around it whose mean dev accuracy is within {100 * stats.ROBUST_POINTS:g} "
    "points of it (width = lr_to / lr_from)",
    "lr_sensitivity": "Dev accuracy at the end of the budget against lr, mean over tuning seeds",
    "budgets": "Every schedule at every budget of a task run at several (epochs; each budget "
    "with its own tuned lr and the same seeds): the lr selected there, final test accuracy "
    "(mean, 95% t interval), P(best) and the accuracy verdict against that budget's best; a "
    "schedule merged with another at a budget is listed under each name",
    "budget_ranking": "Does the order of the schedules change with the budget? Kendall's tau-b "
    "between their mean test accuracies at two budgets (+1: the same order, -1: reversed), "
    "on the seeds every schedule ran at both, with a 95% percentile interval over resamples "
    "of those seeds (the same seeds drawn at both budgets)",
    "budget_time": "Time to each dev-accuracy target some run reached, per schedule and budget "
    "(each budget with its own tuned lr): runs that reached it and the Kaplan-Meier median "
    "(95% CI) in steps and epochs; n.r.: not reached (inf in the CSV)",
    "reproduction": "Reproduction check: test accuracy of both result sets; agree when a Welch "
    "TOST shows the means within the margin, differ when a Welch t test separates them (Holm)",
}


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
        "friedman": stats.friedman(tables.scores(final)),
        "sensitivity": cited.get("robustness"),
        "reproduction": cited.get("reproduction"),
        "single_seed": int(cited["accuracy"].frame.n.max()) < 2,
        "constants": {
            "alpha": compare.ALPHA,
            "level": f"{100 * stats.LEVEL:g}%",
            "margin": f"{100 * margin:g}",
            "default_margin": f"{100 * verdicts.MARGIN:g}",
            "best_sure": f"{100 * verdicts.BEST_SURE:g}%",
            "power": f"{100 * compare.POWER:g}%",
            "resamples": f"{stats.RESAMPLES:,}",
            "robust_points": f"{100 * stats.ROBUST_POINTS:g}",
            "reach": f"{100 * tables.REACH_QUANTILE:g}th percentile",
            "exact_pairs": compare.EXACT_PAIRS,
        },
        "coverage": {
            d: {n: stats.coverage(n, d) for n in stats.COVERAGE_N} for d in stats.DISTRIBUTIONS
        },
        "provenance": _provenance(results),
        "machines": machines(results.provenance),
        "diverged": results.runs[results.runs.status == "diverged"],
        "results": results,
    }


def tables_of(results: Results) -> tuple[Results, dict, dict[str, Table], pd.DataFrame]:
    """What the report computes before it draws: the results split into problems (task x
    budget) with identical schedules merged and targets added, the merged groups, the cited
    tables by name (the verdict matrix first) and time to every target."""
    margin = verdicts.margin(results.sweep)
    merged_results, merged = identical.merge(budgets.split(results))
    results = tables.reachable_targets(merged_results)
    final, tune = results.final, results.tune

    def cite(name: str, frame: pd.DataFrame, runs: pd.DataFrame = final) -> Table:
        env = tables.environment(results, runs.key)
        return Table(name, TITLES[name], frame, runs.key.tolist(), env)

    every_ttt = tables.time_to_target(results)
    paired = tables.paired(final, margin)
    speed = tables.speed(final, every_ttt)
    some = every_ttt.groupby(["task", "target"]).n_reached.transform("sum") > 0
    acc = tables.accuracy(final)
    cited = {
        "recommendation": cite("recommendation", verdicts.matrix(paired, speed)),
        "accuracy": cite("accuracy", acc),
        "metrics": cite("metrics", classification.table(final)),
        "paired": cite("paired", paired),
        "speed": cite("speed", speed),
        "ranks": cite("ranks", tables.ranks(final)),
        "time_to_target": cite("time_to_target", every_ttt[some].reset_index(drop=True)),
    }
    if budgets.tasks(results):
        runs = final[final.task.isin([p for ps in budgets.tasks(results).values() for p in ps])]
        cited["budgets"] = cite("budgets", budgets.verdicts(results, acc, paired), runs)
        cited["budget_ranking"] = cite("budget_ranking", budgets.ranking(results), runs)
        cited["budget_time"] = cite("budget_time", budgets.times(results, every_ttt), runs)
    if len(tune):
        sens = tables.sensitivity(tune)
        cited["robustness"] = cite("robustness", stats.robustness(sens), tune)
        cited["lr_sensitivity"] = cite("lr_sensitivity", sens, tune)
    return results, merged, cited, every_ttt


def _numbered(with_budgets: bool) -> dict[str, tuple[int, str]]:
    """Each section's number and heading, the budget section only when there is one."""
    shown = [s for s in SECTIONS if with_budgets or s != "budget-section"]
    return {s: (i, SECTIONS[s]) for i, s in enumerate(shown, start=1)}


def _budget_section(results: Results, cited: dict[str, Table]) -> dict | None:
    """The budget section's sentences per task with several budgets, and its robust schedules;
    None when every task has one budget."""
    if "budgets" not in cited:
        return None
    acc, paired = cited["accuracy"].frame, cited["paired"].frame
    section = {
        "ranking": cited["budget_ranking"].frame,
        "times": cited["budget_time"].frame,
        "robust": budgets.robust(cited["budgets"].frame),
    }
    section["sentences"] = {
        task: budgets.sentences(results, task, acc, paired, section)
        for task in budgets.tasks(results)
    }
    return section


def _answer(results: Results, cited: dict[str, Table], merged: dict, order) -> dict:
    """The sentences of the answer in detail, per problem (task x budget) in ``order``."""
    acc, paired, speed = (cited[n].frame for n in ("accuracy", "paired", "speed"))
    return {
        t: findings.task_sentences(t, acc, paired, speed, merged.get(t, []),
                                   results.derived_targets.get(results.task_of(t), []))
        for t in order
    }  # fmt: skip


def _takeaways(results: Results, cited: dict[str, Table], kinds: dict, section) -> list[dict]:
    """Page 1's line per task (task, kind, text): with several budgets the best at each."""
    acc, paired, speed = (cited[n].frame for n in ("accuracy", "paired", "speed"))
    several, out = budgets.tasks(results), []
    for problem in budgets.order(results, results.final.task.unique()):
        task = results.task_of(problem)
        if task not in several:
            text = findings.takeaway(problem, acc, paired, speed)
        elif problem == several[task][0]:
            text = budgets.takeaway(results, task, acc, paired, section["robust"])
        else:
            continue
        out.append({"task": task, "kind": kinds[problem], "text": text})
    return out


def _matrix_rows(matrix: pd.DataFrame, order, problems: list[str], kinds: dict, edges) -> dict:
    """The matrix for the template: tasks (kind, headline target) in ``problems``' order and a
    row per schedule, in ``order`` (by mean rank); each cell (accuracy, P(best) or None,
    speed, the grid edge its lr sits on or None: ``tables.grid_edges``)."""
    targets = matrix.drop_duplicates("task").set_index("task").target
    heads = [{"task": t, "kind": kinds[t], "target": targets[t]} for t in problems]
    cells = matrix.set_index(["schedule", "task"])
    rows = []
    for s in order:
        row = []
        for h in heads:
            if (s, h["task"]) not in cells.index:
                row.append(None)
                continue
            c = cells.loc[(s, h["task"])]
            p_best = c.p_best if c.accuracy.startswith("best") else None
            row.append((c.accuracy, p_best, c.speed, edges.get((s, h["task"]))))
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
