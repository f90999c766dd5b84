"""Optimizers: ``OPTIMIZERS`` maps a name to its settings, its family and how it is built.

An entry is one function registered with ``@optimizer(name, family=..., cycles=...)``. Its
keyword-only parameters, with their annotations and defaults, are the settings users may
change (``--set optimizer.KEY=VALUE``; types checked by ``params``); it checks their values
and returns a ``Recipe``: the ``torch.optim`` class (``module:Class``) and its keyword
arguments, and the same for its ``schedulefree`` twin, used under the ``schedule_free``
schedule. ``cycles`` names what a schedule's momentum sets: ``"momentum"`` (SGD) or
``"beta1"`` (Adam), as PyTorch's OneCycleLR and CyclicLR do; ``family`` is how the report
groups tasks. The batched engine runs a class for which ``benchmark.engines.vectorised.STEPS`` has a
vectorised step; the single engine runs any.

No torch at import: settings are checked without it, so bad input is answered at once.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from benchmark.catalogue.errors import InputError, unknown_name
from benchmark.catalogue.params import check, keyword_params, load_named, need

# SGDScheduleFree needs momentum in (0, 1): it is the method's interpolation weight beta, and
# 0.9 is its authors' default (Defazio et al. 2024). Used when a task's SGD has no momentum.
SCHEDULE_FREE_MOMENTUM = 0.9
CYCLES = ("momentum", "beta1")


class Recipe(NamedTuple):
    """How to build an optimizer: ``module:Class`` and keyword arguments besides ``lr``."""

    cls: str
    kwargs: dict
    schedule_free: tuple[str, dict] | None = None  # the twin's class and arguments

    def pick(self, schedule_free: bool) -> tuple[str, dict]:
        return self.schedule_free if schedule_free else (self.cls, self.kwargs)


@dataclass(frozen=True)
class Optimizer:
    name: str
    family: str  # "SGD" or "Adam": the report groups tasks by it
    cycles: str  # what a cycled momentum sets: "momentum" or "beta1"
    recipe: Callable[..., Recipe] = field(repr=False)

    @property
    def params(self):
        return keyword_params(self.recipe)

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}

    @property
    def summary(self) -> str:
        return (self.recipe.__doc__ or "").strip().splitlines()[0]


OPTIMIZERS: dict[str, Optimizer] = {}


def optimizer(name: str, *, family: str, cycles: str):
    """Register ``recipe(*, **settings) -> Recipe`` as the optimizer ``name``."""
    if cycles not in CYCLES:
        raise ValueError(f"optimizer {name}: cycles must be one of {CYCLES}")

    def register(recipe):
        OPTIMIZERS[name] = Optimizer(name, family, cycles, recipe)
        return recipe

    return register


def get_optimizer(name: str) -> Optimizer:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name]


def check_settings(name: str, settings: Mapping) -> dict[str, Any]:
    """The optimizer's full settings: its defaults updated by ``settings``, types and values
    checked (before any run starts, without torch)."""
    entry = get_optimizer(name)
    try:
        full = entry.defaults | check(entry.params, settings)
        entry.recipe(**full)
    except InputError as err:
        raise InputError(f"optimizer {name}: {err}") from None
    return full


def resolve(name: str, settings: Mapping, schedule_free: bool = False) -> tuple[str, dict]:
    """The class (``module:Class``) and keyword arguments that ``name`` with ``settings``
    builds; under ``schedule_free`` its twin's. An optimizer without one is an error."""
    recipe = get_optimizer(name).recipe(**check_settings(name, settings))
    if schedule_free and recipe.schedule_free is None:
        raise InputError(f"optimizer {name} has no schedule-free twin; use another schedule")
    return recipe.pick(schedule_free)


def build(
    name: str,
    params: Iterable,
    lr: float,
    settings: Mapping,
    *,
    schedule_free: bool = False,
    warmup_steps: int = 0,
):
    """The torch optimizer ``name`` over ``params`` (under ``schedule_free`` its twin, which
    warms up over ``warmup_steps`` by itself)."""
    cls, kwargs = resolve(name, settings, schedule_free)
    extra = {"warmup_steps": warmup_steps} if schedule_free else {}
    return load_named(cls)(params, lr=lr, **kwargs, **extra)


def set_hyper(opt, cycles: str, lr: float, momentum: float | None) -> None:
    """Set every group's lr, and what a cycled ``momentum`` sets (``cycles``) unless None."""
    for group in opt.param_groups:
        group["lr"] = lr
        if momentum is None:
            continue
        if cycles == "beta1":
            group["betas"] = (momentum, group["betas"][1])
        else:
            group["momentum"] = momentum


def base_momentum(name: str, kwargs: Mapping) -> float:
    """The momentum (SGD) or beta1 (Adam) of ``resolve``'s keyword arguments."""
    return kwargs["momentum"] if get_optimizer(name).cycles == "momentum" else kwargs["betas"][0]


def settings_record(name: str, opt) -> dict[str, Any]:
    """The record's ``optimizer``: name, family, the class built and its constructor
    settings (as JSON values)."""
    import inspect

    accepted = inspect.signature(type(opt)).parameters
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in opt.defaults.items()}
    return {
        "name": name,
        "family": get_optimizer(name).family,
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


@optimizer("sgd", family="SGD", cycles="momentum")
def sgd(*, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> Recipe:
    """torch.optim.SGD (heavy-ball or Nesterov momentum, L2 weight decay)."""
    need(0 <= momentum < 1, "momentum must be in [0, 1)", momentum)
    need(weight_decay >= 0, "weight_decay must be >= 0", weight_decay)
    need(not nesterov or momentum > 0, "nesterov needs momentum > 0", momentum)
    return Recipe(
        "torch.optim:SGD",
        {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay},
        (
            "schedulefree:SGDScheduleFree",
            {"momentum": momentum or SCHEDULE_FREE_MOMENTUM, "weight_decay": weight_decay},
        ),
    )


def _adam_family(cls: str, doc: str):
    def recipe(
        *,
        betas: list[float] = [0.9, 0.999],  # noqa: B006  read only; a list as TOML gives it
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> Recipe:
        need(eps > 0, "eps must be > 0", eps)
        need(weight_decay >= 0, "weight_decay must be >= 0", weight_decay)
        kwargs = {"betas": _betas(betas), "eps": eps, "weight_decay": weight_decay}
        return Recipe(f"torch.optim:{cls}", kwargs, ("schedulefree:AdamWScheduleFree", kwargs))

    recipe.__doc__ = doc
    return recipe


optimizer("adam", family="Adam", cycles="beta1")(
    _adam_family("Adam", "torch.optim.Adam (L2 weight decay through the gradient)")
)
optimizer("adamw", family="Adam", cycles="beta1")(
    _adam_family("AdamW", "torch.optim.AdamW (decoupled weight decay)")
)
