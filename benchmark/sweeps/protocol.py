"""Sweep files and the tuning protocol: tune on dev, select one lr per schedule, run final seeds.

A sweep is a TOML file (``benchmark/sweeps/<name>.toml``, or any path)::

    description = "what it is for"
    tasks = ["mnist_logreg", "mnist_mlp"]
    schedules = "all"            # or a list of SCHEDULES names / "module:function"
    plugins = []                 # modules imported first: your own tasks, models, schedules
    engine = "auto"              # single, batched, or auto: batched on CUDA (executors.py)
    threads = 1                  # torch threads of every run, whatever the worker count
    deadline = 3300              # optional: seconds a sitting may take (deadline.py)
    [run]                        # RunSpec settings for every run: epochs, batch_size,
    train_size = 10000           # train_size, eval_size, evals_per_epoch, early_stopping,
    epochs = [1, 3]              # precision; epochs may be a list of budgets ("default":
                                 # each task's own)
    [tune]
    seeds = [1000, 1001]
    lr_factors = [0.3, 1, 3]     # the grid: centre x factor
    centre = "task"              # "task": the task's default lr; "lr-find": the range test's
    extend = 2                   # points tried past an edge the choice sits on (0: none)
    [final]
    seeds = [0, 1, 2, 3, 4]      # disjoint from the tuning seeds
    [schedule_params.onecycle]   # optional, per schedule
    pct_start = 0.25
    [report]                     # optional: how the report judges the results
    equivalence_margin = 0.005   # accuracy within which two schedules count as equivalent

The protocol (``tune_specs`` -> ``select`` -> ``extension_specs`` ... -> ``final_specs``): phase
``tune`` runs every budget x task x schedule x grid lr x tuning seed. For each budget, task and
schedule, ``select`` picks the lr with the best mean dev accuracy at the end of the budget over
the tuning seeds, a diverged run scored as chance (so an lr that diverges on one seed of two
loses to a stable one slightly behind on the mean); a tie goes to the smaller lr, the safer
choice: the best lr depends on the horizon, so each budget is tuned on its own. A choice at
the smallest or largest lr tried is not known to be the best: the next point outward (the
grid's own ratio at that edge) is tried with every tuning seed, round after round, until the
choice is inside the lrs tried (a point that diverges ends it so: it scores chance) or
``extend`` points were added past that edge; a choice still at an edge is flagged
(``at_grid_edge``). Phase ``final`` runs
the selected lr with the final seeds; its test metrics are the reported ones. Every schedule
sees the same seeds and the same grid around the same centre (a paired design). A budget is
a number of epochs, or "default" (each task's own); a sweep without ``epochs`` has one budget,
"default".
"""

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.params import need
from benchmark.catalogue.schedules import SCHEDULES
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.engines.registry import CHOICES as ENGINES
from benchmark.engines.registry import FALLBACKS

if TYPE_CHECKING:
    import pandas as pd

