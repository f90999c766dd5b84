"""The single-run engine: one run at a time, with torch.optim; the reference for every engine.

What a run does is ``semantics.py`` (seeds, data order, evaluation steps, the lr and
momentum of each step, the stop rules, the record's pieces); this module lays it out for one
run: the model is an ``nn.Module``, the optimizer a ``torch.optim`` optimizer (or the
``schedulefree`` one under ``schedule_free``, which warms up by itself and whose averaged
weights are evaluated: ``optimizer.eval()`` around every evaluation).

Determinism: on the CPU the same spec gives the same record apart from times and the
timestamp, given the same number of threads (they split sums differently). On CUDA the engine
turns cuDNN autotuning off and its deterministic mode on; the same GPU model with the same
software should then repeat a run, but CPU and GPU results differ in the last bits
(summation order), and ``tf32`` / ``bf16`` change the numerics by design.
"""

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.device import autocast, resolve_device, sync
from benchmark.engines.semantics import (
    EVAL_BATCH,
    DataOrder,
    Rules,
    batch_rows,
    build_model,
    curve_point,
    evaluation_steps,
    loss_function,
    run_examples,
    run_record,
    test_metrics,
)
from benchmark.records.faults import fault_point


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


def train_runs(specs: list[RunSpec], splits: data.Splits, device: torch.device) -> list[dict]:
    """The engine contract (``registry.ENGINES["single"]``): each run in turn."""
    return [train(spec, splits, device) for spec in specs]


class SingleRun:
    """One run's state: model, optimizer, rules, data order, curve and clocks."""

    def __init__(self, spec: RunSpec, splits: data.Splits, device: torch.device):
        self.spec, self.device, self.task = spec, device, get_task(spec.task)
        self.budget = spec.budget()
        self.autocast = autocast(spec.precision, device)
        self.data = run_examples(spec, splits)
        self.model = build_model(self.task, spec.seed, device)
        self.loss = loss_function(self.task)
        self.rules = Rules(spec, self.budget)
        self.opt = optim.build(
            spec.optimizer, self.model.parameters(), spec.lr, spec.optimizer_params,
            schedule_free=self.rules.schedule_free, warmup_steps=self.rules.warmup_steps,
        )  # fmt: skip
        self.cycles = optim.get_optimizer(spec.optimizer).cycles
        self.order = DataOrder(spec.seed, self.data.n)
        self.step = 0
        self.curve, self.timing = [], {"train_s": 0.0, "eval_s": 0.0}

    def run(self, progress: bool = False) -> dict:
        """Train to the end of the budget (or divergence, or early stopping); the record."""
        spec = self.spec
        desc = f"{spec.task} {spec.schedule} seed {spec.seed}"
        with tqdm(
            total=self.budget.total_steps, unit="step", desc=desc, disable=not progress
        ) as bar:
            self._train_mode()
            self.evaluate(None)
            for stop in evaluation_steps(self.budget)[1:]:
                losses = self.train_until(stop)
                bar.update(len(losses))
                point = self.evaluate(losses.mean())
                bar.set_postfix(val_acc=f"{point['val_acc']:.4f}")
                if self.rules.evaluated(losses, point):
                    break
        return self.record()

    def train_until(self, stop: int) -> np.ndarray:
        """Updates from ``self.step`` up to ``stop`` (timed); their training losses."""
        rules, data, losses = self.rules, self.data, []
        t0 = sync(self.device)
        while self.step < stop:
            if self.step % self.budget.steps_per_epoch == 0:
                self.epoch_order = self.order.epoch().to(self.device)
            rows = batch_rows(self.epoch_order, self.step, self.budget, self.spec.batch_size)
            if not rules.schedule_free:  # schedule-free warms up a constant lr by itself
                momentum = rules.momentum
                optim.set_hyper(
                    self.opt,
                    self.cycles,
                    rules.lr_at(self.step),
                    None if momentum is None else float(momentum[self.step]),
                )
            with self.autocast():
                out = self.model(data.train_x[rows])
                loss = self.loss(out, data.train_y[rows])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            fault_point("step")
            losses.append(loss.detach())
            self.step += 1
        self.timing["train_s"] += sync(self.device) - t0
        return torch.stack(losses).double().cpu().numpy()

    def evaluate(self, train_loss: float | None) -> dict:
        """Dev loss and accuracy now (untimed); appended to the curve and returned."""
        t0 = sync(self.device)
        out, labels = self.logits(self.data.dev_x), self.data.dev_y
        val_loss = self.loss(out, labels).item()
        val_acc = (out.argmax(1) == labels).double().mean().item()
        self.timing["eval_s"] += sync(self.device) - t0
        point = curve_point(
            self.step, self.budget, self.spec.batch_size, self.data.n,
            self.rules.lr_at(max(self.step - 1, 0)), train_loss, val_loss, val_acc,
            self.timing["train_s"],
        )  # fmt: skip
        self.curve.append(point)
        return point

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """The model's logits on ``images`` (schedule-free: of its averaged weights)."""
        self._eval_mode()
        with self.autocast():
            out = [
                self.model(images[i : i + EVAL_BATCH]).float()
                for i in range(0, len(images), EVAL_BATCH)
            ]
        self._train_mode()
        return torch.cat(out)

    def _train_mode(self) -> None:
        self.model.train()
        if self.rules.schedule_free:
            self.opt.train()

    def _eval_mode(self) -> None:
        self.model.eval()
        if self.rules.schedule_free:
            self.opt.eval()  # swaps the averaged weights in

    def record(self) -> dict:
        """The run record, from the final weights and the curve."""
        timing = self.timing | {"group_train_s": self.timing["train_s"], "group_runs": 1}
        return run_record(
            self.spec, self.rules, self.data, steps_done=self.step,
            test=test_metrics(self.logits(self.data.test_x), self.data), curve=self.curve,
            engine="single", timing=timing, device=self.device,
        )  # fmt: skip
