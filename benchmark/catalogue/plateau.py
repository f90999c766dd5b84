"""``Plateau``: ReduceLROnPlateau without an optimizer, the one stateful schedule.

The engine calls ``step(dev_loss)`` after each evaluation and uses the lr it returns from the
next optimizer step on. The decisions are those of ``torch.optim.lr_scheduler.ReduceLROnPlateau``
for one parameter group (tests/test_schedules.py compares them), in plain Python: no torch here.
The ``plateau`` schedule (in ``schedules_pytorch``) builds it; the engine gets it from
``controller``.
"""

import math

from benchmark.catalogue.params import need


class Plateau:
    """Multiply the lr by ``factor`` after more than ``patience`` evaluations without improvement.

    An evaluation improves when its metric beats the best so far by ``threshold`` (relative or
    absolute). After a cut, ``cooldown`` evaluations pass before bad ones count again; the lr
    never goes below ``min_lr``, and a cut smaller than ``eps`` is skipped.
    """

    def __init__(
        self,
        lr: float,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ):
        need(mode in ("min", "max"), 'mode must be "min" or "max"', mode)
        need(
            threshold_mode in ("rel", "abs"),
            'threshold_mode must be "rel" or "abs"',
            threshold_mode,
        )
        need(0 < factor < 1, "factor must be in (0, 1)", factor)
        need(patience >= 0, "patience must be >= 0", patience)
        need(cooldown >= 0, "cooldown must be >= 0", cooldown)
        for name, value in [("threshold", threshold), ("min_lr", min_lr), ("eps", eps)]:
            need(value >= 0, f"{name} must be >= 0", value)
        self.lr = float(lr)
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_evals = 0  # evaluations since the last improvement
        self.cooldown_left = 0  # evaluations before bad ones count again

    @property
    def metric(self) -> str:
        """The curve point's field it is fed: the dev loss (mode min) or accuracy (max)."""
        return "val_loss" if self.mode == "min" else "val_acc"

    def step(self, metric: float) -> float:
        """Record one evaluation's metric; return the lr for the optimizer steps that follow."""
        current = float(metric)  # NaN never improves: a diverging run counts as bad
        if self._improves(current):
            self.best, self.num_bad_evals = current, 0
        else:
            self.num_bad_evals += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad_evals = 0  # bad evaluations during the cooldown are ignored
        if self.num_bad_evals > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_left, self.num_bad_evals = self.cooldown, 0
        return self.lr

    def _improves(self, metric: float) -> bool:
        sign = 1 if self.mode == "max" else -1
        if self.threshold_mode == "rel":
            bar = self.best * (1 + sign * self.threshold)
        else:
            bar = self.best + sign * self.threshold
        return metric > bar if self.mode == "max" else metric < bar

    def state_dict(self) -> dict:
        """Everything needed to resume: settings, lr, best metric and counters (JSON-friendly)."""
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        """Resume from ``state_dict()``'s output."""
        vars(self).update(state)
