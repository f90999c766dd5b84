"""Show the schedules: the ``schedule --list`` text, one schedule's plot, and the gallery figure.

Figures are ``matplotlib.figure.Figure`` objects (no pyplot, no global backend state). The
report does not draw schedules (it runs no schedule code): ``schedule --gallery`` does.
"""

from typing import TYPE_CHECKING

import numpy as np

from benchmark.catalogue.schedules import SCHEDULES, Budget, Schedule, Sequences, sequences

if TYPE_CHECKING:  # matplotlib loads only for figures: `schedule --list` answers at once
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GALLERY_BUDGET = Budget.from_epochs(10, 100)  # 1,000 steps: every shape is visible


def listing() -> str:
    """Every schedule with its one-line summary and its defaults, as ``--set`` would take them."""
    user = "module:function"
    width = max(map(len, [*SCHEDULES, user])) + 2
    indent = " " * width
    lines = []
    for name, entry in SCHEDULES.items():
        lines.append(f"{name:<{width}}{entry.summary}")
        line = indent
        for item in (f"{k}={v}  " for k, v in defaults_of(entry).items()):
            if len(line + item) > 100 and line != indent:  # wrap between items, never inside
                lines, line = [*lines, line.rstrip()], indent
            line += item
        lines += [line.rstrip()] if line != indent else []
    summary = "a user schedule: f(epoch, lr) -> lr, or f(step, total_steps) -> factor"
    lines.append(f"{user:<{width}}{summary}")
    return "\n".join(lines)


def defaults_of(entry: Schedule) -> dict[str, str]:
    """Each parameter's default as a TOML literal, or <how it follows from the budget>."""
    return {
        name: f"<{entry.auto[name]}>" if p.default is None else _toml(p.default)
        for name, p in entry.params.items()
    }


def to_csv(seq: Sequences, budget: Budget) -> str:
    """``step,epoch,lr[,momentum]``, row k for the k-th update; floats round-trip exactly."""
    columns = [seq.lr] if seq.momentum is None else [seq.lr, seq.momentum]
    header = "step,epoch,lr" + (",momentum" if seq.momentum is not None else "")
    rows = [
        ",".join([str(k), str(k // budget.steps_per_epoch), *map(repr, values)])
        for k, values in enumerate(zip(*(c.tolist() for c in columns), strict=True))
    ]
    return "\n".join([header, *rows]) + "\n"


def schedule_figure(name: str, seq: Sequences, budget: Budget) -> "Figure":
    """One schedule's lr (and momentum) against epochs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    _draw(fig.subplots(), name, seq, budget)
    return fig


def gallery_figure(lr: float = 0.1, budget: Budget = GALLERY_BUDGET, columns: int = 4) -> "Figure":
    """Every registered schedule at its defaults on one budget, one panel each."""
    rows = -(-len(SCHEDULES) // columns)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * columns, 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, SCHEDULES, strict=False):
        _draw(ax, name, sequences(name, lr, budget), budget)
    for ax in axes[len(SCHEDULES) :]:
        ax.remove()
    steps = f"{budget.epochs} epochs of {budget.steps_per_epoch} steps"
    fig.suptitle(f"Every schedule at its defaults: lr = {lr}, {steps}")
    return fig


def _draw(ax: "Axes", name: str, seq: Sequences, budget: Budget) -> None:
    epochs = np.arange(len(seq.lr)) / budget.steps_per_epoch
    ax.plot(epochs, seq.lr, color="C0")
    stateful = name in SCHEDULES and SCHEDULES[name].stateful
    ax.set(title=f"{name} (before any cut)" if stateful else name, xlabel="epoch", ylabel="lr")
    if seq.momentum is not None:
        twin = ax.twinx()
        twin.plot(epochs, seq.momentum, color="C1", linestyle="--", linewidth=1)
        twin.set_ylabel("momentum (dashed)", color="C1")


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else repr(value)
