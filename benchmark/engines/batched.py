"""The batched engine: R runs of one task trained as one computation, with the single engine's
semantics (``semantics.py``) and records of exactly its form (``engine: "batched"``).

Runs form a group when they share what shapes the computation (``GROUP_FIELDS``); they differ
in schedule, lr, seed and optimizer settings. Run r's weights are row r of each parameter
tensor ``[R, *shape]``, built from the weights the single engine builds for its seed; the
forward pass is the model's stacked forward (``stacked.py``) and the update a
vectorised optimizer step (``vectorised.py``) whose per-run lr, momentum and
settings are columns. Each run keeps its own data order and training subset: runs are sorted
by seed, each seed's batch is gathered once from the device-resident split and read by all its
runs.

Per run, as in the single engine: a stateful schedule's controller is fed at every evaluation
(``Rules.evaluated``) and its cut applies from the next update; a run whose training loss was not
finite is found at the next evaluation and ends there, ``diverged`` at the same step; early stopping
ends a run after its patience. A run that ends keeps being computed (its rows are independent of the
others) but its record is taken from that evaluation: its curve, its test metrics. Nothing inside
the step loop waits for the device: losses stay there until the next evaluation.
Training time is the group's, divided by R (``timing.group_train_s`` keeps the total).

The runs are split into chunks that fit the device's memory (``chunk_size``); an
out-of-memory error halves the chunk and starts it again, losing nothing.
"""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from benchmark.catalogue import datasets
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines import stacked, vectorised
from benchmark.engines.device import autocast, resolve_device, sync, to_device
from benchmark.engines.models import get_model
from benchmark.engines.registry import ENGINES, GROUP_FIELDS
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
    standardise,
    test_metrics,
    train_rows,
)
from benchmark.engines.single import train
from benchmark.records.faults import fault_point

MEMORY_SHARE = 0.5  # of the free device memory a chunk may plan to use (estimates are rough)
MAX_CHUNK = 1024  # runs per chunk at most


def train_group(
    specs: list[RunSpec],
    splits: data.Splits | None = None,
    device: str | torch.device = "auto",
    *,
    root: Path | None = None,
    chunk: int | None = None,
    log=print,
    progress: bool = False,
) -> list[dict]:
    """Train ``specs`` (one group) and return their records in the same order.

    A model or optimizer the engine cannot vectorise trains its runs one at a time with the
    single engine, after a one-line notice through ``log``.
    """
    if len({ENGINES["batched"].group_key(s) for s in specs}) > 1:
        raise ValueError(f"one group shares {', '.join(GROUP_FIELDS)}")
    device = resolve_device(device) if isinstance(device, str) else device
    task = get_task(specs[0].task)
    if splits is None:
        splits = data.load(task.dataset, root, device)
    template = build_model(task, specs[0].seed, device)
    forward = stacked.forward_for(template, get_model(task.model).stacked)
    why = stacked.vectorisable(forward, template, device, datasets.get(task.dataset).shape)
    alone = [s for s in specs if why or _step_class(s) not in vectorised.STEPS]
    if alone:
        reason = why or f"no vectorised step for {sorted({_step_class(s) for s in alone})}"
        log(f"batched engine: {len(alone)} run(s) of {task.name} train one at a time ({reason})")
    records = {s.key: train(s, splits, device) for s in alone}
    todo = sorted((s for s in specs if s.key not in records), key=lambda s: s.seed)
    chunk = chunk or chunk_size(template, todo, device)
    while todo:
        part = todo[:chunk]
        try:
            records |= GroupRun(part, splits, device, forward).run(progress)
        except (torch.OutOfMemoryError, MemoryError):
            if chunk == 1:
                raise
            chunk //= 2
            log(f"batched engine: out of memory; {chunk} runs at a time")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        todo = todo[len(part) :]
    return [records[s.key] for s in specs]


def _step_class(spec: RunSpec) -> str:
    return Rules(spec, spec.budget()).optimizer[0]


def chunk_size(template: torch.nn.Module, specs: list[RunSpec], device: torch.device) -> int:
    """Runs per chunk: a rough estimate of one run's bytes (weights, gradients and three
    optimizer states; activations kept for the backward pass) against half the free memory."""
    if not specs:
        return 1
    shape = datasets.get(get_task(specs[0].task).dataset).shape
    x = torch.zeros(specs[0].batch_size, *shape, device=device)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        template(x).sum()
    weights = sum(p.numel() for p in template.parameters())
    per_run = 4 * (5 * weights + 2 * sum(saved))
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        meminfo = Path("/proc/meminfo").read_text().split("MemAvailable:")
        free = int(meminfo[1].split()[0]) * 1024 if len(meminfo) > 1 else 8 << 30
    return max(1, min(MAX_CHUNK, len(specs), int(MEMORY_SHARE * free / per_run)))


