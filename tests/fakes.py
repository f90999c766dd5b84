"""A fake world for tests: in-memory "digits" data and tasks on it, as a sweep plugin.

Tests import ``Digits``; sweeps name this module in ``plugins = ["fakes"]`` (with tests/ on
PYTHONPATH), so runner processes, worker processes and submitit jobs all see the tasks
``digits_logreg`` and ``digits_mlp`` and load their data without files or torchvision.
"""

from benchmark.catalogue import datasets
from benchmark.catalogue.tasks import TASKS, Task, register
from benchmark.data import datasets as data
from testkit import Digits

DIGITS = Digits()
if "digits" not in datasets.DATASETS:
    datasets.register(DIGITS.dataset)
    _load = data.load

    def _fake_load(name, root=None, device="cpu"):
        if name != "digits":
            return _load(name, root, device)
        s = DIGITS.splits
        parts = (s.train, s.dev, s.test)
        return data.Splits(*(data.Split(x.images.to(device), x.labels.to(device)) for x in parts))

    data.load = _fake_load
    _check = data.check_prepared

    def _fake_check(dataset, root):
        if dataset.name != "digits":
            _check(dataset, root)

    data.check_prepared = _fake_check
if "digits_logreg" not in TASKS:
    register(
        Task(
            "digits_logreg",
            "logreg on digits",
            "digits",
            "logreg",
            "sgd",
            lr=0.5,
            epochs=2,
            batch_size=32,
            evals_per_epoch=2,
            targets=(0.5, 0.9),
        )
    )
    register(
        Task(
            "digits_mlp",
            "mlp on digits",
            "digits",
            "mlp",
            "sgd",
            {"momentum": 0.9},
            lr=0.05,
            epochs=2,
            batch_size=32,
            evals_per_epoch=2,
            targets=(0.5, 0.9),
        )
    )
