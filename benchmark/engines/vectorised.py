"""Optimizer steps for R runs at once: each run is one row of a ``[R, P]`` parameter tensor.

torch.optim takes one lr per parameter group, not one per run, so the batched engine updates
with these instead: each class repeats its torch.optim (or schedulefree) counterpart's
arithmetic, operation for operation (tests/test_vectorised.py holds them to it), with every
setting and every per-step value a column ``[R, 1]``; a model's parameters are a list of such
tensors ``[R, n]`` (run r in row r), each with its own state (the batched engine passes one:
its block's rows of the flat weights, so a step is a few whole-block operations). The state
is updated in place, never replaced: a captured CUDA graph replays on the same memory.

A step has two parts. ``coefficients(lr, momentum)`` turns the runs' lr and momentum (or
beta1) of every update, ``[T, R]`` float64 arrays, into the per-step numbers its counterpart
computes in Python floats (bias corrections, schedule-free weights, ...), on the host; the
engine keeps them on the device and calls it again when a stateful schedule's controller cuts
an lr.
``step(ps, gs, c)`` then updates the parameters in place, with ``c`` the coefficients of this
update.
Schedule-free steps also swap the averaged weights in for evaluation (``eval``, ``train``).
"""

import numpy as np
import torch
from torch import Tensor

STEPS: dict[str, type["Step"]] = {}  # torch class path (optim.Recipe.cls) -> vectorised step


def vectorises(cls_path: str):
    """Register a ``Step`` as the vectorised form of the optimizer class ``module:Class``."""

    def register(step: type["Step"]) -> type["Step"]:
        STEPS[cls_path] = step
        return step

    return register


