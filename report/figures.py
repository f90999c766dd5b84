"""The report's figures: one function each, tidy DataFrame in, matplotlib Figure out.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no display needed).
Schedules keep one line style everywhere (``styles``); intervals are 95%.
"""

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, NullLocator

from report import stats
from report.numbers import fixed
from report.tables import censored_times

KM_TOP = 6  # schedules drawn per task in the Kaplan-Meier figure: the fastest


def styles(schedules) -> dict[str, dict]:
    """One line style per schedule, the same in every figure: ten strong colours, solid for the
    first ten names and dashed for the rest."""
    palette = colormaps["tab10"].colors
    return {s: {"color": palette[i % 10], "ls": "-" if i < 10 else "--"}
            for i, s in enumerate(sorted(schedules))}  # fmt: skip


def _same(lines: dict[str, tuple]) -> dict[str, tuple]:
    """Lines with equal data drawn once, labelled with every name ("a, b"): none hides another."""
    groups: dict[bytes, list[str]] = {}
    for name, data in lines.items():
        groups.setdefault(b"".join(np.asarray(d, float).tobytes() for d in data), []).append(name)
    return {", ".join(names): lines[names[0]] for names in groups.values()}


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
    mean, bands = by.mean().unstack(0), by.apply(lambda v: stats.mean_ci(v.to_numpy()))
    best = mean.ffill().iloc[-1].idxmax()
    fig, axes = _grid(mean.shape[1], columns)
    col = {s: style["color"] for s, style in styles(mean.columns).items()}
    for ax, schedule in zip(axes, mean.columns, strict=True):
        lo, hi = zip(*bands.loc[schedule], strict=True)
        ax.plot(mean.index, mean[best], color="0.6", lw=1, ls="--")
        ax.fill_between(bands.loc[schedule].index, lo, hi, color=col[schedule], alpha=0.3, lw=0)
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
    runs: pd.DataFrame, speed: pd.DataFrame, targets: dict[str, float], columns: int = 2
) -> Figure:
    """Kaplan-Meier estimate of the fraction of runs that reached each task's target by each
    epoch, one panel per task, for the ``KM_TOP`` schedules with the smallest restricted mean
    time to it (all of them are in the speed table); shaded: the 95% band. Equal curves are one
    labelled line."""
    rows = -(-len(targets) // columns)
    fig = Figure(figsize=(5 * min(columns, len(targets)), 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, min(columns, len(targets)), squeeze=False).ravel()
    style = styles(speed.schedule.unique())
    for ax, (task, target) in zip(axes, targets.items(), strict=False):
        here = speed[(speed.task == task) & (speed.target == target)]
        fastest = here.sort_values(["rmst", "n_reached", "schedule"],
                                   ascending=[True, False, True]).schedule.head(KM_TOP)  # fmt: skip
        lines = {}
        for schedule in fastest:
            g = runs[(runs.task == task) & (runs.schedule == schedule)]
            km = stats.kaplan_meier(*censored_times(g, f"{target:g}", "epoch"))
            lines[schedule] = (km.time, km.survival, km.lo, km.hi, [len(g), g.epochs.max()])
        for label, (time, surv, lo, hi, (n, end)) in _same(lines).items():
            colour = style[label.split(", ")[0]]
            x, y = np.r_[0.0, time, end], 1 - np.r_[1.0, surv, surv.iloc[-1] if len(surv) else 1]
            ax.step(x, y, where="post", **colour, label=f"{label} (n = {n:g} each)")
            if len(time):
                ax.fill_between(time.to_numpy(), 1 - hi.to_numpy(), 1 - lo.to_numpy(),
                                step="post", color=colour["color"], alpha=0.12)  # fmt: skip
        ax.set(xlabel="epoch", ylabel="fraction of runs", ylim=(-0.02, 1.02))
        ax.set_title(f"{task}: dev accuracy >= {target:g}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[len(targets) :]:
        ax.set_visible(False)
    return fig


def accuracy_by_budget(table: pd.DataFrame, columns: int = 2) -> Figure:
    """Mean final test accuracy against the budget for each schedule, with its 95% CI, one
    panel per task (``budgets.verdicts``' table); a budget's points are spread a little
    sideways so that no interval hides another."""
    tasks = sorted(table.task.unique())
    cols = min(columns, len(tasks))
    fig = Figure(figsize=(5 * cols, 3.4 * -(-len(tasks) // cols) + 0.6), layout="constrained")
    axes = fig.subplots(-(-len(tasks) // cols), cols, squeeze=False).ravel()
    style, handles = styles(table.schedule.unique()), {}
    for ax, task in zip(axes, tasks, strict=False):
        rows = table[table.task == task]
        names = sorted(rows.schedule.unique())
        for i, (schedule, g) in enumerate(rows.groupby("schedule")):
            g = g.sort_values("epochs")
            x = g.epochs * 1.15 ** ((i - (len(names) - 1) / 2) / max(1, len(names) - 1))
            err = [g.acc_mean - g.acc_ci_lo, g.acc_ci_hi - g.acc_mean]
            handles[schedule] = ax.errorbar(x, g.acc_mean, yerr=err, **style[schedule],
                                            marker="o", ms=3, lw=1.2, capsize=2)  # fmt: skip
        budgets = sorted(rows.epochs.unique())
        ax.set(xscale="log", xlabel="budget (epochs, log scale)", ylabel="test accuracy")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(budgets[0] / 1.3, budgets[-1] * 1.3)
        ax.set_title(f"{task}: mean test accuracy with 95% CI", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    handles = dict(sorted(handles.items()))
    fig.legend(handles.values(), handles.keys(), loc="outside lower center",
               ncols=min(5, len(handles)), fontsize=7, frameon=False)  # fmt: skip
    return fig


def performance_profiles(ratios: dict[str, pd.DataFrame]) -> Figure:
    """Dolan-More profiles, one panel per measure: the fraction of problems on which each
    schedule is within a factor tau of the best schedule on that problem. Schedules with the
    same profile are one line labelled with all their names."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    axes = fig.subplots(1, len(ratios), squeeze=False).ravel()
    for ax, (measure, r) in zip(axes, ratios.items(), strict=True):
        finite = r.to_numpy()[np.isfinite(r.to_numpy())]
        tau_max = max(2.0, float(finite.max()) * 1.05 if finite.size else 2.0)
        taus = np.geomspace(1, tau_max, 200)
        profile = stats.performance_profile(r, taus)
        style = styles(r.columns)
        for label, (values,) in _same({s: (profile[s],) for s in profile}).items():
            ax.step(taus, values, where="post", **style[label.split(", ")[0]], label=label, lw=1.3)
        problems = f"{len(r)} problem{'' if len(r) == 1 else 's'}"
        ax.set(xscale="log", xlabel="tau (ratio to the best, log scale)", ylim=(-0.02, 1.02),
               title=f"{measure} ({problems})")  # fmt: skip
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.2), ncols=2, frameon=False)
    axes[0].set_ylabel("fraction of problems within tau")
    return fig


def lr_sensitivity(sens: pd.DataFrame, columns: int = 5) -> Figure:
    """Dev accuracy against lr from the tune runs, one panel per schedule and a line per task,
    in points below the schedule's best on that task (so tasks share an axis); the shaded band
    is ``ROBUST_POINTS``, as in the robustness table."""
    best = sens.groupby(["task", "schedule"]).dev_acc_mean.transform("max")
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
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(max(-10, sens.below.min() - 0.5), 0.5)
    fig.supxlabel("peak lr (log scale)", fontsize=9)
    fig.supylabel("dev acc minus the schedule's best (points)", fontsize=9)
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
        [f"{s} ({fixed(m, 1)})" for s, m in zip(ranks.schedule, ranks.mean_rank, strict=True)],
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


def perf_chart(perf: pd.DataFrame) -> Figure:
    """Training throughput (run-samples per second) against the number of runs trained at once,
    one panel per device and task: the standard PyTorch pattern and the single engine at one
    run, the batched engine at each R; dashed: the estimated floor the device's matmul rate
    allows for the model's FLOPs."""
    panels = list(perf[["device", "task"]].drop_duplicates().itertuples(index=False))
    columns = min(3, len(panels))
    rows_ = -(-len(panels) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows_), layout="constrained")
    axes = fig.subplots(rows_, columns, squeeze=False).ravel()
    styles = {"standard": ("0.4", "s"), "single": ("tab:blue", "o"), "batched": ("tab:orange", "D")}
    for ax, (device, task) in zip(axes, panels, strict=False):
        rows = perf[(perf.device == device) & (perf.task == task)]
        for method, g in rows.groupby("method", sort=False):
            colour, marker = styles.get(method, ("tab:green", "^"))
            g = g.sort_values("runs")
            ax.plot(g.runs, g.run_samples_per_s, color=colour, marker=marker, label=method)
        floor = rows.floor_run_samples_per_s.dropna()
        if len(floor):
            ax.axhline(floor.iloc[0], color="0.3", ls="--", lw=1, label="floor (matmul rate)")
        ax.set(xscale="log", yscale="log", xlabel="runs trained at once (R)",
               ylabel="run-samples per second", title=f"{device}: {task}")  # fmt: skip
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return fig


def roc_pr_curves(curves: dict[str, dict], task: str) -> Figure:
    """One task's macro ROC and precision-recall curves on test, each schedule's median run by
    test accuracy (``classification.curves``): true-positive rate against false-positive rate,
    and interpolated precision against recall, at the records' grid points. Equal curves are
    one labelled line."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    style = styles(curves)
    panels = ((roc_ax, "roc_tpr", "roc_auc", "ROC-AUC"), (pr_ax, "pr_precision", "ap", "AP"))
    for ax, name, score, short in panels:
        lines = {s: (c["grid"], c[name]) for s, c in curves.items()}
        for label, (x, y) in _same(lines).items():
            first = curves[label.split(", ")[0]]
            area = "-" if pd.isna(first[score]) else fixed(first[score], 4)
            about = "equal curves" if ", " in label else f"seed {first['seed']}, {short} {area}"
            ax.plot(x, y, **style[label.split(", ")[0]], lw=1.2, marker=".", ms=3,
                    label=f"{label} ({about})")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right" if name == "roc_tpr" else "lower left")
    roc_ax.set(xlabel="false-positive rate", ylabel="true-positive rate (macro)",
               title="ROC", xlim=(-0.02, 1.02))  # fmt: skip
    pr_ax.set(xlabel="recall", ylabel="interpolated precision (macro)", title="precision-recall",
              xlim=(-0.02, 1.02))  # fmt: skip
    for ax in (roc_ax, pr_ax):
        ax.title.set_fontsize(9)
    fig.suptitle(f"{task}: test-set curves of each schedule's median run", fontsize=10)
    return fig
