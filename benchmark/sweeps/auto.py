"""What ``--engine auto`` trains each model with on this machine, and from what evidence.

CPU ratios of the engines move 2-3x between CPU models, so ``auto`` reads the perf file of the
device it runs on (``results/perf/*.json`` whose ``device`` is this CPU's or GPU's model
name, ``benchmark/tools/perf.py``): a model trains batched when the batched engine beat the
single one on every task of that model measured there (``ratios.batched_vs_single > 1``).
A model that file did not measure, or a device without a file, follows the default rule:
batched on CUDA (a GPU is idle under one small run), on the CPU batched only for ``logreg``
(the committed AMD EPYC file: 5.1x; the GRU 1.2x, the MLPs 0.86-0.95x, the CNN 0.52x). The
sweep's driver decides
once (``choose``), says which file or rule it used, and the decision travels in
``Options.batched`` to every worker and Slurm task, so one sweep cuts its groups one way.
"""

import json
from pathlib import Path
from typing import NamedTuple

from benchmark.catalogue.tasks import TASKS
from benchmark.records.folders import PERF

DEFAULT_CPU_BATCHED = ("logreg",)  # the default rule on the CPU (no perf file for this CPU)


class Choice(NamedTuple):
    batched: tuple[str, ...]  # the models auto trains batched
    source: str  # the perf file it read, or the default rule


def choose(device: str | None, cuda: bool, folder: Path | None = None) -> Choice:
    """Which models ``auto`` trains batched on ``device`` (its model name; None: not known
    here, as for a Slurm job's GPU node), from its perf file in ``folder`` (default:
    results/perf) when there is one."""
    folder = PERF if folder is None else folder
    models = sorted({t.model for t in TASKS.values()})
    default = set(models) if cuda else set(DEFAULT_CPU_BATCHED)
    rule = "batched" if cuda else f"batched only for {', '.join(DEFAULT_CPU_BATCHED)}"
    file, faster = _measured(device, folder)
    if file is None:
        why = f"no perf file in {folder} for {device}" if device else "the device is not known here"
        return Choice(
            tuple(sorted(default)),
            f"default rule ({rule} on {'CUDA' if cuda else 'the CPU'}): {why}",
        )
    batched = {m for m in models if faster.get(m, m in default)}
    unmeasured = sorted(set(models) - set(faster))
    rest = f"; default rule for {', '.join(unmeasured)}" if unmeasured else ""
    return Choice(tuple(sorted(batched)), f"{file} ({device}){rest}")


def _measured(device: str | None, folder: Path) -> tuple[Path | None, dict[str, bool]]:
    """The perf file of ``device`` and, per model it measured, whether batched was faster on
    every task of it."""
    for path in sorted(Path(folder).glob("*.json")) if device else ():
        try:
            perf = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(perf, dict) or perf.get("device") != device:
            continue
        faster: dict[str, bool] = {}
        for task in perf.get("tasks", []):
            ratio = task.get("ratios", {}).get("batched_vs_single")
            if task.get("task") in TASKS and ratio is not None:
                model = TASKS[task["task"]].model
                faster[model] = faster.get(model, True) and ratio > 1
        return path, faster
    return None, {}


def describe(choice: Choice) -> str:
    """One line for the sweep's log: what auto chose and from what."""
    batched = ", ".join(choice.batched) or "no model"
    return f"engine auto: batched for {batched}, single for the rest; from {choice.source}"
