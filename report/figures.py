"""The report's figures: one function each, tidy DataFrame in, matplotlib Figure out.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no display needed).
Schedules keep one colour everywhere (``colours``); intervals are 95%.
"""

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from benchmark.gallery import gallery_figure
from report import stats
from report.tables import censored_times


def gallery() -> Figure:
    """Every registered schedule's lr against epochs at its defaults (``benchmark.gallery``)."""
    return gallery_figure(columns=5)


def colours(schedules) -> dict:
    palette = colormaps["tab20"].colors
    return {s: palette[i % len(palette)] for i, s in enumerate(sorted(schedules))}


def _grid(n: int, columns: int, width: float = 2.3, height: float = 1.7) -> tuple[Figure, list]:
    rows = -(-n // columns)
    fig = Figure(figsize=(width * columns, height * rows + 0.4), layout="constrained")
    axes = list(fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def dev_curves(curves: pd.DataFrame, task: str, columns: int = 5) -> Figure:
    """Dev accuracy against epochs for each schedule of one task: mean over seeds with its CI
    band; the schedule with the best final mean is drawn grey in every panel for reference."""
    rows = curves[curves.task == task]
    by = rows.groupby(["schedule", "epoch"]).val_acc
    mean = by.mean().unstack(0)
    best = mean.ffill().iloc[-1].idxmax()
    fig, axes = _grid(mean.shape[1], columns)
    col = colours(mean.columns)
    for ax, schedule in zip(axes, mean.columns, strict=True):
        bands = by.apply(stats.bootstrap_ci).loc[schedule]
        lo, hi = zip(*bands, strict=True)
        ax.plot(mean.index, mean[best], color="0.6", lw=1, ls="--")
        ax.fill_between(bands.index, lo, hi, color=col[schedule], alpha=0.3, lw=0)
        ax.plot(mean.index, mean[schedule], color=col[schedule], lw=1.5)
        ax.set_title(schedule, fontsize=9)
        ax.grid(alpha=0.3)
    top = rows.val_acc.max()
    axes[0].set_ylim(max(rows.val_acc.quantile(0.1), top - 0.15), top + 0.005)
    n = rows.groupby("schedule").seed.nunique().min()
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("dev accuracy", fontsize=9)
    fig.suptitle(
        f"{task}: dev accuracy, mean of n = {n} seeds with 95% CI "
        f"(dashed: {best}, the best final mean)",
        fontsize=10,
    )
    return fig


def km_curves(
    runs: pd.DataFrame, ttt: pd.DataFrame, targets: dict[str, float], top: int = 6, columns: int = 2
) -> Figure:
    """Kaplan-Meier estimate of the fraction of runs that reached each task's target by each
    epoch, one panel per task, for the ``top`` schedules with the smallest median (all of them
    are in the time-to-target table); shaded: the 95% band."""
    rows = -(-len(targets) // columns)
    fig = Figure(figsize=(5 * min(columns, len(targets)), 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, min(columns, len(targets)), squeeze=False).ravel()
    col = colours(ttt.schedule.unique())
    for ax, (task, target) in zip(axes, targets.items(), strict=False):
        here = ttt[(ttt.task == task) & (ttt.target == target)]
        chosen = here.sort_values(["epoch_median", "frac_reached"], ascending=[True, False])
        for schedule in chosen.schedule.head(top):
            g = runs[(runs.task == task) & (runs.schedule == schedule)]
            km = stats.kaplan_meier(*censored_times(g, f"{target:g}", "epoch")).to_dict("series")
            surv = np.r_[1.0, km["survival"]]
            x, y = np.r_[0.0, km["time"], g.epochs.max()], 1 - np.r_[surv, surv[-1]]
            ax.step(x, y, where="post", color=col[schedule], label=f"{schedule} (n = {len(g)})")
            if len(km["time"]):
                ax.fill_between(
                    km["time"].to_numpy(),
                    1 - km["hi"].to_numpy(),
                    1 - km["lo"].to_numpy(),
                    step="post",
                    color=col[schedule],
                    alpha=0.12,
                )
        ax.set(xlabel="epoch", ylabel="fraction of runs", ylim=(-0.02, 1.02))
        ax.set_title(f"{task}: dev accuracy >= {target:g}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[len(targets) :]:
        ax.set_visible(False)
    return fig


def performance_profiles(ratios: dict[str, pd.DataFrame]) -> Figure:
    """Dolan-More profiles, one panel per measure: the fraction of problems on which each
    schedule is within a factor tau of the best schedule on that problem."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, len(ratios), squeeze=False).ravel()
    for ax, (measure, r) in zip(axes, ratios.items(), strict=True):
        finite = r.to_numpy()[np.isfinite(r.to_numpy())]
        tau_max = max(2.0, float(finite.max()) * 1.05 if finite.size else 2.0)
        taus = np.geomspace(1, tau_max, 200)
        profile = stats.performance_profile(r, taus)
        col = colours(r.columns)
        for s in profile:
            ax.step(taus, profile[s], where="post", color=col[s], label=s, lw=1.3)
        ax.set(
            xscale="log",
            xlabel="tau (ratio to the best, log scale)",
            ylim=(-0.02, 1.02),
            title=f"{measure} ({len(r)} problems)",
        )
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of problems within tau")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def lr_sensitivity(sens: pd.DataFrame, columns: int = 5) -> Figure:
    """Dev accuracy against lr from the tune runs, one panel per schedule and a line per task,
    in points below that task's best (so tasks share an axis); the band is 0.5 points."""
    best = sens.groupby("task").dev_acc_mean.transform("max")
    sens = sens.assign(below=100 * (sens.dev_acc_mean - best))
    schedules = sorted(sens.schedule.unique())
    fig, axes = _grid(len(schedules), columns)
    tasks = sorted(sens.task.unique())
    markers = dict(zip(tasks, "osD^vP*X", strict=False))
    for ax, schedule in zip(axes, schedules, strict=True):
        ax.axhspan(-100 * stats.ROBUST_POINTS, 0, color="0.85", lw=0)
        for task in tasks:
            g = sens[(sens.schedule == schedule) & (sens.task == task)].sort_values("lr")
            ax.plot(g.lr, g.below, marker=markers.get(task, "o"), ms=3, lw=1, label=task)
        ax.set(xscale="log", title=schedule)
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(max(-10, sens.below.min() - 0.5), 0.5)
    fig.supxlabel("peak lr (log scale)", fontsize=9)
    fig.supylabel("dev acc minus the task's best (points)", fontsize=9)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside upper center",
        ncols=min(4, len(tasks)),
        fontsize=8,
        frameon=False,
    )
    return fig


def rank_heatmap(ranks: pd.DataFrame) -> Figure:
    """Each schedule's rank on mean test accuracy per task (1 = best), annotated."""
    cols = [c for c in ranks if c.startswith("rank_")]
    values = ranks[cols].to_numpy(dtype=float)
    fig = Figure(figsize=(1.2 * len(cols) + 3.2, 0.28 * len(ranks) + 1.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(cols)), [c.removeprefix("rank_") for c in cols], fontsize=8)
    ax.set_yticks(
        range(len(ranks)),
        [f"{s} ({m:.1f})" for s, m in zip(ranks.schedule, ranks.mean_rank, strict=True)],
        fontsize=8,
    )
    middle = np.nanmean(values) if np.isfinite(values).any() else 0
    for (i, j), v in np.ndenumerate(values):
        if not math.isnan(v):
            ax.text(
                j,
                i,
                f"{v:g}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > middle else "black",
            )
    fig.colorbar(image, ax=ax, label="rank (1 = best)")
    ax.set_title("rank on mean test accuracy (schedule: mean rank)", fontsize=10)
    return fig
