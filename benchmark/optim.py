"""Optimizers: ``OPTIMIZERS`` maps a name to its torch.optim builder and schedule-free twin.

An entry is a function ``build(params, lr, *, schedule_free, warmup_steps, **settings)``; its
other keyword-only parameters, with their annotations, are the settings users may change
(``--set optimizer.KEY=VALUE``) and are type-checked by ``benchmark.params``. With
``schedule_free`` it builds the ``schedulefree`` optimizer of the same family instead (SGD ->
SGDScheduleFree, Adam / AdamW -> AdamWScheduleFree), with the same settings.

``set_hyper`` is how the engine applies a schedule: the lr, and the momentum (SGD) or beta1
(Adam) when the schedule cycles it, as PyTorch's OneCycleLR and CyclicLR do.
"""

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.errors import InputError, unknown_name
from benchmark.params import check, keyword_params, need

# SGDScheduleFree needs momentum in (0, 1): it is the method's interpolation weight beta, and
# 0.9 is its authors' default (Defazio et al. 2024). Used when a task's SGD has no momentum.
SCHEDULE_FREE_MOMENTUM = 0.9
# settings the engine passes itself, never user settings
_ENGINE_ARGS = ("schedule_free", "warmup_steps")


@dataclass(frozen=True)
class Optimizer:
    name: str
    build: Callable[..., torch.optim.Optimizer]

    @property
    def params(self):
        return {k: p for k, p in keyword_params(self.build).items() if k not in _ENGINE_ARGS}

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}


OPTIMIZERS: dict[str, Optimizer] = {}


def optimizer(name: str):
    """Register ``build(params, lr, *, schedule_free, warmup_steps, **settings)`` as ``name``."""

    def register(build):
        OPTIMIZERS[name] = Optimizer(name, build)
        return build

    return register


def get_optimizer(name: str) -> Optimizer:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name]


def check_settings(name: str, settings: Mapping) -> dict[str, Any]:
    """The optimizer's full settings: its defaults updated by ``settings``, types and values
    checked (before any run starts)."""
    entry = get_optimizer(name)
    try:
        full = entry.defaults | check(entry.params, settings)
        probe = torch.zeros(1, requires_grad=True)  # building one checks the values too
        entry.build([probe], 1.0, schedule_free=False, warmup_steps=0, **full)
    except InputError as err:
        raise InputError(f"optimizer {name}: {err}") from None
    return full


def build(
    name: str,
    params: Iterable[torch.Tensor],
    lr: float,
    settings: Mapping,
    *,
    schedule_free: bool = False,
    warmup_steps: int = 0,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params`` with ``settings`` (checked, defaults filled)."""
    full = check_settings(name, settings)
    return get_optimizer(name).build(
        params, lr, schedule_free=schedule_free, warmup_steps=warmup_steps, **full
    )


def set_hyper(opt: torch.optim.Optimizer, lr: float, momentum: float | None) -> None:
    """Set every group's lr, and its momentum (SGD) or beta1 (Adam) unless ``momentum`` is None."""
    for group in opt.param_groups:
        group["lr"] = lr
        if momentum is None:
            continue
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        else:
            group["momentum"] = momentum


def describe(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's class and constructor settings as JSON values, for the run record."""
    accepted = inspect.signature(type(opt)).parameters
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in opt.defaults.items()}
    return {
        "class": type(opt).__name__,
        "settings": {k: settings[k] for k in settings if k in accepted},
    }


def _betas(betas: list[float]) -> tuple[float, float]:
    need(
        len(betas) == 2 and all(0 <= b < 1 for b in betas),
        "betas must be [b1, b2] in [0, 1)",
        betas,
    )
    return betas[0], betas[1]


@optimizer("sgd")
def sgd(
    params,
    lr,
    *,
    schedule_free: bool,
    warmup_steps: int,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
):
    """torch.optim.SGD (heavy-ball or Nesterov momentum, L2 weight decay)."""
    need(0 <= momentum < 1, "momentum must be in [0, 1)", momentum)
    need(weight_decay >= 0, "weight_decay must be >= 0", weight_decay)
    need(not nesterov or momentum > 0, "nesterov needs momentum > 0", momentum)
    if schedule_free:
        import schedulefree

        beta = momentum or SCHEDULE_FREE_MOMENTUM
        return schedulefree.SGDScheduleFree(
            params, lr=lr, momentum=beta, weight_decay=weight_decay, warmup_steps=warmup_steps
        )
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


def _adam_family(cls: type[torch.optim.Optimizer]):
    def build(
        params,
        lr,
        *,
        schedule_free: bool,
        warmup_steps: int,
        betas: list[float] = [0.9, 0.999],  # noqa: B006  read only; a list as TOML gives it
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        need(eps > 0, "eps must be > 0", eps)
        need(weight_decay >= 0, "weight_decay must be >= 0", weight_decay)
        if schedule_free:
            import schedulefree

            return schedulefree.AdamWScheduleFree(
                params,
                lr=lr,
                betas=_betas(betas),
                eps=eps,
                weight_decay=weight_decay,
                warmup_steps=warmup_steps,
            )
        return cls(params, lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay)

    build.__doc__ = f"torch.optim.{cls.__name__}"
    return build


optimizer("adam")(_adam_family(torch.optim.Adam))  # L2 weight decay through the gradient
optimizer("adamw")(_adam_family(torch.optim.AdamW))  # decoupled weight decay
