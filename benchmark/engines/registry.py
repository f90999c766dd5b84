"""The engines a run can train with: ``ENGINES`` maps a name to an ``Engine``.

An engine is one function ``train(specs, splits, device) -> records``: it trains the specs
and returns their records, in the specs' order, following ``semantics`` (what a run does is
not the engine's to decide). It is named as ``"module:function"`` and imported when first
used, so that naming and checking engines loads no torch. ``groups`` declares what the specs
of one call must share (the executors cut groups of runs by it); None means it trains any
specs, one at a time. ``options`` declares the keyword arguments it takes beyond the contract
(the batched engine's ``fallback``: may runs it cannot vectorise train one at a time, and
``cuda_graphs``); the executors pass those of a sweep's settings, and nothing else. Every
engine's records are held to the single engine's by one harness (``tests/testkit.py``,
``assert_engine_matches_single``). A new engine is one module and one entry here.
"""

from dataclasses import dataclass

from benchmark.catalogue.params import load_named
from benchmark.catalogue.spec import RunSpec

# what a run the batched engine cannot vectorise does: train one at a time (a warning in the
# sweep's summary and its record), or fail its group
FALLBACKS = ("allow", "forbid")
# what shapes a batched computation: runs that share these train as one group; model and data
# follow from the task
GROUP_FIELDS = (
    "task", "batch_size", "epochs", "train_size", "eval_size", "evals_per_epoch", "precision",
)  # fmt: skip


@dataclass(frozen=True)
class Engine:
    name: str
    target: str  # "module:function", train(specs, splits, device) -> records
    summary: str
    groups: tuple[str, ...] | None = None  # what one call's specs share; None: any specs
    options: tuple[str, ...] = ()  # keyword arguments train takes beyond the contract

    def train(self, specs: list[RunSpec], splits, device, **options) -> list[dict]:
        """Train ``specs``; of ``options`` only those the engine declares reach it."""
        mine = {k: v for k, v in options.items() if k in self.options}
        return load_named(self.target)(specs, splits, device, **mine)

    def group_key(self, spec: RunSpec) -> tuple:
        """What ``spec`` shares with the runs it may train with in one call."""
        return tuple(getattr(spec, f) for f in self.groups or ("key",))


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine("single", "benchmark.engines.single:train_runs",
               "one run at a time with torch.optim: the reference"),
        Engine("batched", "benchmark.engines.batched:train_group",
               "the runs of a group as one computation", GROUP_FIELDS,
               ("fallback", "cuda_graphs")),
    )
}  # fmt: skip
CHOICES = ("auto", *ENGINES)  # auto: the faster engine for the model and device (executors)
