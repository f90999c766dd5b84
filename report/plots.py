"""The report's figures as inlined SVG: each drawn by a ``figures.py`` function from the cited
tables and the runs, with its caption. Element ids come from the figure's name and no date is
written, so the same records give the same bytes."""

import base64
import io
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from report import classification, figures, stats, tables
from report.findings import plural
from report.load import Results
from report.tables import Table


@dataclass
class Plot:
    name: str  # anchor
    caption: str
    svg: str  # base64 SVG, inlined as a data URI
    width_in: float  # shown at its drawn size (at most the page width), so fonts stay alike


def plot(name: str, caption: str, fig: Figure) -> Plot:
    buf = io.BytesIO()
    # element ids from the name, not random; text as text (searchable in the HTML and the PDF,
    # and WeasyPrint draws it ~25% faster than text drawn as glyph outlines)
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})  # no date: same input, same file
    return Plot(name, caption, base64.b64encode(buf.getvalue()).decode(), fig.get_figwidth())


def plots(results: Results, cited: dict[str, Table], order: list[str], perf) -> dict:
    """Every figure by section; ``order``: the problems (task x budget) in reading order."""
    final, speed = results.final, cited["speed"].frame
    curves = results.curves[results.curves.key.isin(final.key)]
    targets = speed.groupby("task").target.first().to_dict()  # each task's headline target
    targets = {t: targets[t] for t in order}
    shown = min(figures.KM_TOP, final.groupby("task").schedule.nunique().max())
    across = _across_tasks(final, cited["time_to_target"].frame)
    km = ("Time to each task's headline target: the fraction of runs at or above it by epoch "
          f"(Kaplan-Meier, 95% band), for the {plural(shown, 'schedule')} with the smallest "
          "restricted mean time to it; all of them are in the speed table")  # fmt: skip
    out = {
        "curves": [
            plot(f"curves-{t}", f"{t}: dev accuracy during training", figures.dev_curves(curves, t))
            for t in order
        ],
        "km": [plot("km", km, figures.km_curves(final, speed, targets))],
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
    }
    drawn = {t: classification.curves(final, results, t) for t in order}
    out["roc_pr"] = [
        plot(f"roc-pr-{t}", f"{t}: macro ROC and precision-recall curves on test of each "
             "schedule's median run by test accuracy (its seed and area in the legend)",
             figures.roc_pr_curves(c, t))
        for t, c in drawn.items() if c
    ]  # fmt: skip
    if "budgets" in cited:
        caption = ("Final test accuracy against the budget, each budget with its own tuned lr "
                   "and the same seeds: mean with its 95% t interval")  # fmt: skip
        out["budgets"] = [
            plot("budget-plot", caption, figures.accuracy_by_budget(cited["budgets"].frame))
        ]
    if "lr_sensitivity" in cited:
        out["sensitivity"] = [
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
        out["perf"] = [plot("perf", caption, figures.perf_chart(perf))]
    return out


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
