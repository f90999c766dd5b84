"""Operations per training step: the aten operators an engine dispatches for one update.

On a GPU each operator is at least one kernel launch, so a step of small models costs its
operator count times a few microseconds whatever the arithmetic: the count is the measure of
launch overhead, and the CPU counts it as well as a GPU (the same operators are dispatched).
``per_step`` trains a group twice through the engine contract (``ENGINES[name].train``), for
``steps`` and for ``2 * steps`` updates with the same evaluations, under ``torch.profiler``,
and divides the difference by ``steps``: setup, evaluation and the record cancel, so any
engine is counted the same way without knowing its insides. Counted are the outermost aten
operators (an ``aten::linear`` once, not again for the ``aten::addmm`` it calls), each
backward operator included (autograd calls them outside any aten operator).
"""

import dataclasses

from torch.profiler import ProfilerActivity, profile

from benchmark.catalogue.spec import RunSpec
from benchmark.engines.registry import ENGINES


def outermost_aten(events) -> int:
    """How many profiled events are aten operators not called by another aten operator."""

    def inside_aten(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                return True
            parent = parent.cpu_parent
        return False

    return sum(e.name.startswith("aten::") and not inside_aten(e) for e in events)


def count(engine: str, specs: list[RunSpec], splits, device) -> int:
    """Outermost aten operators of one ``ENGINES[engine].train`` call on ``specs``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ENGINES[engine].train(specs, splits, device)
    return outermost_aten(prof.events())


def per_step(engine: str, specs: list[RunSpec], splits, device, steps: int = 1) -> float:
    """Operators per update of the whole group ``specs`` (each made a one-epoch run of
    ``steps`` or ``2 * steps`` updates): the difference of the two calls over ``steps``, so
    the updates counted are ``steps + 1`` to ``2 * steps``, never the first (where optimizer
    state is made). An uncounted call first does what a process does once."""

    def of(n: int) -> list[RunSpec]:
        return [dataclasses.replace(s, train_size=n * s.batch_size) for s in specs]

    ENGINES[engine].train(of(steps), splits, device)
    few = count(engine, of(steps), splits, device)
    return (count(engine, of(2 * steps), splits, device) - few) / steps
