"""``RunSpec``: everything that defines one training run, and its content key.

A spec is frozen and complete: defaults are filled in from the task when it is made, so the
key (a hash of the canonical spec and ``PROTOCOL_VERSION``) names the experiment, not the way
it was typed. The device is not part of the spec: it is provenance.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, NamedTuple

from benchmark.catalogue import datasets
from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.params import need
from benchmark.catalogue.schedules import Budget, sequences
from benchmark.catalogue.tasks import get_task

# Bump when training semantics change (batching, evaluation, metrics): old keys then differ.
# 2: training subsets drawn per seed; inputs standardised with the training split's mean and
# std; tuning extends its grid and scores a diverged run as chance
PROTOCOL_VERSION = 2
PRECISIONS = ("fp32", "tf32", "bf16")  # tf32 and bf16 (autocast) are CUDA only
SUBSETS = ("per-seed", "first")  # how a train_size smaller than the split is drawn


class Tolerance(NamedTuple):
    """What a precision keeps against fp32, the same spec on the same device (README
    "Precision"; tests/test_precision.py): the dev loss at step 0, the same weights and data,
    within ``loss`` (relative: only the arithmetic differs there), and after training the final
    dev and test accuracies within ``acc`` (absolute; the runs' paths part as they train)."""

    loss: float
    acc: float


# tf32 rounds the factors of each product to 10 mantissa bits (relative error <= 2^-11, sums in
# fp32), bf16 to 7 (<= 2^-8). Imitated on the CPU (tests/test_precision.py), the step-0 loss of
# every model moved <= 7e-7 (tf32) and 9e-6 (bf16), the accuracies after 20 updates of logreg
# and the MLPs <= 0.004: these bounds leave a GPU's own arithmetic 2-100x room
TOLERANCES = {
    "fp32": Tolerance(0.0, 0.0),
    "tf32": Tolerance(1e-4, 0.01),
    "bf16": Tolerance(1e-3, 0.02),
}


@dataclass(frozen=True)
class RunSpec:
    task: str
    schedule: str  # a SCHEDULES name or module:function
    lr: float  # peak learning rate
    seed: int
    epochs: int
    batch_size: int
    optimizer: str
    optimizer_params: dict[str, Any] = field(default_factory=dict)  # complete: defaults filled
    schedule_params: dict[str, Any] = field(default_factory=dict)  # as given; None = budget rule
    evals_per_epoch: int = 4
    phase: Literal["tune", "final", "one-off"] = "one-off"  # one-off: a run outside a sweep
    train_size: int | None = None  # first N train examples; None: all 50,000
    eval_size: int | None = None  # first N dev and test examples; None: all 10,000 each
    early_stopping: int | None = None  # patience in evaluations without a dev-acc gain
    precision: str = "fp32"
    # which train_size examples: "per-seed" draws them from the seed, "first" the split's first
    subset: Literal["per-seed", "first"] = "per-seed"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "evals_per_epoch"):
            _need_positive(name, getattr(self, name))
        for name in ("train_size", "eval_size", "early_stopping"):
            if getattr(self, name) is not None:
                _need_positive(name, getattr(self, name))
        need(
            isinstance(self.seed, int) and self.seed >= 0, "seed must be an integer >= 0", self.seed
        )
        need(self.lr > 0, "lr must be > 0", self.lr)
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}", self.precision)
        need(self.subset in SUBSETS, f"subset must be one of {SUBSETS}", self.subset)

    @classmethod
    def make(cls, task: str, schedule: str, seed: int = 0, **overrides) -> "RunSpec":
        """A spec for ``task`` with its defaults, ``overrides`` (field names) applied, checked.

        ``optimizer_params`` in ``overrides`` update the task's; ``schedule_params`` are checked
        against the schedule (so a bad key fails here, before anything runs).
        """
        t = get_task(task)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown run setting(s) {sorted(unknown)}")
        opt_name = overrides.pop("optimizer", t.optimizer)
        opt_params = t.optimizer_params if opt_name == t.optimizer else {}
        opt_params = optim.check_settings(
            opt_name, opt_params | overrides.pop("optimizer_params", {})
        )
        values = {
            "lr": t.lr,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "evals_per_epoch": t.evals_per_epoch,
        } | overrides
        spec = cls(
            task, schedule, seed=seed, optimizer=opt_name, optimizer_params=opt_params, **values
        )
        sequences(schedule, spec.lr, spec.budget(), spec.schedule_params)  # checks its parameters
        return spec

    @property
    def train_examples(self) -> int:
        """How many training examples the run uses: the train split, or its first train_size."""
        n_train = datasets.get(get_task(self.task).dataset).train_examples
        return min(n_train, self.train_size or n_train)

    def budget(self) -> Budget:
        """Steps per epoch (the last batch of an epoch may be partial) and total steps."""
        steps_per_epoch = -(-self.train_examples // self.batch_size)
        return Budget.from_epochs(self.epochs, steps_per_epoch, self.evals_per_epoch)

    def canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """16 hex digits of SHA-256 over the canonical spec and the protocol version."""
        text = f"{PROTOCOL_VERSION}:{self.canonical()}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> "RunSpec":
        return cls(**fields)


def _need_positive(name: str, value) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    need(ok, f"{name} must be an integer >= 1", value)
