"""From loaded results to everything the report shows: tables, figures, sentences, notes.

``build`` returns the template's context; ``render.py`` turns it into HTML and PDF. The
report answers first (a takeaway per task and the verdict matrix), then shows how sure
(accuracy and paired tests), how fast (time to target), how robust (lr sensitivity), how
the numbers were made (methods), and where they came from (reproducibility, how to cite).
The same records give the same bytes: no clock, fixed seeds, fixed SVG ids.
"""

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from report import compare, figures, findings, identical, stats, tables, verdicts
from report.load import Results
from report.tables import Table

ROOT = Path(__file__).resolve().parent.parent  # the repository
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
    "ranks": "Rank of each schedule on mean test accuracy per task (1 = best) and its mean rank",
    "robustness": "LR robustness from the tune runs: the best grid lr, and the contiguous range "
    f"of grid lrs around it whose mean dev accuracy is within {100 * stats.ROBUST_POINTS:g} "
    "points of it (width = lr_to / lr_from)",
    "lr_sensitivity": "Dev accuracy at the end of the budget against lr, mean over tuning seeds",
    "reproduction": "Reproduction check: test accuracy of both result sets; agree when a Welch "
    "TOST shows the means within the margin, differ when a Welch t test separates them (Holm)",
}


@dataclass
class Plot:
    name: str  # anchor
    caption: str
    svg: str  # base64 SVG, inlined as a data URI
    width_in: float  # shown at its drawn size (at most the page width), so fonts stay alike


def plot(name: str, caption: str, fig: Figure) -> Plot:
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": name}):  # element ids from the name, not random
        fig.savefig(buf, format="svg", metadata={"Date": None})  # no date: same input, same file
    return Plot(name, caption, base64.b64encode(buf.getvalue()).decode(), fig.get_figwidth())


