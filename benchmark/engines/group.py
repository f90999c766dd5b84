"""One chunk of a batched group in training: R runs' state and their steps (``batched.py``
cuts the chunks, orders the runs and falls back; ``semantics.py`` says what a run does).

Layout. The runs come ordered by optimizer class, then seed: each optimizer block is a
contiguous range of rows. Each run's parameters are one row of a flat leaf ``weights``
``[R, P]`` (``stacked.Flat``; the stacked forward reads views of it), so a block's update is a
handful of whole-tensor operations on ``weights[a:b]`` and its gradient rows, with each run's
lr, momentum and settings as columns: no row is gathered or written back. Within a block, runs
of one seed read one gathered batch when every seed there has as many runs (``reads``: k runs
per input); otherwise each run reads its own. The per-step coefficients are two device
tables ``[T, columns, 1]`` for the whole group (float32 and boolean): an update reads row k of
each and needs no host value.

Per run, as in the single engine: a stateful schedule's controller is fed at every evaluation
(``Rules.evaluated``) and its cut applies from the next update; a run whose training loss was not
finite is found at the next evaluation and ends there, ``diverged`` at the same step; early stopping
ends a run after its patience. A run that ends keeps being computed (its rows are independent of the
others) but its record is taken from that evaluation: its curve, and its test metrics (test logits
of the runs that end only). Nothing inside the step loop waits for the device: losses stay there
until the next evaluation. Training time is the group's, divided by R (``timing.group_train_s``
keeps the total). Evaluation runs in passes of as many examples as an eighth of the device's
memory holds for all R runs' activations (of its total memory, ``device.memory``: the same
passes, so the same last bits, whatever else runs beside it).
"""

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines import layers, stacked, vectorised
from benchmark.engines.device import Graphed, autocast, memory, sync, to_device
from benchmark.engines.semantics import (
    DataOrder,
    Rules,
    batch_rows,
    build_model,
    curve_point,
    evaluation_steps,
    loss_function,
    run_examples,
    run_record,
    standardise,
    test_metrics,
    train_rows,
)
from benchmark.records.faults import fault_point

EVAL_SHARE = 1 / 8  # of the device's total memory an evaluation pass's activations may take


def activation_floats(forward: stacked.Forward, module, shape: tuple[int, ...], batch: int) -> int:
    """Floats one run of ``forward`` (``module``'s weights) keeps for its backward pass on a
    batch of ``batch`` examples: its activations, a convolution's columns included."""
    params = {n: p.detach()[None].requires_grad_() for n, p in module.named_parameters()}
    x = torch.zeros(1, batch, *shape, device=next(module.parameters()).device)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        forward(params, x, ((1, 1),))
    return sum(saved)


class Block(NamedTuple):
    """An optimizer class's runs: rows ``rows`` of the group and its vectorised ``step``;
    ``columns``: where each of that step's coefficients is in the group's tables (its name, its
    table's dtype and first column: R_b columns from there)."""

    rows: slice
    step: vectorised.Step
    columns: tuple[tuple[str, torch.dtype, int], ...] = ()


