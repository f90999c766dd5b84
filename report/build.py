"""From loaded results to everything the report shows: tables, figures, sentences, notes.

``build`` returns the template's context; ``render.py`` turns it into HTML and PDF. The
sections follow the question a reader brings: which schedule for which task (the answer),
how sure (accuracy and paired tests), how fast (time to target), how robust (lr
sensitivity), and where it came from (reproducibility, how to cite).
"""

import base64
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from report import figures, findings, stats, tables
from report.load import Results
from report.tables import Table

ROOT = Path(__file__).resolve().parent.parent  # the repository
TITLES = {  # each cited table's title, shown in its caption after its ID
    "recommendation": "Verdict per task and schedule on final test accuracy and on time to the "
    "task's headline target",
    "accuracy": "Final test accuracy and error per task and schedule: mean, std, 95% bootstrap "
    "CI of the mean, interquartile mean (IQM); diverged runs included",
    "paired": "Each schedule against the task's best on test accuracy: mean paired difference "
    "(same seeds), two-sided Wilcoxon signed-rank p, Holm-adjusted p, tied (p_holm >= "
    f"{stats.ALPHA}), probability of improvement P(schedule > best) over all pairs of runs with "
    "a 95% bootstrap CI (seeds resampled together)",
    "time_to_target": "Time to each dev-accuracy target: runs that reached it and the "
    "Kaplan-Meier median (95% CI) in steps, epochs and training seconds; n.r.: not reached "
    "(inf in the CSV)",
    "ranks": "Rank of each schedule on mean test accuracy per task (1 = best) and its mean rank",
    "robustness": "LR robustness from the tune runs: the best grid lr, and the contiguous range "
    f"of grid lrs around it whose mean dev accuracy is within {100 * stats.ROBUST_POINTS:g} "
    "points of it (width = lr_to / lr_from)",
    "lr_sensitivity": "Dev accuracy at the end of the budget against lr, mean over tuning seeds",
    "reproduction": "Reproduction check: test accuracy of both result sets; agree when the 95% "
    "CIs overlap",
}


@dataclass
class Plot:
    name: str  # anchor
    caption: str
    svg: str  # base64 SVG, inlined as a data URI
    width_in: float  # shown at its drawn size (at most the page width), so fonts stay alike


def plot(name: str, caption: str, fig: Figure) -> Plot:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # no date: same input, same file
    return Plot(name, caption, base64.b64encode(buf.getvalue()).decode(), fig.get_figwidth())


