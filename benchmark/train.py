"""The single-run engine: the reference semantics of a run (DESIGN.md); others must match it.

One run, as ``train(spec)`` does it:

- The splits live on the device as uint8 tensors; a batch is indexed from them and scaled to
  floats, ``(x / 255 - mean) / std`` with the mean and std of the run's training images.
- Step k (the k-th update, from 0) is batch ``k % steps_per_epoch`` of epoch
  ``k // steps_per_epoch``. Each epoch draws a permutation of the training examples from the
  run's data generator (on the CPU, so CPU and GPU runs see the same batches) and cuts it into
  consecutive batches; the last batch of an epoch holds the remainder (it may be smaller),
  so an epoch is exactly one pass over the train split.
- Before every update the engine sets the lr (and the momentum or beta1 a schedule cycles).
  ``plateau`` instead follows its controller, stepped with the dev loss after each
  evaluation. ``schedule_free`` uses the schedulefree optimizer, which warms up by itself, and
  evaluates its averaged weights (``optimizer.eval()`` around every evaluation).
- Evaluation on dev at step 0 and ``evals_per_epoch`` times per epoch (the last at the epoch's
  end), untimed. Training seconds are measured with device synchronisation.
- A non-finite training loss is found at the next evaluation: the run stops there with status
  "diverged" and ``diverged_at_step``, the first update whose loss was not finite.
- Optional early stopping ends the run after ``early_stopping`` evaluations without a new best
  dev accuracy. The test metrics are those of the final weights.

Determinism: the seed fixes the initial weights and the data order (separate generators), so
on the CPU the same spec gives the same record apart from times and the timestamp, given the
same number of threads (they split sums differently). On CUDA the engine turns cuDNN
autotuning off and its deterministic mode on; the same GPU model with the same software should
then repeat a run, but CPU and GPU results differ in the last bits (summation order), and
``tf32`` / ``bf16`` change the numerics by design.
"""

import contextlib
import time

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import cross_entropy
from tqdm import tqdm

from benchmark import data, optim
from benchmark.errors import InputError
from benchmark.faults import fault_point
from benchmark.metrics import classification_metrics, finite, time_to_target
from benchmark.models import get_model
from benchmark.provenance import provenance
from benchmark.schedules import (
    get_schedule,
    plateau_controller,
    schedule_free_kwargs,
    sequences,
)
from benchmark.spec import RunSpec
from benchmark.store import SCHEMA
from benchmark.tasks import get_task

EVAL_BATCH = 1000  # examples per forward pass when evaluating (memory only, not semantics)
CLASSES = 10


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the GPU when torch sees one, else the CPU; ``cuda`` without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda: torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


def seeds(seed: int) -> tuple[int, int]:
    """Independent seeds for the initial weights and for the data order, from the run's seed."""
    init, order = np.random.SeedSequence(seed).generate_state(2)
    return int(init), int(order)


def build_model(model: str, seed: int, device: torch.device) -> nn.Module:
    """The model with initial weights fixed by ``seed`` alone; torch's global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds(seed)[0])
        net = get_model(model)(CLASSES)  # built on the CPU: the same weights on every device
    return net.to(device)


class Scaler:
    """uint8 images -> floats standardised with the training images' mean and std."""

    def __init__(self, train_images: Tensor):
        pixels = train_images.double() / 255
        self.mean, self.std = pixels.mean().item(), pixels.std().item()

    def __call__(self, images: Tensor) -> Tensor:
        return (images.float() / 255 - self.mean) / self.std


def restrict(spec: RunSpec, splits: data.Splits) -> data.Splits:
    """The first ``train_size`` training and ``eval_size`` dev and test examples."""

    def first(split: data.Split, n: int | None) -> data.Split:
        return data.Split(split.images[:n], split.labels[:n])

    return data.Splits(
        first(splits.train, spec.train_size),
        first(splits.dev, spec.eval_size),
        first(splits.test, spec.eval_size),
    )


def evaluation_steps(budget) -> list[int]:
    """Step 0, then ``evals_per_epoch`` evenly spaced points per epoch, each epoch's end last."""
    spe, per = budget.steps_per_epoch, budget.evals_per_epoch
    within = sorted({round(spe * (j + 1) / per) for j in range(per)} - {0})
    steps = {e * spe + s for e in range(budget.epochs) for s in within}
    return [0, *sorted(s for s in steps if s <= budget.total_steps)]


