"""The LR range test (Smith 2017, as in fastai's ``lr_find``): where to centre an lr grid.

From a fresh model, the lr grows exponentially from ``start`` to ``end`` over ``steps``
updates, one training batch each. The loss is smoothed with a bias-corrected exponential
moving average (weight 0.98 on the past); the test stops when the smoothed loss exceeds
``stop_factor`` times its best, or is not finite. The suggestion is the lr where the smoothed
loss falls fastest against log(lr). The test trains a single-engine run of its own (its own
model, optimizer and generators), so it leaves no state behind: nothing is written unless a
plot is asked for.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch
from matplotlib.figure import Figure

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.params import need
from benchmark.catalogue.spec import RunSpec
from benchmark.data import datasets as data
from benchmark.engines.single import SingleRun

SMOOTHING = 0.98  # weight of the past in the loss's moving average (fastai's default)


@dataclass(frozen=True)
class RangeTest:
    lrs: np.ndarray  # the lr of each update done
    losses: np.ndarray  # its training loss
    smoothed: np.ndarray  # bias-corrected moving average of the losses
    suggestion: float  # lr at the steepest descent of the smoothed loss

    def figure(self, title: str = "") -> Figure:
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(self.lrs, self.losses, color="0.8", lw=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", label="smoothed")
        ax.axvline(self.suggestion, color="C3", ls="--", label=f"suggested {self.suggestion:.3g}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
        seen = np.concatenate([self.losses, self.smoothed])
        low = seen[np.isfinite(seen)].min()
        ax.set_ylim(0.9 * low, 1.5 * self.smoothed[0])  # the explosion at the end is off-scale
        ax.legend()
        return fig


def check_range(start: float, end: float, steps: int) -> None:
    need(0 < start < end, "need 0 < start < end", (start, end))
    need(steps >= 5, "steps must be >= 5", steps)


def lr_range_test(
    spec: RunSpec,
    splits: data.Splits,
    device: torch.device,
    *,
    start: float = 1e-6,
    end: float = 10.0,
    steps: int = 100,
    stop_factor: float = 4.0,
) -> RangeTest:
    """Run the range test for ``spec``'s task, optimizer settings, batch size, seed and
    precision. Its updates are the single engine's (``SingleRun.train_until``: the same data
    order, optimizer and precision as the runs), with the lr of update k set to
    ``start * (end / start) ** (k / (steps - 1))``."""
    check_range(start, end, steps)
    spe = spec.budget().steps_per_epoch
    spec = replace(spec, schedule="constant", schedule_params={}, lr=start,
                   epochs=-(-steps // spe), early_stopping=None)  # fmt: skip
    run = SingleRun(spec, splits, device)
    run.rules.lr[:steps] = start * (end / start) ** (np.arange(steps) / (steps - 1))
    losses, smoothed, average = [], [], 0.0
    for k in range(steps):
        value = float(run.train_until(k + 1)[0])
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        losses.append(value)
        smoothed.append(average / (1 - SMOOTHING ** (k + 1)))
        if not np.isfinite(smoothed[-1]) or smoothed[-1] > stop_factor * min(smoothed):
            break
    lrs = run.rules.lr[: len(losses)].astype(np.float64)
    return RangeTest(lrs, np.array(losses), np.array(smoothed), _steepest(lrs, smoothed))


def _steepest(lrs: list[float], smoothed: list[float]) -> float:
    """The lr where d(smoothed loss) / d(log lr) is most negative (finite points only)."""
    lrs, smoothed = np.asarray(lrs), np.asarray(smoothed)
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    if len(lrs) < 3:
        raise InputError("lr-find: fewer than 3 steps had a finite loss; try a smaller --start")
    slope = np.gradient(smoothed, np.log(lrs))
    return float(lrs[int(np.argmin(slope))])
