"""The perf harness: training throughput of three ways to train, side by side in one process.

For each task (by default one per model and optimizer: ``tasks.representatives``) and the same
number of updates:

- ``standard``: the PyTorch pattern of pytorch/examples' mnist: a torchvision dataset with
  ``ToTensor`` and ``Normalize`` transforms, a shuffling ``DataLoader``, ``loss.item()`` every
  update (on CUDA one loader worker and pinned memory, as there);
- ``single``: the single engine (``benchmark/engines/single.py``), one run;
- ``batched``: the batched engine at R = 1, 4, 16, 64, ... runs at once, while
  ``max_seconds`` allows, each R a group as a real sweep holds it (``sweep_group``: mixed
  schedules, both optimizer blocks, runs of one seed sharing batches).

Both engines train through the engine contract (``ENGINES[name].train``), as a sweep does.
Each is timed from the first update to the last with device synchronisation, evaluation
excluded, and given as run-samples per second (training examples per second summed over the
runs). Every method runs once untimed (a warm-up turn), then the methods take turns
``repeats`` times and the median counts, so a busy machine slows them alike and the ratios
stand; all run under the same precision flags, set before the first turn. A task stops
starting turns after ``task_seconds``. Beside them: the operations per update of each
engine (``ops.py``) and the floor, what the device's measured matmul rate allows for the
model's FLOPs per example (forward and backward, counted by ``torch.utils.flop_counter``).
``run`` writes ``results/perf/<device>.json`` after every task (a timeout loses only the
task in progress); the report draws its speed chart from that folder, and the executors'
``auto`` engine choice reads it (``benchmark/sweeps/auto.py``).
"""

import json
import platform
import re
import time
from pathlib import Path
from statistics import median

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.catalogue import datasets
from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.params import load_named
from benchmark.catalogue.requires import check_packages
from benchmark.catalogue.schedules import SCHEDULES
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.device import autocast, sync
from benchmark.engines.provenance import PACKAGES, device_name, package_version
from benchmark.engines.registry import ENGINES
from benchmark.engines.semantics import build_model, loss_function
from benchmark.records.atomic import write_atomic
from benchmark.records.folders import PERF
from benchmark.tools import ops

# a group as the full sweep's tuning phase holds it (benchmark/sweeps/full.toml: its grid and
# tuning seeds; a test holds these to it): every schedule in turn, each lap at the next lr
GROUP_LR_FACTORS = (0.1, 0.3, 1, 3, 10)
GROUP_SEEDS = (1000, 1001)


def in_turn() -> list[str]:
    """The schedules in the order a group takes them: the first plain one, then those that
    replace the optimizer, then the rest: a group of one trains the task's own optimizer (as
    the standard pattern does), a group of three or more both optimizer blocks (of four, each
    block one configuration on both seeds, as ``OPS_RUNS``)."""
    twins = [n for n, s in SCHEDULES.items() if s.replaces_optimizer is not None]
    plain = [n for n in SCHEDULES if n not in twins]
    return plain[:1] + twins + plain[1:]