def samples_seen(step: int, spe: int, batch: int, n: int) -> int:
    """Training examples used by the first ``step`` updates (a partial last batch counted)."""
    return (step // spe) * n + min((step % spe) * batch, n)


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def check_precision(precision: str, device: torch.device) -> None:
    """tf32 and bf16 are CUDA only."""
    if precision != "fp32" and device.type != "cuda":
        raise InputError(f"precision {precision} needs CUDA; use fp32 on the CPU")


def _precision(spec: RunSpec, device: torch.device):
    """The autocast context for the forward pass; sets TF32 for matmuls and convolutions."""
    check_precision(spec.precision, device)
    if device.type == "cuda":
        tf32 = spec.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    if spec.precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def train(
    spec: RunSpec,
    splits: data.Splits | None = None,
    device: str | torch.device = "auto",
    *,
    root=None,
    progress: bool = False,
) -> dict:
    """Train one run and return its record (DESIGN.md; fields in results/SCHEMA.md).

    ``splits`` are the task's dataset on ``device`` (loaded from ``root`` when None);
    ``progress`` shows a progress bar on stderr.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    if splits is None:
        splits = data.load(get_task(spec.task).dataset, root, device)
    return SingleRun(spec, splits, device).run(progress)


class SingleRun:
    """One run's state: model, optimizer, schedule, data order, curve and clocks."""

    def __init__(self, spec: RunSpec, splits: data.Splits, device: torch.device):
        self.spec, self.device, self.task = spec, device, get_task(spec.task)
        self.budget, entry = spec.budget(), get_schedule(spec.schedule)
        self.autocast = _precision(spec, device)
        self.splits = restrict(spec, splits)
        self.scale = Scaler(self.splits.train.images)
        self.model = build_model(self.task.model, spec.seed, device)
        self.seq = sequences(spec.schedule, spec.lr, self.budget, spec.schedule_params)
        self.plateau = (
            plateau_controller(spec.lr, self.budget, spec.schedule_params)
            if entry.stateful
            else None
        )
        self.schedule_free = entry.optimizer == "schedulefree"
        warmup = (
            schedule_free_kwargs(self.budget, spec.schedule_params)["warmup_steps"]
            if self.schedule_free
            else 0
        )
        self.opt = optim.build(
            spec.optimizer, self.model.parameters(), spec.lr, spec.optimizer_params,
            schedule_free=self.schedule_free, warmup_steps=warmup,
        )  # fmt: skip
        self.order_gen = torch.Generator().manual_seed(seeds(spec.seed)[1])
        self.n = len(self.splits.train.labels)
        self.step, self.lr = 0, float(self.seq.lr[0])  # lr: that of the latest (or first) update
        self.curve, self.timing = [], {"train_s": 0.0, "eval_s": 0.0}

    def run(self, progress: bool = False) -> dict:
        """Train to the end of the budget (or divergence, or early stopping); the record."""
        spec, budget = self.spec, self.budget
        status, diverged_at, stopped_at, best, since_best = "ok", None, None, -1.0, 0
        desc = f"{spec.task} {spec.schedule} seed {spec.seed}"
        with tqdm(total=budget.total_steps, unit="step", desc=desc, disable=not progress) as bar:
            self._train_mode()
            self.evaluate(None)
            for stop in evaluation_steps(budget)[1:]:
                losses = self.train_until(stop)
                bar.update(len(losses))
                point = self.evaluate(losses.mean())
                bar.set_postfix(val_acc=f"{point['val_acc']:.4f}")
                bad = np.flatnonzero(~np.isfinite(losses))
                if bad.size or point["val_loss"] is None:  # the last update can break weights
                    first = int(bad[0]) if bad.size else len(losses) - 1
                    status, diverged_at = "diverged", stop - len(losses) + first
                    break
                if self.plateau:  # the dev loss (mode "min") or the dev accuracy ("max")
                    self.plateau.step(
                        point["val_loss" if self.plateau.mode == "min" else "val_acc"]
                    )
                if point["val_acc"] > best:
                    best, since_best = point["val_acc"], 0
                else:
                    since_best += 1
                if spec.early_stopping and since_best >= spec.early_stopping:
                    stopped_at = stop if stop < budget.total_steps else None
                    break
        return self.record(status, diverged_at, stopped_at)

    def train_until(self, stop: int) -> np.ndarray:
        """Updates from ``self.step`` up to ``stop`` (timed); their training losses."""
        spe, batch, train = self.budget.steps_per_epoch, self.spec.batch_size, self.splits.train
        losses = []
        t0 = _sync(self.device)
        while self.step < stop:
            i = self.step % spe  # the batch within the epoch
            if i == 0:
                self.order = torch.randperm(self.n, generator=self.order_gen).to(self.device)
            rows = self.order[i * batch : (i + 1) * batch]
            self.lr = self.plateau.lr if self.plateau else float(self.seq.lr[self.step])
            if not self.schedule_free:  # schedule-free warms up a constant lr by itself
                momentum = self.seq.momentum
                optim.set_hyper(
                    self.opt, self.lr, None if momentum is None else float(momentum[self.step])
                )
            with self.autocast():
                out = self.model(self.scale(train.images[rows]))
                loss = cross_entropy(out, train.labels[rows])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            fault_point("step")
            losses.append(loss.detach())
            self.step += 1
        self.timing["train_s"] += _sync(self.device) - t0
        return torch.stack(losses).double().cpu().numpy()

    def evaluate(self, train_loss: float | None) -> dict:
        """Dev loss and accuracy now (untimed); appended to the curve and returned."""
        t0 = _sync(self.device)
        out, labels = self.logits(self.splits.dev), self.splits.dev.labels
        val_loss = cross_entropy(out, labels).item()
        val_acc = (out.argmax(1) == labels).double().mean().item()
        self.timing["eval_s"] += _sync(self.device) - t0
        spe = self.budget.steps_per_epoch
        point = {
            "step": self.step,
            "epoch": self.step / spe,
            "samples": samples_seen(self.step, spe, self.spec.batch_size, self.n),
            "lr": self.lr,
            "train_loss": None if train_loss is None else finite(train_loss),
            "val_loss": finite(val_loss),
            "val_acc": val_acc,
            "wall_s": self.timing["train_s"],
        }
        self.curve.append(point)
        return point

    @torch.no_grad()
    def logits(self, split: data.Split) -> Tensor:
        """The model's logits on ``split`` (schedule-free: of its averaged weights)."""
        self._eval_mode()
        with self.autocast():
            out = [
                self.model(self.scale(split.images[i : i + EVAL_BATCH])).float()
                for i in range(0, len(split.labels), EVAL_BATCH)
            ]
        self._train_mode()
        return torch.cat(out)

    def _train_mode(self) -> None:
        self.model.train()
        if self.schedule_free:
            self.opt.train()

    def _eval_mode(self) -> None:
        self.model.eval()
        if self.schedule_free:
            self.opt.eval()  # swaps the averaged weights in

    def record(self, status: str, diverged_at: int | None, stopped_at: int | None) -> dict:
        """The run record (DESIGN.md), from the final weights and the curve."""
        test_logits = self.logits(self.splits.test).cpu().numpy()
        labels = self.splits.test.labels.cpu().numpy()
        test = classification_metrics(test_logits, labels, CLASSES)
        curve, spec = self.curve, self.spec
        return {
            "schema": SCHEMA,
            "key": spec.key,
            "spec": spec.to_dict(),
            "status": status,
            "diverged_at_step": diverged_at,
            "stopped_early_at_step": stopped_at,
            "budget": {
                "steps_per_epoch": self.budget.steps_per_epoch,
                "total_steps": self.budget.total_steps,
                "steps_done": self.step,
                "train_examples": self.n,
                "dev_examples": len(self.splits.dev.labels),
                "test_examples": len(labels),
            },
            "metrics": {
                **{f"test_{k}": v for k, v in test.items()},
                "val_acc_final": curve[-1]["val_acc"],
                "val_loss_final": curve[-1]["val_loss"],
                "val_acc_best": max(p["val_acc"] for p in curve),
                "train_loss_final": curve[-1]["train_loss"],
            },
            "time_to_target": time_to_target(curve, self.task.targets),
            "curve": curve,
            "optimizer": optim.describe(self.opt),
            "engine": "single",
            "timing": self.timing,
            "provenance": provenance(self.device),
        }