class GroupRun:
    """R runs' state: stacked weights, optimizer steps, rules, data orders, curves, clocks."""

    def __init__(self, specs: list[RunSpec], splits: data.Splits, device, forward):
        self.specs, self.device, self.forward = specs, device, forward
        self.task = get_task(specs[0].task)
        self.budget, self.batch = specs[0].budget(), specs[0].batch_size
        self.autocast = autocast(specs[0].precision, device)
        self.data = run_examples(specs[0], splits)
        self.loss = loss_function(self.task)
        self.rules = [Rules(s, self.budget) for s in specs]
        self.params = stacked.stack_weights(
            [build_model(self.task, s.seed, "cpu") for s in specs], device
        )
        seeds = [s.seed for s in specs]  # sorted: each seed's runs are contiguous
        counts = set(np.unique(seeds, return_counts=True)[1])
        shared = len(counts) == 1  # equal counts: U inputs, k runs each
        self.k = counts.pop() if shared else 1
        readers = list({s.seed: s for s in specs}.values()) if shared else specs  # one a batch
        self.orders = [DataOrder(s.seed, self.data.n) for s in readers]
        self._subsets(readers, splits)
        self.blocks = self._blocks()
        self.lr = np.stack([r.lr.astype(np.float64) for r in self.rules], axis=1)  # [T, R]
        self.momentum = np.stack([r.applied_momentum() for r in self.rules], axis=1)
        self.refresh()
        self.step, self.train_s, self.eval_s = 0, 0.0, 0.0
        self.curves = [[] for _ in specs]
        self.ended: dict[int, dict] = {}  # run index -> its record's parts, once it ended

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

    @property
    def runs(self) -> int:
        return len(self.specs)

    def _blocks(self) -> list[tuple]:
        """(rows, vectorised step) per optimizer class; rows is a slice when one covers all."""
        classes = [r.optimizer for r in self.rules]
        blocks = []
        for cls in dict.fromkeys(c for c, _ in classes):
            mine = [i for i, (c, _) in enumerate(classes) if c == cls]
            rows = slice(None) if len(mine) == self.runs else torch.tensor(mine, device=self.device)
            kwargs = [classes[i][1] for i in mine]
            step = vectorised.STEPS[cls](kwargs, self._rows(rows))
            blocks.append((mine, rows, step))
        return blocks

    def _rows(self, rows) -> list[Tensor]:
        """The parameters' rows of one block, each flattened to ``[R_b, n]`` (a view for a
        slice, a copy for an index)."""
        flat = [p.detach().view(self.runs, -1) for p in self.params.values()]
        return [f[rows] for f in flat]

    def refresh(self) -> None:
        """Each block's coefficient tables on the device, from the lr and momentum tables."""
        self.tables = []
        for mine, _, step in self.blocks:
            coefficients = step.coefficients(self.lr[:, mine], self.momentum[:, mine])
            self.tables.append(
                {
                    name: torch.tensor(
                        table, dtype=torch.bool if table.dtype == bool else torch.float32,
                        device=self.device,
                    )
                    for name, table in coefficients.items()
                }
            )  # fmt: skip

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
        self.end(list(set(range(self.runs)) - set(self.ended)))
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
            y = y.repeat_interleave(self.k, dim=0)
            with self.autocast():
                logits = self.forward(self.params, x, self.k)
                loss = self.loss(logits.flatten(0, 1), y.flatten(), reduction="none")
                loss = loss.view(self.runs, -1).mean(1)
            for p in self.params.values():
                p.grad = None
            loss.sum().backward()  # each run's gradient is that of its own mean loss
            self.update()
            fault_point("step")
            losses[j] = loss.detach()
            self.step += 1
        self.train_s += sync(self.device) - t0
        return losses.double().cpu().numpy()

    @torch.no_grad()
    def update(self) -> None:
        k = self.step
        grads = [p.grad.view(self.runs, -1) for p in self.params.values()]
        for (_, rows, step), tables in zip(self.blocks, self.tables, strict=True):
            c = {name: table[k][:, None] for name, table in tables.items()}
            ps = self._rows(rows)
            step.step(ps, [g[rows] for g in grads], c)
            if isinstance(rows, Tensor):  # a copy: write the block's rows back
                for p, q in zip(self.params.values(), ps, strict=True):
                    p.view(self.runs, -1).index_copy_(0, rows, q)

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """Every run's logits ``[R, N, classes]`` (schedule-free: of its averaged weights)."""
        self._swap("eval")
        per_pass = max(1, EVAL_BATCH * 16 // max(self.runs, 16))  # R x examples bounded
        with self.autocast():
            out = [
                self.forward(self.params, images[i : i + per_pass][None], self.runs).float()
                for i in range(0, len(images), per_pass)
            ]
        self._swap("train")
        return torch.cat(out, dim=1)

    def _swap(self, mode: str) -> None:
        for _, rows, step in self.blocks:
            ps = self._rows(rows)
            getattr(step, mode)(ps)
            if isinstance(rows, Tensor):
                for p, q in zip(self.params.values(), ps, strict=True):
                    p.view(self.runs, -1).index_copy_(0, rows, q)

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
        logits = self.logits(self.data.test_x)[runs]
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
        }
        return run_record(
            self.specs[i], self.rules[i], self.data, steps_done=ended["steps_done"],
            test=ended["test"], curve=self.curves[i], engine="batched", timing=timing,
            device=self.device,
        )  # fmt: skip
