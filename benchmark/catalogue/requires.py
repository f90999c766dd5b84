"""The packages a plan of runs imports, checked before anything trains.

A run imports, when it trains, the modules its names point at: its optimizer's class (under
a schedule that ``replaces_optimizer``, the twin's: ``schedulefree`` for ``schedule_free``)
and its task's loss. ``check_packages`` looks each one's top-level package up without
importing it (``importlib.util.find_spec``: no torch here) and names, in one line, every
missing package, the schedules or tasks that need it and how to install it or leave them
out; a sweep, ``train``, ``perf`` and ``check`` call it before they start, so a missing
package costs a second, not a sweep's training.
"""

import importlib.util
from collections.abc import Iterable

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.schedules import get_schedule
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task


def needs(spec: RunSpec) -> dict[str, str]:
    """What ``spec`` imports when it trains: top-level package -> who needs it ("schedule X"
    for an optimizer twin its schedule brings, else "task T")."""
    twin = get_schedule(spec.schedule).replaces_optimizer is not None
    cls, _ = optim.resolve(spec.optimizer, spec.optimizer_params, twin)
    out = {_package(cls): f"schedule {spec.schedule}" if twin else f"task {spec.task}"}
    loss = get_task(spec.task).loss
    if isinstance(loss, str):  # a plugin's callable is already imported
        out.setdefault(_package(loss), f"task {spec.task}")
    return out


def missing(specs: Iterable[RunSpec]) -> dict[str, list[str]]:
    """Each package the ``specs`` import that is not installed -> who needs it (sorted)."""
    found: dict[str, set[str]] = {}
    for spec in specs:
        for package, who in needs(spec).items():
            if importlib.util.find_spec(package) is None:
                found.setdefault(package, set()).add(who)
    return {package: sorted(who) for package, who in sorted(found.items())}


def check_packages(specs: Iterable[RunSpec]) -> None:
    """Raise one ``InputError`` line naming every missing package, who needs it and what to
    do, before any run starts."""
    gaps = missing(specs)
    if gaps:
        raise InputError("; ".join(
            f"package {package} is not installed and {', '.join(who)} need(s) it: pip install "
            f"{package} (the nox sessions install it from uv.lock), or leave "
            f"{'them' if len(who) > 1 else 'it'} out (a sweep: --set schedules=[...] or "
            "tasks=[...])"
            for package, who in gaps.items()
        ))  # fmt: skip


def _package(named: str) -> str:
    """The top-level package of ``module:name`` (looked up without importing it)."""
    return named.partition(":")[0].split(".")[0]