def sweep_group(
    task: str, runs: int, steps: int, precision: str = "fp32", eval_size: int = 1000
) -> list[RunSpec]:
    """``runs`` runs of ``task`` of ``steps`` updates each (one epoch of ``steps`` batches, one
    untimed evaluation) as a group of a real sweep's tuning phase holds them: configurations
    of mixed schedules (``in_turn``), each lap of them at the next lr of the grid, and each
    configuration on both tuning seeds, so that an optimizer block's runs of one seed share
    their batches as in a sweep (an odd ``runs`` leaves the last on one seed: then each of its
    block's runs reads its own); sorted by seed as the executors sort a group."""
    t = get_task(task)
    order, seeds = in_turn(), len(GROUP_SEEDS)
    specs = [
        RunSpec.make(
            task, order[r // seeds % len(order)], seed=GROUP_SEEDS[r % seeds],
            lr=t.lr * GROUP_LR_FACTORS[(r // seeds // len(order)) % len(GROUP_LR_FACTORS)],
            epochs=1,
            train_size=steps * t.batch_size, eval_size=eval_size, evals_per_epoch=1,
            precision=precision, phase="tune",
        )
        for r in range(runs)
    ]  # fmt: skip
    return sorted(specs, key=lambda s: s.seed)


def standard(task: str, steps: int, device: torch.device, root=None) -> float:
    """Seconds for ``steps`` updates of the pytorch/examples pattern."""
    import torchvision
    from torchvision import transforms

    t = get_task(task)
    folder = datasets.get(t.dataset).folder
    to_tensor = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )  # pytorch/examples' MNIST mean and std
    dataset = getattr(torchvision.datasets, folder)(
        data.data_root(root), train=True, download=False, transform=to_tensor
    )
    cuda = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    loader = torch.utils.data.DataLoader(dataset, batch_size=t.batch_size, shuffle=True, **cuda)
    model = build_model(t, 0, device)
    cls, kwargs = optim.resolve(t.optimizer, t.optimizer_params)
    opt = load_named(cls)(model.parameters(), lr=t.lr, **kwargs)
    model.train()
    batches = iter(loader)
    t0 = sync(device)
    for _ in range(steps):
        images, labels = next(batches)
        images, labels = images.to(device).squeeze(1), labels.to(device)
        opt.zero_grad()
        loss = loss_function(t)(model(images), labels)
        loss.backward()
        opt.step()
        loss.item()  # the pattern logs the loss every step: a host sync
    return sync(device) - t0


def engine(name: str, task: str, steps: int, device, splits, runs: int = 1, precision="fp32"):
    """Training seconds of a sweep-like group of ``runs`` runs through ``ENGINES[name]``, as a
    sweep trains them (a batched engine's fallback, chunks and out-of-memory halving
    included): the sum of the records' ``train_s`` (a group's time shared among its runs)."""
    records = ENGINES[name].train(sweep_group(task, runs, steps, precision), splits, device)
    return sum(r["timing"]["train_s"] for r in records)


def floor(task: str, device: torch.device, gflops: float) -> tuple[float, float]:
    """FLOPs per training example (forward and backward) and the run-samples per second that
    ``gflops`` allows for them."""
    t = get_task(task)
    model = build_model(t, 0, device)
    x = torch.zeros(t.batch_size, *datasets.get(t.dataset).shape, device=device)
    with FlopCounterMode(display=False) as counter:
        loss_function(t)(
            model(x), torch.zeros(t.batch_size, dtype=torch.long, device=device)
        ).backward()
    per_example = counter.get_total_flops() / t.batch_size
    return per_example, gflops * 1e9 / per_example


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """The device's float32 matmul rate on square n x n matrices (best of ``repeats``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = sync(device)
        a @ b
        best = min(best, sync(device) - t0)
    return 2 * n**3 / best / 1e9


# the group whose operations per step are counted (ops.py): both optimizer blocks, each of
# one configuration on both seeds
OPS_RUNS = 4


def measure(
    task: str,
    device: torch.device,
    *,
    steps: int = 30,
    repeats: int = 3,
    max_runs: int = 1024,
    max_seconds: float = 60.0,
    task_seconds: float = 900.0,
    precision: str = "fp32",
    root=None,
    log=print,
) -> dict:
    """The figures of one task: every method's run-samples per second (median of
    ``repeats`` turns, after one untimed warm-up turn of every method), the ratios, the
    operations per step of each engine and the floor. A batched measurement slower than
    ``max_seconds`` drops the larger R; past ``task_seconds`` no turn starts (``capped``)."""
    t, start = get_task(task), time.perf_counter()
    autocast(precision, device)  # the run's flags for every method, the standard's first turn too
    splits = data.load(t.dataset, root, device)
    methods = {
        ("standard", 1): lambda: standard(task, steps, device, root),
        ("single", 1): lambda: engine("single", task, steps, device, splits, 1, precision),
    }
    for runs in (r for r in (1, 4, 16, 64, 256, 1024) if r <= max_runs):
        methods[("batched", runs)] = lambda runs=runs: engine(
            "batched", task, steps, device, splits, runs, precision
        )
    times: dict[tuple, list[float]] = {m: [] for m in methods}
    capped = False
    for turn in range(repeats + 1):  # turn 0 warms every method up, untimed
        for method in list(methods):
            if method not in methods:  # dropped this turn: too slow at a smaller R
                continue
            if capped := time.perf_counter() - start > task_seconds:
                break
            seconds = methods[method]()
            times[method] += [seconds] if turn else []
            which = f"turn {turn}" if turn else "warm-up"
            log(f"perf {task} {method[0]} R={method[1]} {which}: {seconds:.3f} s")
            if method[0] == "batched" and seconds > max_seconds:  # larger R: too slow here
                for bigger in [m for m in methods if m[0] == "batched" and m[1] > method[1]]:
                    del methods[bigger], times[bigger]
        if capped:
            log(f"perf {task}: {task_seconds:.0f} s reached, no further turn")
            break
    rate = {m: m[1] * steps * t.batch_size / median(s) for m, s in times.items() if s}
    group = sweep_group(task, OPS_RUNS, 1, precision, eval_size=10)
    flops, floor_rate = floor(task, device, GFLOPS[device.type])
    return {
        "task": task,
        "model": t.model,
        "steps": steps,
        "batch_size": t.batch_size,
        "flops_per_example": flops,
        "floor_run_samples_per_s": floor_rate,
        "capped": capped,
        **operations(group, splits, device),
        "measurements": [
            {"method": m, "runs": r, "seconds": median(times[(m, r)]), "run_samples_per_s": v}
            for (m, r), v in rate.items()
        ],
        "ratios": ratios(rate),
    }


def operations(group: list[RunSpec], splits, device) -> dict:
    """Both counts of ``ops.py`` per update of each engine on ``group``: the single engine's
    per update of one run, the batched engine's per update of the whole group."""
    counts = {name: ops.per_step(name, group, splits, device) for name in ("single", "batched")}
    return {
        f"{kind}_per_step": {
            "runs": len(group),
            "single": getattr(counts["single"], kind) / len(group),
            "batched": getattr(counts["batched"], kind),
        }
        for kind in ("ops", "launches")
    }


def ratios(rate: dict[tuple, float]) -> dict:
    """The methods' ratios (batched at its best R); None where a method has no figure."""
    best = max((m for m in rate if m[0] == "batched"), key=rate.get, default=None)
    standard, single = rate.get(("standard", 1)), rate.get(("single", 1))

    def over(a, b):
        return a / b if a and b else None

    return {
        "single_vs_standard": over(single, standard),
        "batched_vs_standard": over(best and rate[best], standard),
        "batched_vs_single": over(best and rate[best], single),
        "best_runs": best and best[1],
    }


GFLOPS: dict[str, float] = {}  # the device's matmul rate, measured once per process


def run(tasks: list[str], device: torch.device, out: Path = PERF, **kwargs) -> Path:
    """Measure ``tasks`` on ``device`` into ``out/<device>.json``, written again after each
    task (a timeout loses only the task in progress); its path."""
    check_packages(s for task in tasks for s in sweep_group(task, OPS_RUNS, 1))
    GFLOPS[device.type] = matmul_gflops(device)
    name = device_name(device)
    perf = {
        "device": name,
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "precision": kwargs.get("precision", "fp32"),
        "matmul_gflops": GFLOPS[device.type],
        "versions": {
            "python": platform.python_version(),
            **{p: package_version(p) for p in PACKAGES},
            "cuda": torch.version.cuda if device.type == "cuda" else None,
        },
        "measured": time.strftime("%Y-%m-%d"),
        "tasks": [],
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{slug(name)}.json"
    for task in tasks:
        perf["tasks"].append(measure(task, device, **kwargs))
        write_atomic(path, (json.dumps(perf, indent=1) + "\n").encode())
    return path


def slug(device: str) -> str:
    """A perf file's name for a device name: ``AMD EPYC`` -> ``amd-epyc``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", device).strip("-").lower()


def summary(perf: dict) -> str:
    """The perf file as a Markdown table: run-samples per second, the ratios and the
    launches and operators per step (``ops.py``; "-" where an older file has none)."""
    lines = [
        f"{perf['device']} ({perf['threads']} torch thread(s), matmul {perf['matmul_gflops']:.0f} "
        "GFLOP/s)",
        "",
        "| task | standard | single | batched (best R) | single / standard | batched / standard "
        "| batched / single | floor | launches (operators) per step: one run; a group |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in perf["tasks"]:
        rate = {(m["method"], m["runs"]): m["run_samples_per_s"] for m in task["measurements"]}
        r, best = task["ratios"], task["ratios"]["best_runs"]
        ops_, launches = task.get("ops_per_step", {}), task.get("launches_per_step", {})
        lines.append(
            f"| `{task['task']}` | {_n(rate.get(('standard', 1)))} | {_n(rate.get(('single', 1)))} "
            f"| {_n(rate.get(('batched', best)))}{f' (R = {best})' if best else ''} "
            f"| {_x(r['single_vs_standard'])} "
            f"| {_x(r['batched_vs_standard'])} | {_x(r['batched_vs_single'], 2)} "
            f"| {task['floor_run_samples_per_s']:,.0f} "
            f"| {_n(launches.get('single'))} ({_n(ops_.get('single'))}); "
            f"{_n(launches.get('batched'))} ({_n(ops_.get('batched'))}) of "
            f"{ops_.get('runs', '-')} runs |"
        )
    return "\n".join(lines)


def _n(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _x(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"