SWEEPS = Path(__file__).parent  # the shipped sweep files, <name>.toml
RUN_SETTINGS = (
    "epochs", "batch_size", "train_size", "eval_size", "evals_per_epoch", "early_stopping",
    "precision", "subset",
)  # fmt: skip
EXTEND = 2  # default bound: grid points tried beyond each edge of the initial grid
CENTRES = ("task", "lr-find")
_KEYS = {
    "": {
        "description",
        "tasks",
        "schedules",
        "plugins",
        "engine",
        "fallback",
        "cuda_graphs",
        "threads",
        "deadline",
        "run",
        "tune",
        "final",
        "schedule_params",
        "report",
    },
    "tune": {"seeds", "lr_factors", "centre", "extend"},
    "final": {"seeds"},
    "report": {"equivalence_margin"},
}


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    tasks: tuple[str, ...]
    schedules: tuple[str, ...]
    plugins: tuple[str, ...]
    run: dict  # RunSpec settings for every run
    tune_seeds: tuple[int, ...]
    lr_factors: tuple[float, ...]
    centre: str
    final_seeds: tuple[int, ...]
    schedule_params: dict  # schedule name -> its parameters
    budgets: tuple[int | None, ...] = (None,)  # epochs of each budget; None: the task's
    engine: str = "auto"  # auto or an engines.registry.ENGINES name
    threads: int = 1  # torch threads of every run (executors.Options.threads)
    extend: int = EXTEND  # grid points tried beyond each edge at most (0: the grid only)
    report: dict = field(default_factory=dict)  # read by report/ from sweep.json
    deadline: float | None = None  # seconds a sitting may take (deadline.py); not what runs
    fallback: str = "allow"  # or "forbid": a group the batched engine cannot vectorise fails
    cuda_graphs: bool = False  # the batched engine replays its steps from CUDA graphs (CUDA)

    def spec(
        self, task: str, schedule: str, lr: float, seed: int, phase: str, epochs: int | None
    ) -> RunSpec:
        params = self.schedule_params.get(schedule, {})
        budget = {} if epochs is None else {"epochs": epochs}
        return RunSpec.make(
            task, schedule, seed=seed, lr=lr, phase=phase, schedule_params=params,
            **self.run, **budget,
        )  # fmt: skip

    def grid(self, centre: float) -> list[float]:
        """The tuning lrs around ``centre``, rounded to 4 significant digits (stable keys)."""
        return [float(f"{centre * factor:.4g}") for factor in self.lr_factors]

    def tune_specs(self, centres: dict[str, float]) -> list[RunSpec]:
        """Phase tune: every budget x task x schedule x grid lr x tuning seed."""
        return [
            self.spec(task, schedule, lr, seed, "tune", epochs)
            for epochs in self.budgets
            for task in self.tasks
            for schedule in self.schedules
            for lr in self.grid(centres[task])
            for seed in self.tune_seeds
        ]

    def extension_specs(self, selection: "pd.DataFrame") -> list[RunSpec]:
        """The next grid point outward for each choice at an edge of the lrs tried (the
        grid's own ratio at that edge), every tuning seed, until ``extend`` points were added
        beyond that edge; none where the choice is interior or the bound is reached."""
        if len(self.lr_factors) < 2:
            return []
        factors = sorted(self.lr_factors)
        ratio = {"low": factors[0] / factors[1], "high": factors[-1] / factors[-2]}
        return [
            self.spec(row.task, row.schedule, float(f"{row.lr * ratio[row.edge]:.4g}"), seed,
                      "tune", int(row.epochs))
            for row in selection.itertuples()
            if row.edge and row.beyond < self.extend
            for seed in self.tune_seeds
        ]  # fmt: skip

    def final_specs(self, selection: "pd.DataFrame") -> list[RunSpec]:
        """Phase final: each selected (budget, task, schedule, lr) with every final seed."""
        return [
            self.spec(row.task, row.schedule, float(row.lr), seed, "final", int(row.epochs))
            for row in selection.itertuples()
            for seed in self.final_seeds
        ]


