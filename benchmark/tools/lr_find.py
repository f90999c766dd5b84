"""The LR range test (Smith 2017, as in fastai's ``lr_find``): where to centre an lr grid.

From a fresh model, the lr grows exponentially from ``start`` to ``end`` over ``steps``
updates, one training batch each. The loss is smoothed with a bias-corrected exponential
moving average (weight 0.98 on the past); the test stops when the smoothed loss exceeds
``stop_factor`` times its best, or is not finite. The suggestion is the lr where the smoothed
loss falls fastest against log(lr). The test builds its own model and optimizer and uses its
own generators, so it leaves no state behind: nothing is written unless a plot is asked for.
"""

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch.nn.functional import cross_entropy

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.params import need
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.semantics import DataOrder, batch_rows, build_model, run_examples

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
    """Run the range test for ``spec``'s task, optimizer settings, batch size and seed."""
    check_range(start, end, steps)
    examples = run_examples(spec, splits)
    model = build_model(get_task(spec.task).model, spec.seed, device)
    opt = optim.build(spec.optimizer, model.parameters(), start, spec.optimizer_params)
    cycles = optim.get_optimizer(spec.optimizer).cycles
    budget, order = spec.budget(), DataOrder(spec.seed, examples.n)  # the runs' data order
    lrs, losses, smoothed, average = [], [], [], 0.0
    for k, lr in enumerate(start * (end / start) ** (np.arange(steps) / (steps - 1))):
        if k % budget.steps_per_epoch == 0:
            epoch = order.epoch().to(device)
        rows = batch_rows(epoch, k, budget, spec.batch_size)
        optim.set_hyper(opt, cycles, float(lr), None)
        loss = cross_entropy(model(examples.train_x[rows]), examples.train_y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        lrs.append(float(lr))
        losses.append(value)
        smoothed.append(average / (1 - SMOOTHING ** (k + 1)))
        if not np.isfinite(smoothed[-1]) or smoothed[-1] > stop_factor * min(smoothed):
            break
    return RangeTest(np.array(lrs), np.array(losses), np.array(smoothed), _steepest(lrs, smoothed))


def _steepest(lrs: list[float], smoothed: list[float]) -> float:
    """The lr where d(smoothed loss) / d(log lr) is most negative (finite points only)."""
    lrs, smoothed = np.asarray(lrs), np.asarray(smoothed)
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    if len(lrs) < 3:
        raise InputError("lr-find: fewer than 3 steps had a finite loss; try a smaller --start")
    slope = np.gradient(smoothed, np.log(lrs))
    return float(lrs[int(np.argmin(slope))])