class GroupRun:
    """R runs' state: flat weights, optimizer blocks, rules, data orders, curves, clocks."""

    def __init__(
        self, specs: list[RunSpec], splits: data.Splits, device, forward, cuda_graphs=False
    ):
        self.specs, self.device, self.forward = specs, device, forward
        self.task = get_task(specs[0].task)
        self.budget, self.batch = specs[0].budget(), specs[0].batch_size
        self.autocast = autocast(specs[0].precision, device)
        self.data = run_examples(specs[0], splits)
        self.loss = loss_function(self.task)
        self.rules = [Rules(s, self.budget) for s in specs]
        models = [build_model(self.task, s.seed, "cpu") for s in specs]
        self.flat = stacked.Flat(models[0])
        self.weights = self.flat.stack(models, device)
        per_example = activation_floats(forward, models[0], self.data.shape, 2) / 2
        self.per_pass = int(EVAL_SHARE * memory(device, free=False) / (4 * per_example))
        self.lr = np.stack([r.lr.astype(np.float64) for r in self.rules], axis=1)  # [T, R]
        self.momentum = np.stack([r.applied_momentum() for r in self.rules], axis=1)
        readers = self._layout()
        self.orders = [DataOrder(s.seed, self.data.n) for s in readers]
        self._subsets(readers, splits)
        self.refresh()
        self.step, self.train_s, self.eval_s = 0, 0.0, 0.0
        self.gradients: dict[int, Tensor] = {}  # mean_gradient's, by batch size
        self.index = torch.zeros(1, dtype=torch.long, device=device)  # the update's, on the device
        capture = cuda_graphs and device.type == "cuda"  # elsewhere the same step, eager
        self.stepper = Graphed(self._step, capture) if cuda_graphs else self._step
        self.curves = [[] for _ in specs]
        self.ended: dict[int, dict] = {}  # run index -> its record's parts, once it ended

    @property
    def runs(self) -> int:
        return len(self.specs)

    def _layout(self) -> list[RunSpec]:
        """The optimizer blocks' rows and steps, and ``reads``: which runs read which input
        batch (``layers.Reads``); the specs that gather the batches, in input order."""
        classes = [r.optimizer for r in self.rules]
        self.blocks, reads, readers = [], [], []
        for cls in dict.fromkeys(c for c, _ in classes):
            mine = [i for i, (c, _) in enumerate(classes) if c == cls]
            rows = slice(mine[0], mine[-1] + 1)
            if mine != list(range(rows.start, rows.stop)):
                raise ValueError("a group's runs come ordered by optimizer class (batched.order)")
            step = vectorised.STEPS[cls]([classes[i][1] for i in mine], [self.weights[rows]])
            self.blocks.append(Block(rows, step))
            seeds = np.array([self.specs[i].seed for i in mine])
            first, counts = np.unique(seeds, return_index=True, return_counts=True)[1:]
            shared = len(set(counts)) == 1  # equal counts: each seed's batch read by k runs
            k, mine = (int(counts[0]), [mine[i] for i in first]) if shared else (1, mine)
            if reads and reads[-1][1] == k:  # one segment with the block before
                reads[-1] = (reads[-1][0] + len(mine), k)
            else:
                reads.append((len(mine), k))
            readers += [self.specs[i] for i in mine]
        self.reads: layers.Reads = tuple(reads)
        runs = torch.tensor([k for u, k in reads for _ in range(u)])  # of each input, in order
        self.inputs = torch.arange(len(runs)).repeat_interleave(runs).to(self.device)  # run's
        return readers

    def _subsets(self, readers: list[RunSpec], splits: data.Splits) -> None:
        """Where each batch reader's examples are: its own training subset's rows in the whole
        standardised training split (``subsets[u]``), or, when every run trains on all of it,
        the run's examples as they are (``subsets`` None)."""
        rows = [train_rows(s, len(splits.train)) for s in readers]
        if all(r is None for r in rows):
            self.subsets, self.train_x, self.train_y = None, self.data.train_x, self.data.train_y
            return
        self.subsets = torch.stack(rows).to(self.device)
        self.train_x = standardise(splits.train.images, splits)
        self.train_y = splits.train.labels

    def refresh(self) -> None:
        """The blocks' coefficients of every update on the device, from the lr and momentum
        tables: one float32 and one boolean table ``[T, columns, 1]`` for the whole group, so an
        update reads one row of each; a block's coefficient is R_b columns of one of them."""
        columns: dict[torch.dtype, list[np.ndarray]] = {torch.float32: [], torch.bool: []}
        for j, block in enumerate(self.blocks):
            rows = range(block.rows.start, block.rows.stop)
            where = []
            for name, t in block.step.coefficients(
                self.lr[:, rows], self.momentum[:, rows]
            ).items():
                kind = torch.bool if t.dtype == bool else torch.float32
                where.append((name, kind, sum(c.shape[1] for c in columns[kind])))
                columns[kind].append(t)
            self.blocks[j] = block._replace(columns=tuple(where))
        tables = {
            kind: torch.tensor(np.concatenate(c, axis=1)[..., None], dtype=kind, device=self.device)
            for kind, c in columns.items() if c
        }  # fmt: skip
        if hasattr(self, "tables"):  # in place: a captured step reads these very tensors
            for kind, table in tables.items():
                self.tables[kind].copy_(table)
        else:
            self.tables = tables

    def run(self, progress: bool = False) -> dict[str, dict]:
        """Train every run to the end of its budget (or its end); their records by key."""
        desc = f"{self.task.name}: {self.runs} runs"
        with tqdm(
            total=self.budget.total_steps, unit="step", desc=desc, disable=not progress
        ) as bar:
            self.evaluate(np.zeros((0, self.runs)))
            for stop in evaluation_steps(self.budget)[1:]:
                losses = self.train_until(stop)
                bar.update(len(losses))
                self.evaluate(losses)
                if len(self.ended) == self.runs:
                    break
        self.end(sorted(set(range(self.runs)) - set(self.ended)))
        return {self.specs[i].key: self.record(i) for i in range(self.runs)}

    def train_until(self, stop: int) -> np.ndarray:
        """Updates up to ``stop`` for every run (timed); their losses ``[updates, R]``."""
        losses = torch.empty(stop - self.step, self.runs, device=self.device)
        t0 = sync(self.device)
        for j in range(len(losses)):
            if self.step % self.budget.steps_per_epoch == 0:
                self.epoch_orders = to_device(
                    torch.stack([o.epoch() for o in self.orders]), self.device
                )
            rows = batch_rows(self.epoch_orders, self.step, self.budget, self.batch)
            if self.subsets is not None:  # each reader's rows of its own subset
                rows = self.subsets.gather(1, rows)
            rows = rows.reshape(-1)
            x = self.train_x.index_select(0, rows).view(len(self.orders), -1, *self.data.shape)
            y = self.train_y.index_select(0, rows).view(len(self.orders), -1)
            losses[j] = self.stepper(x, y)
            fault_point("step")
            self.step += 1
        self.train_s += sync(self.device) - t0
        return losses.double().cpu().numpy()

    def _step(self, x: Tensor, y: Tensor) -> Tensor:
        """One update of every run on the batches ``x`` ``[S, B, *shape]`` with labels ``y``
        ``[S, B]``; the runs' losses ``[R]``. It reads no host value and keeps its state in
        place, so that it can be captured in a CUDA graph (``Graphed``)."""
        with self.autocast():
            logits = self.forward(self.flat.views(self.weights), x, self.reads)
            y = y.index_select(0, self.inputs)  # each run's labels
            loss = self.loss(logits.flatten(0, 1), y.flatten(), reduction="none")  # [R B]
        self.weights.grad = None
        loss.backward(self.mean_gradient(len(loss)))  # of each run's own mean loss
        self.update()
        return loss.detach().view(self.runs, -1).mean(1)

    def mean_gradient(self, n: int) -> Tensor:
        """The gradient of the sum of the runs' mean losses by each of their ``n`` examples'
        losses: 1 / B, as the backward of that sum and mean computes it (ones / B), made once
        for each batch size B (an epoch's last batch may be smaller) instead of every step."""
        if n not in self.gradients:
            self.gradients[n] = torch.ones(n, device=self.device) / (n // self.runs)
        return self.gradients[n]

    @torch.no_grad()
    def update(self) -> None:
        """Each block's vectorised step on its rows of the weights and their gradients, with
        its coefficients of this update (columns ``[R_b, 1]`` of one row of each table)."""
        now = {kind: table.index_select(0, self.index)[0] for kind, table in self.tables.items()}
        for block in self.blocks:
            size = block.rows.stop - block.rows.start
            c = {name: now[kind][at : at + size] for name, kind, at in block.columns}
            rows = self.weights[block.rows], self.weights.grad[block.rows]
            block.step.step([rows[0]], [rows[1]], c)
        self.index += 1

    @torch.no_grad()
    def logits(self, images: Tensor, runs: list[int] | None = None) -> Tensor:
        """The logits ``[R, N, classes]`` of ``runs`` (default: all), schedule-free: of their
        averaged weights."""
        self._swap("eval")
        params = self.flat.views(self.weights.detach())
        if runs is not None:
            index = torch.tensor(runs, device=self.device)
            params = {name: p.index_select(0, index) for name, p in params.items()}
        n = self.runs if runs is None else len(runs)
        per_pass = max(1, self.per_pass // n)
        with self.autocast():
            out = [
                self.forward(params, images[i : i + per_pass][None], ((1, n),)).float()
                for i in range(0, len(images), per_pass)
            ]
        self._swap("train")
        return torch.cat(out, dim=1)

    def _swap(self, mode: str) -> None:
        """Schedule-free blocks: their averaged weights in (``eval``) or out (``train``)."""
        for block in self.blocks:
            getattr(block.step, mode)([self.weights.detach()[block.rows]])

    def evaluate(self, losses: np.ndarray) -> None:
        """Dev loss and accuracy of every run (untimed); each running run's curve point and
        stop rules; the runs that end here get their test metrics now."""
        t0 = sync(self.device)
        out, labels = self.logits(self.data.dev_x), self.data.dev_y
        val_loss = (
            self.loss(out.flatten(0, 1), labels.repeat(self.runs), reduction="none")
            .view(self.runs, -1)
            .mean(1)
        )
        val_acc = (out.argmax(2) == labels).double().mean(1)
        val_loss, val_acc = val_loss.double().cpu().numpy(), val_acc.cpu().numpy()
        self.eval_s += sync(self.device) - t0
        ending, cut = [], False
        for i, rules in enumerate(self.rules):
            if i in self.ended:
                continue
            point = curve_point(
                self.step, self.budget, self.batch, self.data.n,
                rules.lr_at(max(self.step - 1, 0)),
                losses[:, i].mean() if len(losses) else None, val_loss[i], val_acc[i],
                self.train_s / self.runs,
            )  # fmt: skip
            self.curves[i].append(point)
            if len(losses) and rules.evaluated(losses[:, i], point):
                ending.append(i)
            elif rules.cut:  # its controller changed the lr from the next update on
                self.lr[self.step :, i], cut = rules.lr[self.step :], True
        if cut:
            self.refresh()
        self.end(ending)

    def end(self, runs: list[int]) -> None:
        """The test metrics and the clocks of ``runs``, which end now."""
        if not runs:
            return
        logits = self.logits(self.data.test_x, runs)
        for i, out in zip(runs, logits, strict=True):
            self.ended[i] = {
                "test": test_metrics(out, self.data),
                "steps_done": self.step,
                "train_s": self.train_s / self.runs,
                "eval_s": self.eval_s / self.runs,
            }

    def record(self, i: int) -> dict:
        ended = self.ended[i]
        timing = {
            "train_s": ended["train_s"],
            "eval_s": ended["eval_s"],
            "group_train_s": self.train_s,
            "group_runs": self.runs,
        } | ({"cuda_graphs": True} if getattr(self.stepper, "captured", False) else {})
        return run_record(
            self.specs[i], self.rules[i], self.data, steps_done=ended["steps_done"],
            test=ended["test"], curve=self.curves[i], engine="batched", timing=timing,
            device=self.device,
        )  # fmt: skip
