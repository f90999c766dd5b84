"""Tasks: ``TASKS`` maps a name to a dataset, a model, an optimizer and their defaults.

A task is one ``Task(...)`` entry registered with ``register``; its model is a builder in
``benchmark.engines.models``. The tasks differ in kind, so the report can say which schedule
suits which kind: convex (logreg), deep MLP with SGD or Adam, CNN, recurrent; MNIST and
Fashion.

``loss`` names the loss function (cross-entropy unless a task says otherwise; the engines
import it when a run starts). ``lr`` is the default peak learning rate and ``epochs`` the
default budget, chosen so that a reasonable schedule (cosine) reaches the easy target;
``targets`` are dev accuracies, an easy and a hard one, for time-to-target (DESIGN.md).
Sources for the shapes: DeepOBS (Schneider et
al. 2019) mnist_mlp and 2c2d; the sequential MNIST GRU follows Le et al. 2015's row-by-row
reading.
"""

from dataclasses import dataclass, field
from typing import Any

from benchmark.catalogue.errors import unknown_name


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    dataset: str  # a benchmark.catalogue.datasets.DATASETS name
    model: str  # a benchmark.engines.models.MODELS name
    optimizer: str  # a benchmark.catalogue.optimizers.OPTIMIZERS name
    optimizer_params: dict[str, Any] = field(default_factory=dict)
    lr: float = 0.1  # default peak learning rate
    batch_size: int = 128
    epochs: int = 10
    evals_per_epoch: int = 4
    targets: tuple[float, ...] = ()  # dev accuracies, easy to hard
    kind: str = "other"  # the report's guidance groups tasks by it: convex, MLP, CNN, recurrent
    # "module:function" of the training and dev loss, called as torch.nn.functional's losses
    # are: loss(logits [N, classes], labels [N], reduction="mean" | "none")
    loss: str = "torch.nn.functional:cross_entropy"


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if len(task.targets) < 2 or list(task.targets) != sorted(task.targets):
        raise ValueError(f"task {task.name}: need two or more targets, easy to hard")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


SGD_MOMENTUM = {"momentum": 0.9, "weight_decay": 5e-4}  # DeepOBS-style SGD for the deep nets

register(Task(
    "mnist_logreg", "linear softmax on MNIST pixels (convex), plain SGD",
    "mnist", "logreg", "sgd", {}, lr=0.5, epochs=10, targets=(0.90, 0.92),
    kind="convex",
))  # fmt: skip
register(Task(
    "mnist_mlp", "DeepOBS mnist_mlp (784-1000-500-100-10), SGD with momentum",
    "mnist", "mlp", "sgd", SGD_MOMENTUM, lr=0.05, epochs=10, targets=(0.97, 0.98),
    kind="MLP",
))  # fmt: skip
register(Task(
    "mnist_mlp_adam", "the same MLP with AdamW",
    "mnist", "mlp", "adamw", {"weight_decay": 0.01}, lr=1e-3, epochs=10, targets=(0.97, 0.98),
    kind="MLP",
))  # fmt: skip
register(Task(
    "mnist_cnn", "DeepOBS 2c2d (two conv, two dense layers), SGD with momentum",
    "mnist", "cnn_2c2d", "sgd", SGD_MOMENTUM, lr=0.05, epochs=6, targets=(0.985, 0.99),
    kind="CNN",
))  # fmt: skip
register(Task(
    "fmnist_mlp", "the MLP on Fashion-MNIST, SGD with momentum",
    "fashion_mnist", "mlp", "sgd", SGD_MOMENTUM, lr=0.05, epochs=10, targets=(0.86, 0.89),
    kind="MLP",
))  # fmt: skip
register(Task(
    "fmnist_cnn", "2c2d on Fashion-MNIST, SGD with momentum",
    "fashion_mnist", "cnn_2c2d", "sgd", SGD_MOMENTUM, lr=0.05, epochs=10, targets=(0.89, 0.91),
    kind="CNN",
))  # fmt: skip
register(Task(
    "smnist_gru", "sequential MNIST read row by row (28 steps of 28 pixels), a GRU, Adam",
    "mnist", "gru", "adam", {}, lr=2e-3, epochs=10, targets=(0.95, 0.98),
    kind="recurrent",
))  # fmt: skip


def markdown_table() -> str:
    """The tasks as the README's Markdown table (a test keeps the README in step)."""
    rows = [
        "| task | dataset | model | optimizer (settings) | lr | epochs | batch | dev targets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in TASKS.values():
        settings = ", ".join(f"{k}={v}" for k, v in t.optimizer_params.items())
        optimizer = f"{t.optimizer} ({settings})" if settings else t.optimizer
        targets = ", ".join(f"{x:g}" for x in t.targets)
        rows.append(
            f"| `{t.name}` | {t.dataset} | {t.model} | {optimizer} | {t.lr:g} | {t.epochs} "
            f"| {t.batch_size} | {targets} |"
        )
    return "\n".join(rows)


def representatives() -> list[str]:
    """One task per model and optimizer, the first registered: what the perf harness and
    ``check`` measure by default (every model's forward, every optimizer's update, once)."""
    first = {(t.model, t.optimizer): name for name, t in reversed(TASKS.items())}
    return [name for name in TASKS if name in first.values()]