def build(results: Results, other: Results | None = None, perf: pd.DataFrame | None = None) -> dict:
    """The template's context for ``results`` (a reproduction check against ``other``; the perf
    chart when ``perf``, from ``load.load_perf``, has rows)."""
    results = tables.reachable_targets(results)
    final, tune = results.final, results.tune

    def cite(name: str, frame: pd.DataFrame, runs: pd.DataFrame = final) -> Table:
        env = tables.environment(results, runs.key)
        return Table(name, TITLES[name], frame, runs.key.tolist(), env)

    progress = tqdm(total=4, desc="report", unit="part", disable=None)
    acc = cite("accuracy", tables.accuracy(final))
    paired = cite("paired", tables.paired(final))
    ttt = cite("time_to_target", tables.time_to_target(results))
    ranks = cite("ranks", tables.ranks(final))
    verdicts = findings.matrix(paired.frame, ttt.frame)
    cited = [cite("recommendation", verdicts), acc, paired, ttt, ranks]
    tasks = sorted(final.task.unique())
    derived = results.derived_targets
    answer = {
        t: findings.task_sentences(t, acc.frame, paired.frame, ttt.frame, verdicts, derived)
        for t in tasks
    }
    progress.update()

    curves = results.curves[results.curves.key.isin(final.key)]
    targets = verdicts.groupby("task").target.first().to_dict()  # each task's headline target
    across = _across_tasks(final, ttt.frame)
    plots = {
        "curves": [
            plot(f"curves-{t}", f"{t}: dev accuracy during training", figures.dev_curves(curves, t))
            for t in tasks
        ],
        "km": [
            plot(
                "km",
                "Time to each task's headline target: the fraction of runs at or above it by "
                "epoch (Kaplan-Meier, 95% band), for the six schedules with the smallest "
                "median; all of them are in the time-to-target table",
                figures.km_curves(final, ttt.frame, targets),
            )
        ],
        "profiles": [
            plot("profiles", across["caption"], figures.performance_profiles(across["ratios"]))
        ],
        "ranks": [
            plot("rank-heatmap", "Ranks on mean test accuracy", figures.rank_heatmap(ranks.frame))
        ],
    }
    progress.update()
    plots["gallery"] = [
        plot(
            "gallery",
            "Every schedule at its defaults (lr 0.1, 10 epochs of 100 "
            "steps); momentum, where cycled, dashed",
            figures.gallery(),
        )
    ]
    sensitivity = reproduction = None
    if len(tune):
        sens = tables.sensitivity(tune)
        sensitivity = cite("robustness", stats.robustness(sens), tune)
        cited += [sensitivity, cite("lr_sensitivity", sens, tune)]
        plots["sensitivity"] = [
            plot(
                "sensitivity",
                "Dev accuracy against lr (tune runs), in points below the schedule's best there",
                figures.lr_sensitivity(sens),
            )
        ]
    if perf is not None and len(perf):
        caption = (
            "Training throughput by engine (results/perf/): "
            + "; ".join(f"{d}, {t}, {s} steps" for d, t, s in
                        perf[["device", "task", "steps"]].drop_duplicates().itertuples(index=False))
        )  # fmt: skip
        plots["perf"] = [plot("perf", caption, figures.perf_chart(perf))]
    progress.update()
    if other is not None:
        check = findings.reproduction(acc.frame, tables.accuracy(other.final))
        both = pd.concat([final, other.final])
        reproduction = Table(
            "reproduction",
            f"{TITLES['reproduction']} ({other.folder})",
            check,
            both.key.tolist(),
            tables.environment(results, final.key)
            + f"; other: {tables.environment(other, other.final.key)}",
        )
        cited.append(reproduction)
    progress.update()
    progress.close()
    return {
        "meta": _meta(results, final, acc.environment),
        "answer": answer,
        "matrix": _matrix_rows(verdicts),
        "guidance": findings.guidance(verdicts),
        "tables": {t.name: t for t in cited},
        "plots": plots,
        "friedman": across["friedman"],
        "sensitivity": sensitivity,
        "reproduction": reproduction,
        "single_seed": int(acc.frame.n.max()) < 2,
        "constants": {
            "alpha": stats.ALPHA,
            "level": f"{100 * stats.LEVEL:g}%",
            "resamples": f"{stats.BOOTSTRAP_SAMPLES:,}",
            "robust_points": f"{100 * stats.ROBUST_POINTS:g}",
            "reach": f"{100 * tables.REACH_QUANTILE:g}th percentile",
        },
        "provenance": _provenance(results),
        "diverged": results.runs[results.runs.status == "diverged"],
        "results": results,
    }


def _across_tasks(final: pd.DataFrame, ttt: pd.DataFrame) -> dict:
    """Performance-profile ratios (problems: task x target for time, task for error) and the
    Friedman test on mean test accuracy with tasks as blocks."""
    time = ttt.pivot_table(index=["task", "target"], columns="schedule", values="epoch_median")
    time = time[np.isfinite(time).any(axis=1)]  # a target no schedule reached compares nothing
    scores = tables.scores(final)
    error = 1 - scores
    ratios = {
        "time to target (KM median epochs)": stats.profile_ratios(time),
        "final test error (mean)": stats.profile_ratios(error),
    }
    caption = (
        f"Performance profiles over {len(time)} task x target problems that some schedule "
        f"reached (time) and "
        f"{len(error)} tasks (error); a schedule that never reached a target counts as "
        "infinitely slow there"
    )
    return {
        "ratios": ratios,
        "caption": caption,
        "friedman": stats.friedman(scores),
    }


def _matrix_rows(verdicts: pd.DataFrame) -> dict:
    """The matrix for the template: tasks (with their headline targets) and one row per schedule."""
    heads = list(verdicts.drop_duplicates("task")[["task", "target"]].itertuples(index=False))
    cells = verdicts.set_index(["schedule", "task"])[["accuracy", "speed"]]
    rows = [
        {
            "schedule": s,
            "cells": [
                cells.loc[(s, h.task)].tolist() if (s, h.task) in cells.index else ["", ""]
                for h in heads
            ],
        }
        for s in sorted(verdicts.schedule.unique())
    ]
    return {"tasks": heads, "rows": rows}


def _meta(results: Results, final: pd.DataFrame, env: str) -> dict:
    sweep = results.sweep
    commits = sorted(results.provenance.git_commit.dropna().unique())
    return {
        "sweep": sweep.get("name", results.folder.name),
        "description": sweep.get("description", ""),
        "folder": _shown(results.folder),
        "n_final": len(final),
        "n_tune": len(results.tune),
        "tasks": sorted(final.task.unique()),
        "schedules": sorted(final.schedule.unique()),
        "seeds": sorted(final.seed.unique().tolist()),
        "environment": env,
        "commit": commits[0] if len(commits) == 1 else ", ".join(commits) or "unknown",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
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
