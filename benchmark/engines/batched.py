"""The batched engine: R runs of one task trained as one computation, with the single engine's
semantics (``semantics.py``) and records of exactly its form (``engine: "batched"``).

Runs form a group when they share what shapes the computation (``GROUP_FIELDS``); they differ
in schedule, lr, seed and optimizer settings. Run r's weights are row r of a flat ``[R, P]``
tensor built from the weights the single engine builds for its seed; the forward pass is the
model's stacked forward (``stacked.py``) and the update a vectorised optimizer step
(``vectorised.py``) per optimizer block whose per-run lr, momentum and settings are columns
(``group.py``: the chunk in training). Each run keeps its own data order and training subset.

Before anything touches the device the run's precision flags are set, so that the check that
the stacked forward stands in for the model (``stacked.vectorisable``, itself in strict
float32) and the chunk sizes hold for the training. A model or optimizer the engine cannot
vectorise trains its runs one at a time with the single engine: never silently. The notice
goes to ``log``, and each such record says so (``fallback``: from which engine, and why); with
``fallback="forbid"`` (a sweep file's ``fallback``) the group fails instead, naming its task
and the reason.

The runs are split into chunks that fit the device's memory (``chunk_size``); an
out-of-memory error from any of CUDA's libraries (``device.out_of_memory``) halves the chunk
and starts it again, losing nothing, after the failed chunk's tensors are released.
"""

import gc
from pathlib import Path

import torch

from benchmark.catalogue import datasets
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines import stacked, vectorised
from benchmark.engines.device import autocast, memory, out_of_memory, resolve_device
from benchmark.engines.group import GroupRun, activation_floats
from benchmark.engines.models import get_model
from benchmark.engines.registry import ENGINES, FALLBACKS, GROUP_FIELDS
from benchmark.engines.semantics import Rules, build_model
from benchmark.engines.single import train

MEMORY_SHARE = 0.5  # of the free device memory a chunk may plan to use (estimates are rough)
MAX_CHUNK = 1024  # runs per chunk at most


class FallbackForbiddenError(InputError):
    """Runs would train one at a time, and the sweep forbids it."""


def train_group(
    specs: list[RunSpec],
    splits: data.Splits | None = None,
    device: str | torch.device = "auto",
    *,
    root: Path | None = None,
    chunk: int | None = None,
    fallback: str = "allow",
    cuda_graphs: bool = False,
    log=print,
    progress: bool = False,
) -> list[dict]:
    """Train ``specs`` (one group) and return their records in the same order; runs the engine
    cannot vectorise train alone (``fallback="allow"``) or fail the group (``"forbid"``).
    ``cuda_graphs``: replay each training step from a CUDA graph (off until a GPU has
    measured it; elsewhere the same step runs uncaptured)."""
    if len({ENGINES["batched"].group_key(s) for s in specs}) > 1:
        raise ValueError(f"one group shares {', '.join(GROUP_FIELDS)}")
    if fallback not in FALLBACKS:
        raise InputError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    device = resolve_device(device) if isinstance(device, str) else device
    autocast(specs[0].precision, device)  # the run's flags, before any check or size
    task = get_task(specs[0].task)
    if splits is None:
        splits = data.load(task.dataset, root, device)
    template = build_model(task, specs[0].seed, device)
    forward = stacked.forward_for(template, get_model(task.model).stacked)
    why = stacked.vectorisable(forward, template, device, datasets.get(task.dataset).shape)
    alone = [s for s in specs if why or _step_class(s) not in vectorised.STEPS]
    records = {}
    if alone:
        reason = why or f"no vectorised step for {sorted({_step_class(s) for s in alone})}"
        what = f"{len(alone)} run(s) of {specs[0].task} ({_group_name(specs[0])})"
        if fallback == "forbid":
            raise FallbackForbiddenError(
                f"batched engine: {what} would train one at a time ({reason}); "
                'the sweep forbids it (fallback = "forbid")'
            )
        log(f"batched engine: {what} train one at a time ({reason})")
        for spec in alone:
            records[spec.key] = train(spec, splits, device) | {
                "fallback": {"from": "batched", "reason": reason}
            }
    todo = order([s for s in specs if s.key not in records])
    chunk = chunk or chunk_size(template, todo, device)
    while todo:
        part = todo[:chunk]
        try:
            records |= GroupRun(part, splits, device, forward, cuda_graphs).run(progress)
            todo = todo[len(part) :]
            continue
        except Exception as err:
            if not out_of_memory(err) or chunk == 1:
                raise
        # past the handler the traceback, and with it the chunk's tensors, are gone
        chunk //= 2
        log(f"batched engine: out of memory; {chunk} runs at a time")
        release(device)
    return [records[s.key] for s in specs]


def order(specs: list[RunSpec]) -> list[RunSpec]:
    """The runs as a chunk holds them: by optimizer class (each block a range of rows), then
    by seed (each seed's runs together: they read one batch); stable otherwise."""
    return sorted(specs, key=lambda s: (_step_class(s), s.seed))


def release(device: torch.device) -> None:
    """Give the memory of a failed chunk back (its tensors are unreachable by now)."""
    gc.collect()  # reference cycles (autograd graphs, tracebacks) that still hold tensors
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _step_class(spec: RunSpec) -> str:
    return Rules(spec, spec.budget()).optimizer[0]


def _group_name(spec: RunSpec) -> str:
    return ", ".join(f"{f} {getattr(spec, f)}" for f in GROUP_FIELDS[1:])


def chunk_size(template: torch.nn.Module, specs: list[RunSpec], device: torch.device) -> int:
    """Runs per chunk: a rough estimate of one run's bytes (weights, gradients and three
    optimizer states; activations kept for the backward pass) against half the free memory."""
    if not specs:
        return 1
    task = get_task(specs[0].task)
    forward = stacked.forward_for(template, get_model(task.model).stacked)
    saved = activation_floats(
        forward, template, datasets.get(task.dataset).shape, specs[0].batch_size
    )
    weights = sum(p.numel() for p in template.parameters())
    per_run = 4 * (5 * weights + 2 * saved)
    return max(1, min(MAX_CHUNK, len(specs), int(MEMORY_SHARE * memory(device) / per_run)))