def select(tune: "pd.DataFrame", chance: dict[str, float], grids: dict) -> "pd.DataFrame":
    """Each budget, task and schedule's lr: the best mean final dev accuracy over the tuning
    seeds, a diverged run scored as ``chance[task]`` (1 / classes: it learned nothing one can
    use, whatever it scored before it broke); ties go to the smaller lr.

    ``tune`` has one row per finished tuning run (epochs, task, schedule, lr, seed,
    val_acc_final, status); ``grids[task]`` is the initial grid. Returns epochs, task,
    schedule, lr, dev_acc_mean, dev_acc_std, n_seeds, n_diverged, grid (every lr tried),
    edge ("low" or "high" when the choice is the smallest or largest lr tried, else ""),
    beyond (lrs tried past that edge of the initial grid; past either edge when the choice is
    inside) and at_grid_edge (edge is set).
    """
    import pandas as pd  # here, not at import: a bad sweep file is answered at once

    diverged = tune.status == "diverged"
    score = tune.val_acc_final.where(~diverged, tune.task.map(chance))
    by_lr = (
        tune.assign(diverged=diverged, score=score)
        .groupby(["epochs", "task", "schedule", "lr"], sort=True)
        .agg(
            dev_acc_mean=("score", "mean"),
            dev_acc_std=("score", "std"),
            n_seeds=("seed", "count"),
            n_diverged=("diverged", "sum"),
        )
        .reset_index()
    )
    rows = []
    for (_, task, _), group in by_lr.groupby(["epochs", "task", "schedule"], sort=False):
        best = group[group.dev_acc_mean == group.dev_acc_mean.max()].nsmallest(1, "lr")
        lr, tried = best.lr.iloc[0], group.lr
        edge = (
            ""
            if len(group) < 2
            else "high"
            if lr == tried.max()
            else "low"
            if lr == tried.min()
            else ""
        )
        high, low = tried > max(grids[task]), tried < min(grids[task])
        past = {"high": high, "low": low, "": high | low}
        rows.append(best.assign(
            grid=";".join(f"{x:g}" for x in tried), edge=edge, beyond=int(past[edge].sum()),
            at_grid_edge=bool(edge),
        ))  # fmt: skip
    columns = ["grid", "edge", "beyond", "at_grid_edge"]
    return (
        pd.concat(rows, ignore_index=True) if rows else by_lr.assign(**{key: [] for key in columns})
    )


def load(name: str, overrides: list[tuple[str, object]] = ()) -> Sweep:
    """The sweep ``name`` (in benchmark/sweeps/) or at path ``name``, with ``--set`` overrides."""
    path = Path(name)
    if path.suffix != ".toml":
        path = SWEEPS / f"{name}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in SWEEPS.glob("*.toml")))
            raise InputError(f"unknown sweep {name!r}; valid: {known}, or a path to a .toml file")
    if not path.is_file():
        raise InputError(f"sweep file {path}: not found")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"sweep file {path}: {err}") from None
    for key, value in overrides:
        _set(raw, key, value)
    try:
        return _parse(path.stem, raw)
    except InputError as err:
        raise InputError(f"sweep {path.stem}: {err}") from None


