"""What a run is, for every engine: the rules the single and the batched engine both follow.

An engine decides only how the arithmetic is laid out; these functions decide what a run
does (DESIGN.md, "Engines share one semantics"):

- ``seeds``: a run's seed gives independent seeds for its initial weights (``build_model``,
  on the CPU, so every device starts from the same weights), its data order and its training
  subset.
- ``run_examples``: ``train_size`` training examples drawn from the run's seed
  (``train_rows``; or the first ones) and the first ``eval_size`` dev and test examples,
  standardised with the training split's mean and std: ``(x / 255 - mean) / std``.
- ``DataOrder``: each epoch a fresh permutation of the training examples from the run's data
  generator (on the CPU), cut into consecutive batches (``batch_rows``); the last batch of an
  epoch holds the remainder, so an epoch is one pass. Step k is batch ``k % steps_per_epoch``.
- ``evaluation_steps``: dev evaluation at step 0 and ``evals_per_epoch`` times per epoch.
- ``Rules``: the lr and the momentum (or beta1) of every step, a stateful schedule's
  controller fed at evaluations (its cuts written into the lr from the next update on), the
  digests of what the run applied (``digests``, by ``sequence_digest``), and the stop rules:
  divergence, found at the next evaluation (the run stops there with ``diverged_at_step``,
  the first update whose loss was not finite), and early stopping after ``early_stopping``
  evaluations without a better dev accuracy.
- ``loss_function``: the task's loss, for training and dev evaluation alike.
- ``curve_point``, ``test_metrics`` and ``run_record``: one evaluation of the curve, the test
  metrics with the per-example results and curves, and the whole record
  (``benchmark.records.record.assemble``) from the run's parts, the same for every engine;
  time to target is ``metrics.time_to_target``.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from benchmark.catalogue import datasets
from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.params import load_named
from benchmark.catalogue.schedules import Budget, controller, optimizer_kwargs, sequences
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import Task, get_task
from benchmark.data import datasets as data
from benchmark.engines.models import get_model
from benchmark.engines.provenance import provenance
from benchmark.records import record
from benchmark.records.metrics import (
    classification_metrics,
    finite,
    per_example,
    time_to_target,
)

EVAL_BATCH = 1000  # examples per forward pass when evaluating (memory only, not semantics)


def seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the initial weights, the data order and the training subset, from
    the run's seed (SeedSequence words: the first two are those of protocol 1)."""
    init, order, subset = np.random.SeedSequence(seed).generate_state(3)
    return int(init), int(order), int(subset)


def build_model(task: Task, seed: int, device: torch.device) -> nn.Module:
    """The task's model for its data set's input shape and classes, with initial weights fixed
    by ``seed`` alone; torch's global RNG is untouched."""
    dataset = datasets.get(task.dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds(seed)[0])  # built on the CPU: the same weights on every device
        net = get_model(task.model).make(dataset.classes, dataset.shape)
    return net.to(device)


@dataclass(frozen=True)
class Examples:
    """A run's examples on the device: inputs standardised to float32, labels int64; the data
    set's input shape and classes."""

    train_x: Tensor
    train_y: Tensor
    dev_x: Tensor
    dev_y: Tensor
    test_x: Tensor
    test_y: Tensor
    shape: tuple[int, ...]
    classes: int

    @property
    def n(self) -> int:
        return len(self.train_y)


def train_rows(spec: RunSpec, available: int) -> Tensor | None:
    """Which examples of the training split (``available`` of them) the run trains on, in
    order: None for all; the first ``train_size`` (``subset = "first"``); else ``train_size``
    drawn without replacement from the run's seed, so seeds vary the data they learn from."""
    n = spec.train_size or available
    if n >= available:
        return None
    if spec.subset == "first":
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seeds(spec.seed)[2])
    return torch.randperm(available, generator=generator)[:n].sort().values


def standardise(inputs: Tensor, splits: data.Splits) -> Tensor:
    """``(x / 255 - mean) / std`` in float32, with the training split's mean and std (the
    division by 255, a pixel's range, cancels out for inputs of any range)."""
    mean, std = splits.train.standardisation
    return (inputs.float() / 255 - mean) / std