def plural(n: int, word: str) -> str:
    """ "1 task", "2 tasks"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def build(results: Results, other: Results | None = None, perf: pd.DataFrame | None = None) -> dict:
    """The template's context for ``results`` (a reproduction check against ``other``; the perf
    chart when ``perf``, from ``load.load_perf``, has rows)."""
    margin, n_records = verdicts.margin(results.sweep), len(results.final)
    progress = tqdm(total=3, desc="report", unit="part", disable=None)
    results, merged, cited, every_ttt = tables_of(results)
    final = results.final
    matrix = cited["recommendation"].frame
    tasks = sorted(final.task.unique())
    progress.update()
    plots = _plots(results, cited, perf)
    progress.update()
    if other is not None:
        check = findings.reproduction(final, identical.merge(other)[0].final, margin)
        both = pd.concat([final, other.final])
        env = tables.environment(results, final.key)
        env += f"; other: {tables.environment(other, other.final.key)}"
        title = f"{TITLES['reproduction']} ({_shown(other.folder)})"
        cited["reproduction"] = Table("reproduction", title, check, both.key.tolist(), env)
    progress.update()
    progress.close()
    acc, paired, speed = (cited[n].frame for n in ("accuracy", "paired", "speed"))
    unreached = every_ttt.groupby(["task", "target"]).n_reached.sum()
    return {
        "meta": _meta(results, n_records, cited["accuracy"].environment),
        "takeaways": {t: findings.takeaway(t, acc, paired, speed) for t in tasks},
        "answer": {
            t: findings.task_sentences(
                t, acc, paired, speed, merged.get(t, []), results.derived_targets
            )
            for t in tasks
        },
        "matrix": _matrix_rows(matrix, cited["ranks"].frame.schedule),
        "guidance": findings.guidance(matrix),
        "merged": merged,
        "unreached": [f"{t} {g:g}" for (t, g), n in unreached.items() if n == 0],
        "tables": cited,
        "plots": plots,
        "friedman": stats.friedman(tables.scores(final)),
        "sensitivity": cited.get("robustness"),
        "reproduction": cited.get("reproduction"),
        "single_seed": int(acc.n.max()) < 2,
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
        "diverged": results.runs[results.runs.status == "diverged"],
        "results": results,
    }


def tables_of(results: Results) -> tuple[Results, dict, dict[str, Table], pd.DataFrame]:
    """What the report computes before it draws: the results with identical schedules merged
    and targets added, the merged groups, the cited tables by name (the verdict matrix first)
    and time to every target."""
    margin = verdicts.margin(results.sweep)
    merged_results, merged = identical.merge(results)
    results = tables.reachable_targets(merged_results)
    final, tune = results.final, results.tune

    def cite(name: str, frame: pd.DataFrame, runs: pd.DataFrame = final) -> Table:
        env = tables.environment(results, runs.key)
        return Table(name, TITLES[name], frame, runs.key.tolist(), env)

    every_ttt = tables.time_to_target(results)
    paired = tables.paired(final, margin)
    speed = tables.speed(final, every_ttt)
    some = every_ttt.groupby(["task", "target"]).n_reached.transform("sum") > 0
    cited = {
        "recommendation": cite("recommendation", verdicts.matrix(paired, speed)),
        "accuracy": cite("accuracy", tables.accuracy(final)),
        "paired": cite("paired", paired),
        "speed": cite("speed", speed),
        "ranks": cite("ranks", tables.ranks(final)),
        "time_to_target": cite("time_to_target", every_ttt[some].reset_index(drop=True)),
    }
    if len(tune):
        sens = tables.sensitivity(tune)
        cited["robustness"] = cite("robustness", stats.robustness(sens), tune)
        cited["lr_sensitivity"] = cite("lr_sensitivity", sens, tune)
    return results, merged, cited, every_ttt


def _plots(results: Results, cited: dict[str, Table], perf: pd.DataFrame | None) -> dict:
    final, speed = results.final, cited["speed"].frame
    tasks = sorted(final.task.unique())
    curves = results.curves[results.curves.key.isin(final.key)]
    targets = speed.groupby("task").target.first().to_dict()  # each task's headline target
    shown = min(figures.KM_TOP, final.groupby("task").schedule.nunique().max())
    across = _across_tasks(final, cited["time_to_target"].frame)
    gallery = ("Every schedule at its defaults (lr 0.1, 10 epochs of 100 steps); momentum, "
               "where cycled, dashed")  # fmt: skip
    plots = {
        "curves": [
            plot(f"curves-{t}", f"{t}: dev accuracy during training", figures.dev_curves(curves, t))
            for t in tasks
        ],
        "km": [
            plot(
                "km",
                "Time to each task's headline target: the fraction of runs at or above it by "
                f"epoch (Kaplan-Meier, 95% band), for the {plural(shown, 'schedule')} with the "
                "smallest median; all of them are in the speed table",
                figures.km_curves(final, speed, targets),
            )
        ],
        "profiles": [
            plot("profiles", across["caption"], figures.performance_profiles(across["ratios"]))
        ],
        "ranks": [
            plot(
                "rank-heatmap",
                "Ranks on mean test accuracy",
                figures.rank_heatmap(cited["ranks"].frame),
            )
        ],
        "gallery": [plot("gallery", gallery, figures.gallery())],
    }
    if "lr_sensitivity" in cited:
        plots["sensitivity"] = [
            plot(
                "sensitivity",
                "Dev accuracy against lr (tune runs), in points below the schedule's best there",
                figures.lr_sensitivity(cited["lr_sensitivity"].frame),
            )
        ]
    if perf is not None and len(perf):
        caption = (
            "Training throughput by engine (results/perf/): "
            + "; ".join(f"{d}, {t}, {s} steps" for d, t, s in
                        perf[["device", "task", "steps"]].drop_duplicates().itertuples(index=False))
        )  # fmt: skip
        plots["perf"] = [plot("perf", caption, figures.perf_chart(perf))]
    return plots


def _across_tasks(final: pd.DataFrame, ttt: pd.DataFrame) -> dict:
    """Performance-profile ratios (problems: task x target for time, task for error) over the
    schedules present on every task (a merged pair may exist on some tasks only)."""
    time = ttt.pivot_table(index=["task", "target"], columns="schedule", values="epoch_median")
    time = time[np.isfinite(time).any(axis=1)]  # a target no schedule reached compares nothing
    error = 1 - tables.scores(final)
    everywhere = error.columns[error.notna().all()]
    ratios = {
        "time to target (KM median epochs)": stats.profile_ratios(time[everywhere]),
        "final test error (mean)": stats.profile_ratios(error[everywhere]),
    }
    caption = (
        f"Performance profiles over {plural(len(time), 'task x target problem')} that some "
        f"schedule reached (time) and {plural(len(error), 'task')} (error); a schedule that "
        "never reached a target counts as infinitely slow there"
    )
    return {"ratios": ratios, "caption": caption}


def _matrix_rows(matrix: pd.DataFrame, order) -> dict:
    """The matrix for the template: tasks (kind, headline target) and a row per schedule, in
    ``order`` (by mean rank); each cell (accuracy, P(best) or None, speed)."""
    heads = [
        {"task": t, "kind": " with ".join(filter(None, findings.kind_of(t))), "target": g}
        for t, g in matrix.drop_duplicates("task")[["task", "target"]].itertuples(index=False)
    ]
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
            row.append((c.accuracy, p_best, c.speed))
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
        "tasks": sorted(final.task.unique()),
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