class Step:
    """A vectorised optimizer step; ``kwargs`` are each run's constructor arguments."""

    def __init__(self, kwargs: list[dict], params: list[Tensor]):
        self.kwargs, self.device = kwargs, params[0].device

    def column(self, values) -> Tensor:
        """One value per run as a float32 ``[R, 1]`` column on the device."""
        return torch.tensor(values, dtype=torch.float32, device=self.device)[:, None]

    def setting(self, key: str, index: int | None = None) -> np.ndarray:
        """Each run's setting ``key`` (element ``index`` of a tuple) as a float64 array."""
        values = [k[key] if index is None else k[key][index] for k in self.kwargs]
        return np.asarray(values, np.float64)

    def coefficients(self, lr: np.ndarray, momentum: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def step(self, ps: list[Tensor], gs: list[Tensor], c: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def eval(self, ps: list[Tensor]) -> None:
        """Before an evaluation: the weights to evaluate into ``ps``."""

    def train(self, ps: list[Tensor]) -> None:
        """After an evaluation: the training weights back into ``ps``."""


@vectorises("torch.optim:SGD")
class SGD(Step):
    """torch.optim.SGD (single-tensor form): L2 decay, heavy-ball or Nesterov momentum. A run
    whose momentum is 0 at an update skips its buffer there; the first nonzero one starts it."""

    def __init__(self, kwargs: list[dict], params: list[Tensor]):
        super().__init__(kwargs, params)
        decay = self.setting("weight_decay")
        self.decay = self.column(decay) if decay.any() else None
        nesterov = torch.tensor([k["nesterov"] for k in kwargs], device=self.device)[:, None]
        self.nesterov = nesterov if nesterov.any() else None
        self.bufs = [torch.zeros_like(p) for p in params]

    def coefficients(self, lr, momentum):
        used = momentum != 0
        started = np.cumsum(used, axis=0) - used > 0  # a nonzero momentum before this update
        self.mode = "none" if not used.any() else "all" if used.all() else "some"
        return {"lr": lr, "m": momentum, "m_buf": np.where(started, momentum, 0.0), "used": used}

    def step(self, ps, gs, c):
        for i, (p, g) in enumerate(zip(ps, gs, strict=True)):
            if self.decay is not None:
                g = torch.addcmul(g, p, self.decay)
            if self.mode != "none":
                buf = d = self.bufs[i]
                if self.mode == "some":  # buf m + g where used (g when it starts), else kept
                    torch.where(c["used"], torch.addcmul(g, buf, c["m_buf"]), buf, out=buf)
                else:
                    torch.addcmul(g, buf, c["m_buf"], out=buf)
                if self.nesterov is not None:
                    d = torch.where(self.nesterov, torch.addcmul(g, buf, c["m"]), d)
                g = d if self.mode == "all" else torch.where(c["used"], d, g)
            p.addcmul_(g, c["lr"], value=-1)


class _Adam(Step):
    decoupled = False

    def __init__(self, kwargs: list[dict], params: list[Tensor]):
        super().__init__(kwargs, params)
        self.beta2 = self.setting("betas", 1)
        self.b2, self.one_minus_b2 = self.column(self.beta2), self.column(1 - self.beta2)
        self.eps = self.column(self.setting("eps"))
        self.decay = self.setting("weight_decay")
        self.l2 = self.column(self.decay) if self.decay.any() and not self.decoupled else None
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def coefficients(self, lr, momentum):
        t = np.arange(1, len(lr) + 1)[:, None]  # torch's step count, from 1
        out = {
            "one_minus_beta1": 1 - momentum,
            "neg_step_size": -(lr / (1 - momentum**t)),
            "bc2_sqrt": (1 - self.beta2**t) ** 0.5,
        }
        if self.decoupled:
            out["keep"] = 1 - lr * self.decay  # AdamW: param *= 1 - lr * weight_decay
        return out

    def step(self, ps, gs, c):
        for p, g, m, v in zip(ps, gs, self.m, self.v, strict=True):
            if self.decoupled and self.decay.any():
                p.mul_(c["keep"])
            elif self.l2 is not None:
                g = torch.addcmul(g, p, self.l2)
            m.lerp_(g, c["one_minus_beta1"])
            v.mul_(self.b2).addcmul_(g * self.one_minus_b2, g)
            denom = (v.sqrt() / c["bc2_sqrt"]).add_(self.eps)
            p.add_(m * c["neg_step_size"] / denom)


@vectorises("torch.optim:Adam")
class Adam(_Adam):
    """torch.optim.Adam (single-tensor form), L2 weight decay through the gradient."""


@vectorises("torch.optim:AdamW")
class AdamW(_Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay."""

    decoupled = True


class _ScheduleFree(Step):
    """schedulefree's optimizers (r = 0): ``p`` holds y in training and x in evaluation;
    z is the base sequence. The lr given is the scheduled one (warmup included)."""

    def __init__(self, kwargs: list[dict], params: list[Tensor]):
        super().__init__(kwargs, params)
        self.power = 2.0  # schedulefree's default weight_lr_power: weights lr_max ** 2
        decay = self.setting("weight_decay")
        self.decay = self.column(decay) if decay.any() else None
        self.beta = self.setting(*self.beta_key)
        self.to_x, self.to_y = self.column(1 - 1 / self.beta), self.column(1 - self.beta)
        self.z = [p.detach().clone() for p in params]

    def coefficients(self, lr, momentum):
        lr_max = np.maximum.accumulate(lr, axis=0)
        weight = lr_max**self.power
        weight_sum = np.cumsum(weight, axis=0)  # left to right, as the package's running sum
        ckp1 = np.divide(weight, weight_sum, out=np.zeros_like(lr), where=weight_sum != 0)
        return {"lr": lr, "ckp1": ckp1, "y_step": lr * (self.beta * (1 - ckp1) - 1)}

    def update(self, p, g, z, c):
        if self.decay is not None:
            g = torch.addcmul(g, p, self.decay)
        p.lerp_(z, c["ckp1"])
        p.addcmul_(g, c["y_step"])
        z.addcmul_(g, c["lr"], value=-1)

    def eval(self, ps):
        for p, z in zip(ps, self.z, strict=True):
            p.lerp_(z, self.to_x)

    def train(self, ps):
        for p, z in zip(ps, self.z, strict=True):
            p.lerp_(z, self.to_y)


@vectorises("schedulefree:SGDScheduleFree")
class SGDScheduleFree(_ScheduleFree):
    beta_key = ("momentum",)

    def step(self, ps, gs, c):
        for p, g, z in zip(ps, gs, self.z, strict=True):
            self.update(p, g, z, c)


@vectorises("schedulefree:AdamWScheduleFree")
class AdamWScheduleFree(_ScheduleFree):
    beta_key = ("betas", 0)

    def __init__(self, kwargs: list[dict], params: list[Tensor]):
        super().__init__(kwargs, params)
        self.beta2 = self.setting("betas", 1)
        self.b2, self.one_minus_b2 = self.column(self.beta2), self.column(1 - self.beta2)
        self.eps = self.column(self.setting("eps"))
        self.v = [torch.zeros_like(p) for p in params]

    def coefficients(self, lr, momentum):
        t = np.arange(1, len(lr) + 1)[:, None]
        return super().coefficients(lr, momentum) | {"bc2": 1 - self.beta2**t}

    def step(self, ps, gs, c):
        for p, g, z, v in zip(ps, gs, self.z, self.v, strict=True):
            v.mul_(self.b2).addcmul_(g * self.one_minus_b2, g)
            denom = v.div(c["bc2"]).sqrt_().add_(self.eps)
            self.update(p, g / denom, z, c)