def run_examples(spec: RunSpec, splits: data.Splits) -> Examples:
    """The run's training examples (``train_rows``) and the first ``eval_size`` dev and test
    examples, standardised (``standardise``): dev and test are every run's yardstick."""
    dataset = datasets.get(get_task(spec.task).dataset)
    train, dev, test = splits.train, splits.dev, splits.test
    rows = train_rows(spec, len(train))
    x, y = (train.images, train.labels) if rows is None else (
        train.images[rows.to(train.images.device)], train.labels[rows.to(train.labels.device)]
    )  # fmt: skip
    return Examples(
        standardise(x, splits), y,
        standardise(dev.images[: spec.eval_size], splits), dev.labels[: spec.eval_size],
        standardise(test.images[: spec.eval_size], splits), test.labels[: spec.eval_size],
        dataset.shape, dataset.classes,
    )  # fmt: skip


class DataOrder:
    """A run's data order: ``epoch()`` gives the next epoch's permutation of ``n`` examples."""

    def __init__(self, seed: int, n: int):
        self.generator, self.n = torch.Generator().manual_seed(seeds(seed)[1]), n

    def epoch(self) -> Tensor:
        return torch.randperm(self.n, generator=self.generator)


def batch_rows(order: Tensor, step: int, budget: Budget, batch: int) -> Tensor:
    """The rows of step ``step``'s batch in ``order`` (its epoch's permutation, last dim)."""
    i = step % budget.steps_per_epoch
    return order[..., i * batch : (i + 1) * batch]


def evaluation_steps(budget: Budget) -> list[int]:
    """Step 0, then ``evals_per_epoch`` evenly spaced points per epoch, each epoch's end last."""
    spe, per = budget.steps_per_epoch, budget.evals_per_epoch
    within = sorted({round(spe * (j + 1) / per) for j in range(per)} - {0})
    steps = {e * spe + s for e in range(budget.epochs) for s in within}
    return [0, *sorted(s for s in steps if s <= budget.total_steps)]