def _set(raw: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        raw = raw.setdefault(part, {})
        if not isinstance(raw, dict):
            raise InputError(f"--set {dotted}: {part} is not a table")
    raw[leaf] = value


def _parse(name: str, raw: dict) -> Sweep:
    for table in ("run", "tune", "final", "schedule_params", "report"):
        need(isinstance(raw.get(table, {}), dict), f"[{table}] must be a table", raw.get(table))
    for table, allowed in _KEYS.items():
        given = raw.get(table, {}) if table else raw
        unknown = set(given) - allowed
        need(not unknown, f"unknown key(s) in [{table or 'top level'}]; valid: "
             f"{', '.join(sorted(allowed))}", sorted(unknown))  # fmt: skip
    plugins = _names("plugins", raw.get("plugins", []))
    for module in plugins:  # they may register the tasks and schedules named below
        try:
            importlib.import_module(module)
        except (ImportError, ValueError) as err:  # ValueError: an empty or relative name
            raise InputError(f"plugin {module!r}: {err}") from None
    schedules = raw.get("schedules", "all")
    ok = schedules == "all" or isinstance(schedules, list)
    need(ok, 'schedules must be "all" or a list of names', schedules)
    schedules = tuple(SCHEDULES) if schedules == "all" else _names("schedules", schedules)
    tasks = _names("tasks", raw.get("tasks", []))
    need(len(tasks) > 0 and len(schedules) > 0, "tasks and schedules must not be empty", tasks)
    need(isinstance(raw.get("description", ""), str), "description must be text", None)
    for task in tasks:
        get_task(task)
    run = dict(raw.get("run", {}))
    unknown = set(run) - set(RUN_SETTINGS)
    need(not unknown, f"[run] takes {', '.join(RUN_SETTINGS)}", sorted(unknown))
    budgets = _budgets(run.pop("epochs", None))
    tune, final = raw.get("tune", {}), raw.get("final", {})
    tune_seeds, final_seeds = _seeds("tune.seeds", tune), _seeds("final.seeds", final)
    overlap = set(tune_seeds) & set(final_seeds)
    need(not overlap, "tune.seeds and final.seeds must be disjoint", sorted(overlap))
    factors = tune.get("lr_factors", [1.0])
    ok = isinstance(factors, list) and len(factors) > 0
    ok = ok and all(type(f) in (int, float) and 0 < f < float("inf") for f in factors)
    need(ok and len(set(factors)) == len(factors), "tune.lr_factors: distinct numbers > 0", factors)
    factors = tuple(factors)
    centre = tune.get("centre", "task")
    need(centre in CENTRES, f"tune.centre must be one of {CENTRES}", centre)
    extend = tune.get("extend", EXTEND)
    need(type(extend) is int and extend >= 0, "tune.extend must be an integer >= 0", extend)
    params = raw.get("schedule_params", {})
    for schedule, table in params.items():
        need(isinstance(table, dict), f"[schedule_params.{schedule}] must be a table", table)
    unknown = set(params) - set(schedules)
    need(not unknown, "schedule_params for schedules not in the sweep", sorted(unknown))
    engine = raw.get("engine", "auto")
    need(engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}", engine)
    fallback = raw.get("fallback", "allow")
    need(fallback in FALLBACKS, f"fallback must be one of {', '.join(FALLBACKS)}", fallback)
    cuda_graphs = raw.get("cuda_graphs", False)
    need(type(cuda_graphs) is bool, "cuda_graphs must be true or false", cuda_graphs)
    threads = raw.get("threads", 1)
    need(type(threads) is int and threads >= 1, "threads must be an integer >= 1", threads)
    deadline = raw.get("deadline")
    ok = deadline is None or (type(deadline) in (int, float) and 0 < deadline < float("inf"))
    need(ok, "deadline must be a number of seconds > 0", deadline)
    report = raw.get("report", {})
    margin = report.get("equivalence_margin", 0.5)  # absent: the report's default
    ok = type(margin) in (int, float) and 0 < margin < 1
    need(ok, "report.equivalence_margin must be a number in (0, 1)", margin)
    sweep = Sweep(
        name, raw.get("description", ""), tasks, schedules, plugins, run, tune_seeds,
        factors, centre, final_seeds, params, budgets, engine, threads, extend, report,
        deadline, fallback, cuda_graphs,
    )  # fmt: skip
    for task in tasks:  # checks every setting and schedule parameter before anything runs
        for schedule in schedules:
            for epochs in budgets:
                sweep.spec(task, schedule, get_task(task).lr, final_seeds[0], "final", epochs)
    return sweep


def _budgets(epochs) -> tuple[int | None, ...]:
    """``[run] epochs``: a number of epochs, or a list of distinct budgets, each a number of
    epochs or "default", each task's own (None)."""
    if epochs is None:
        return (None,)
    given = epochs if isinstance(epochs, list) else [epochs]
    ok = all((type(e) is int and e >= 1) or e == "default" for e in given)
    what = 'run.epochs must be an integer >= 1 or a list of them (or "default")'
    need(ok and len(given) > 0, what, epochs)
    need(len(set(given)) == len(given), "run.epochs has repeats", epochs)
    return tuple(None if e == "default" else e for e in given)


def _names(where: str, value) -> tuple[str, ...]:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    need(
        ok and len(set(value)) == len(value), f"{where} must be a list of names, no repeats", value
    )
    return tuple(value)


def _seeds(where: str, table: dict) -> tuple[int, ...]:
    seeds = table.get("seeds", ())
    ok = isinstance(seeds, list) and all(type(s) is int and s >= 0 for s in seeds)
    need(ok and len(seeds) > 0, f"{where} must be a non-empty list of integers >= 0", seeds)
    need(len(set(seeds)) == len(seeds), f"{where} has repeats", seeds)
    return tuple(seeds)
