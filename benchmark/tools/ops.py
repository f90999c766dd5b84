"""Operations per training step: the aten operators an engine dispatches for one update.

A step of small models on a GPU costs its kernel launches times a few microseconds whatever
the arithmetic, and the CPU dispatches the same operators as a GPU, so it counts them as well.
Two counts (``Counts``), each per update:

- ``ops``: the outermost aten operators ``torch.profiler`` records (an ``aten::linear``
  once, not again for the ``aten::addmm`` it calls), each backward operator included (autograd
  calls them outside any aten operator); views and reshapes count, though they launch nothing;
- ``launches``: the operators that reach the device's kernels (a ``TorchDispatchMode`` sees
  them after autograd and after composite operators are taken apart: ``linear`` is ``t`` and
  ``addmm``), less those that launch nothing: views (``OpOverload.is_view``) and ``NO_KERNEL``.
  Each is at least one kernel launch on a GPU (a cuDNN or cuBLAS call may be a few).

``per_step`` trains a group twice through the engine contract (``ENGINES[name].train``), for
``steps`` and for ``2 * steps`` updates with the same evaluations, and divides the difference
by ``steps``: setup, evaluation and the record cancel, so any engine is counted the same way
without knowing its insides.
"""

import dataclasses
from typing import NamedTuple

from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

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


# operators that are not views but launch no kernel: allocations (their memory comes from the
# caching allocator) and a reshape that only relabels a fresh tensor
NO_KERNEL = frozenset(
    {"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided",
     "_unsafe_view"}
)  # fmt: skip


class Launches(TorchDispatchMode):
    """Counts the operators dispatched inside it that launch a kernel (module docstring)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += not func.is_view and func.overloadpacket.__name__ not in NO_KERNEL
        return func(*args, **(kwargs or {}))


class Counts(NamedTuple):
    ops: float  # outermost aten operators
    launches: float  # operators that launch a kernel


def count(engine: str, specs: list[RunSpec], splits, device) -> Counts:
    """Both counts of one ``ENGINES[engine].train`` call on ``specs`` (one call each: the
    profiler and the dispatch mode each see the other's work otherwise)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ENGINES[engine].train(specs, splits, device)
    with Launches() as launches:
        ENGINES[engine].train(specs, splits, device)
    return Counts(outermost_aten(prof.events()), launches.count)


def per_step(engine: str, specs: list[RunSpec], splits, device, steps: int = 1) -> Counts:
    """Operators and launches (``Counts``) per update of the whole group ``specs`` (each made
    a one-epoch run of ``steps`` or ``2 * steps`` updates): the difference of the two calls
    over ``steps``, so the updates counted are ``steps + 1`` to ``2 * steps``, never the first
    (where optimizer state is made). An uncounted call first does what a process does once."""

    def of(n: int) -> list[RunSpec]:
        return [dataclasses.replace(s, train_size=n * s.batch_size) for s in specs]

    ENGINES[engine].train(of(steps), splits, device)
    few = count(engine, of(steps), splits, device)
    more = count(engine, of(2 * steps), splits, device)
    return Counts(*((b - a) / steps for a, b in zip(few, more, strict=True)))