def samples_seen(step: int, spe: int, batch: int, n: int) -> int:
    """Training examples used by the first ``step`` updates (a partial last batch counted)."""
    return (step // spe) * n + min((step % spe) * batch, n)


class Rules:
    """One run's schedule and stop rules, as both engines apply them.

    ``lr[k]`` and ``momentum[k]`` (None: the optimizer's own) are the values set before update
    k. A stateful schedule's ``controller`` (declared by its entry) is fed at each evaluation
    by ``evaluated``, which writes its lr into ``lr`` from the next update on (``cut`` says
    that it changed there); a schedule that
    replaces the optimizer sets ``schedule_free`` (its twin trains, warming up over
    ``warmup_steps`` by itself). After each evaluation ``evaluated`` says whether the run ends
    there (``status``, ``diverged_at``, ``stopped_at`` then tell why).
    """

    def __init__(self, spec: RunSpec, budget: Budget):
        self.spec, self.budget = spec, budget
        seq = sequences(spec.schedule, spec.lr, budget, spec.schedule_params)
        self.lr, self.momentum = seq.lr, seq.momentum
        self.controller = controller(spec.schedule, spec.lr, budget, spec.schedule_params)
        twin = optimizer_kwargs(spec.schedule, budget, spec.schedule_params)
        self.schedule_free = twin is not None
        self.warmup_steps = twin["warmup_steps"] if twin else 0
        # the optimizer class ("module:Class") and keyword arguments the run trains with
        self.optimizer = optim.resolve(spec.optimizer, spec.optimizer_params, self.schedule_free)
        self.status, self.diverged_at, self.stopped_at = "ok", None, None
        self.best, self.since_best, self.cut = -1.0, 0, False

    def lr_at(self, step: int) -> float:
        """The lr of update ``step`` (for the curve: of the latest update)."""
        return float(self.lr[step])

    def applied_momentum(self) -> np.ndarray:
        """Each update's momentum (or beta1) as float64: the schedule's where it cycles it,
        else the optimizer's own, constant."""
        if self.momentum is not None:
            return np.asarray(self.momentum, np.float64)
        own = optim.base_momentum(self.spec.optimizer, self.optimizer[1])
        return np.full(self.budget.total_steps, own)

    def digests(self, steps_done: int) -> dict:
        """The record's ``digests``: of the lr, and of the momentum where the schedule cycles
        it, of the ``steps_done`` updates the run made (a controller's cuts included)."""
        momentum = self.momentum
        return {
            "lr": sequence_digest(self.lr[:steps_done]),
            "momentum": None if momentum is None else sequence_digest(momentum[:steps_done]),
        }

    def evaluated(self, losses: np.ndarray, point: dict) -> bool:
        """After the evaluation ``point``: ``losses`` are the training losses of the updates
        since the previous one. Feeds the controller; True when the run ends here."""
        stop, self.cut = point["step"], False
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size or point["val_loss"] is None:  # the last update can break weights
            first = int(bad[0]) if bad.size else len(losses) - 1
            self.status, self.diverged_at = "diverged", stop - len(losses) + first
            return True
        if self.controller:  # its lr applies from the next update on; ``cut``: it changed
            lr = self.controller.step(point[self.controller.metric])
            self.cut = stop < len(self.lr) and lr != self.lr[stop]
            self.lr[stop:] = lr
        if point["val_acc"] > self.best:
            self.best, self.since_best = point["val_acc"], 0
        else:
            self.since_best += 1
        patience = self.spec.early_stopping
        if patience and self.since_best >= patience:
            self.stopped_at = stop if stop < self.budget.total_steps else None
            return True
        return False


def sequence_digest(values) -> str:
    """16 hex digits of SHA-256 over ``values`` as little-endian float64: the record's proof
    that two runs applied the same sequence, bit for bit (the report merges on it)."""
    return hashlib.sha256(np.asarray(values, "<f8").tobytes()).hexdigest()[:16]


def curve_point(
    step: int, budget: Budget, batch: int, n: int, lr: float, train_loss, val_loss, val_acc, wall_s
) -> dict:
    """One dev evaluation of the curve (results/SCHEMA.md); non-finite losses become None."""
    spe = budget.steps_per_epoch
    return {
        "step": step,
        "epoch": step / spe,
        "samples": samples_seen(step, spe, batch, n),
        "lr": lr,
        "train_loss": None if train_loss is None else finite(train_loss),
        "val_loss": finite(val_loss),
        "val_acc": float(val_acc),
        "wall_s": wall_s,
    }


def loss_function(task: Task):
    """The task's loss (``Task.loss``): ``loss(logits, labels, reduction="mean" | "none")``."""
    return load_named(task.loss)


def test_metrics(logits: Tensor, data: Examples) -> dict:
    """What a run's test logits ``[N, classes]`` give its record: the test ``metrics``
    (``classification_metrics`` less its curves) and its ``test`` field: which examples it got
    right (``per_example``) and the macro ROC and precision-recall ``curves``."""
    logits, labels = logits.cpu().numpy(), data.test_y.cpu().numpy()
    metrics = classification_metrics(logits, labels, data.classes)
    curves = metrics.pop("curves")
    return {"metrics": metrics, "test": per_example(logits, labels) | {"curves": curves}}


def run_record(
    spec: RunSpec, rules: Rules, data: Examples, *, steps_done: int, test: dict, curve: list,
    engine: str, timing: dict, device: torch.device,
) -> dict:  # fmt: skip
    """A run's record (DESIGN.md; fields in results/SCHEMA.md), for every engine: what it
    made (``test`` metrics, its ``curve``, ``steps_done`` updates), its ``rules``' ending, and
    where (``engine``, ``timing``, ``device``)."""
    task, budget = get_task(spec.task), rules.budget
    return record.assemble(
        key=spec.key, spec=spec.to_dict(),
        task={"kind": task.kind, "dataset": task.dataset, "model": task.model,
              "targets": list(task.targets)},
        status=rules.status, diverged_at=rules.diverged_at, stopped_at=rules.stopped_at,
        budget={
            "steps_per_epoch": budget.steps_per_epoch, "total_steps": budget.total_steps,
            "steps_done": steps_done, "train_examples": data.n,
            "dev_examples": len(data.dev_y), "test_examples": len(data.test_y),
        },
        test=test, curve=curve, time_to_target=time_to_target(curve, task.targets),
        digests=rules.digests(steps_done), optimizer=_optimizer_record(spec, rules),
        engine=engine, timing=timing, provenance=provenance(device),
    )  # fmt: skip


def _optimizer_record(spec: RunSpec, rules: Rules) -> dict:
    """The optimizer's name, family, class and constructor settings, as the single engine
    builds it (a probe parameter stands in for the model's)."""
    probe = [torch.zeros(1, requires_grad=True)]
    opt = optim.build(
        spec.optimizer, probe, spec.lr, spec.optimizer_params,
        schedule_free=rules.schedule_free, warmup_steps=rules.warmup_steps,
    )  # fmt: skip
    return optim.settings_record(spec.optimizer, opt)
