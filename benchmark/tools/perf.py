"""The perf harness: training throughput of three ways to train, side by side in one process.

For one task and the same number of updates:

- ``standard``: the PyTorch pattern of pytorch/examples' mnist: a torchvision dataset with
  ``ToTensor`` and ``Normalize`` transforms, a shuffling ``DataLoader``, ``loss.item()`` every
  update (on CUDA one loader worker and pinned memory, as there);
- ``single``: the single engine (``benchmark/engines/single.py``), one run;
- ``batched``: the batched engine (``benchmark/engines/batched.py``) at R = 1, 4, 16, 64, ...
  runs at once (16 runs per seed, as a sweep's phase shares seeds), while memory and ``max_seconds``
  allow.

Both engines train through the engine contract (``ENGINES[name].train``), as a sweep does.
Each is timed from the first update to the last with device synchronisation, evaluation
excluded, and given as run-samples per second (training examples per second summed over the
runs). The methods take turns ``repeats`` times and the median counts, so a busy machine
slows them alike and the ratios stand. Beside them: the floor, what the device's measured
matmul rate allows for the model's FLOPs per example (forward and backward, counted by
``torch.utils.flop_counter``). ``write`` puts every task's figures in
``results/perf/<device>.json``; the report draws its speed chart from that folder.
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
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.batched import chunk_size
from benchmark.engines.device import sync
from benchmark.engines.provenance import PACKAGES, device_name, package_version
from benchmark.engines.registry import ENGINES
from benchmark.engines.semantics import build_model, loss_function
from benchmark.records.atomic import write_atomic
from benchmark.records.folders import PERF

RUNS_PER_SEED = 16  # a sweep's phase: each seed's runs share batches (17 schedules per seed)


def perf_spec(task: str, steps: int, seed: int = 0, lr: float | None = None) -> RunSpec:
    """A run of ``steps`` updates: one epoch of ``steps`` batches, one evaluation (untimed)."""
    t = get_task(task)
    return RunSpec.make(
        task, "cosine", seed=seed, lr=lr or t.lr, epochs=1, train_size=steps * t.batch_size,
        eval_size=1000, evals_per_epoch=1,
    )  # fmt: skip


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


def engine(name: str, task: str, steps: int, device, splits, runs: int = 1) -> float:
    """Training seconds of ``runs`` runs through ``ENGINES[name]``, as a sweep trains them
    (a batched engine's fallback, chunks and out-of-memory halving included): the sum of the
    records' ``train_s`` (a group's time shared evenly among its runs)."""
    specs = [
        perf_spec(task, steps, seed=r // RUNS_PER_SEED, lr=get_task(task).lr * (1 + r / runs))
        for r in range(runs)
    ]
    records = ENGINES[name].train(specs, splits, device)
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


def measure(
    task: str,
    device: torch.device,
    *,
    steps: int = 30,
    repeats: int = 3,
    max_runs: int = 1024,
    max_seconds: float = 60.0,
    root=None,
    log=print,
) -> dict:
    """The figures of one task: every method's run-samples per second (median of
    ``repeats`` turns), the ratios, and the floor."""
    t = get_task(task)
    splits = data.load(t.dataset, root, device)
    budget = chunk_size(build_model(t, 0, device), [perf_spec(task, steps)] * max_runs, device)
    sizes = [r for r in (1, 4, 16, 64, 256, 1024) if r <= min(budget, max_runs)]
    methods = {
        ("standard", 1): lambda: standard(task, steps, device, root),
        ("single", 1): lambda: engine("single", task, steps, device, splits),
    }
    for runs in sizes:
        methods[("batched", runs)] = lambda runs=runs: engine(
            "batched", task, steps, device, splits, runs
        )
    times: dict[tuple, list[float]] = {m: [] for m in methods}
    for turn in range(repeats):
        for method, fn in list(methods.items()):
            if method not in methods:  # dropped this turn: too slow at a smaller R
                continue
            seconds = fn()
            times[method].append(seconds)
            log(f"perf {task} {method[0]} R={method[1]} turn {turn + 1}: {seconds:.3f} s")
            if method[0] == "batched" and seconds > max_seconds:  # larger R: too slow here
                for bigger in [m for m in methods if m[0] == "batched" and m[1] > method[1]]:
                    del methods[bigger], times[bigger]
    rate = {m: m[1] * steps * t.batch_size / median(s) for m, s in times.items() if s}
    best = max((r for m, r in rate.items() if m[0] == "batched"), default=float("nan"))
    flops, floor_rate = floor(task, device, GFLOPS[device.type])
    return {
        "task": task,
        "steps": steps,
        "batch_size": t.batch_size,
        "flops_per_example": flops,
        "floor_run_samples_per_s": floor_rate,
        "measurements": [
            {"method": m, "runs": r, "seconds": median(times[(m, r)]), "run_samples_per_s": v}
            for (m, r), v in rate.items()
        ],
        "ratios": {
            "single_vs_standard": rate[("single", 1)] / rate[("standard", 1)],
            "batched_vs_standard": best / rate[("standard", 1)],
            "batched_vs_single": best / rate[("single", 1)],
            "best_runs": max((m for m in rate if m[0] == "batched"), key=rate.get)[1],
        },
    }


GFLOPS: dict[str, float] = {}  # the device's matmul rate, measured once per process


def run(tasks: list[str], device: torch.device, out: Path = PERF, **kwargs) -> Path:
    """Measure ``tasks`` on ``device`` and write ``out/<device>.json``; its path."""
    GFLOPS[device.type] = matmul_gflops(device)
    name = device_name(device)
    perf = {
        "device": name,
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "matmul_gflops": GFLOPS[device.type],
        "versions": {
            "python": platform.python_version(),
            **{p: package_version(p) for p in PACKAGES},
            "cuda": torch.version.cuda if device.type == "cuda" else None,
        },
        "measured": time.strftime("%Y-%m-%d"),
        "tasks": [measure(task, device, **kwargs) for task in tasks],
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower()}.json"
    write_atomic(path, (json.dumps(perf, indent=1) + "\n").encode())
    return path


def summary(perf: dict) -> str:
    """The perf file as a Markdown table: run-samples per second and the ratios."""
    lines = [
        f"{perf['device']} ({perf['threads']} torch thread(s), matmul {perf['matmul_gflops']:.0f} "
        "GFLOP/s)",
        "",
        "| task | standard | single | batched (best R) | single / standard | batched / standard "
        "| batched / single | floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in perf["tasks"]:
        rate = {(m["method"], m["runs"]): m["run_samples_per_s"] for m in task["measurements"]}
        ratios, best = task["ratios"], task["ratios"]["best_runs"]
        lines.append(
            f"| `{task['task']}` | {rate[('standard', 1)]:,.0f} | {rate[('single', 1)]:,.0f} "
            f"| {rate[('batched', best)]:,.0f} (R = {best}) | {ratios['single_vs_standard']:.1f}x "
            f"| {ratios['batched_vs_standard']:.1f}x | {ratios['batched_vs_single']:.2f}x "
            f"| {task['floor_run_samples_per_s']:,.0f} |"
        )
    return "\n".join(lines)
