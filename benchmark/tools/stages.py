"""The stages of ``python -m benchmark check``, each run in its own process by ``check.py``.

``main(stage, settings, out)`` runs one stage and writes its figures to ``out`` (JSON); an
exception is its failure (exit status 1, the traceback in its log). ``check.py`` runs each
under a time cap and kills it past that, so a hang costs only its stage. Stages:

- ``environment``: versions, the device, its free memory, the precision flags, the matmul
  rate, and whether the device runs a product and the data is prepared (its failure means this
  machine cannot run the benchmark);
- a task name: both engines on a sweep-like group of that task (``perf.sweep_group``), their
  agreement (largest difference of each run's losses and accuracies), time and operations
  per step, and the throughput.

The test hook: ``SCHEDULE_BENCH_CHECK_FAULT="STAGE=hang,STAGE=fail"`` makes those stages hang
(sleep until killed) or fail (raise) as they start; the tests of ``check`` use it.
"""

import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmark.catalogue import datasets
from benchmark.catalogue.tasks import get_task
from benchmark.data import datasets as data
from benchmark.engines.device import autocast, resolve_device, sync, torch_threads
from benchmark.engines.provenance import PACKAGES, device_name, package_version
from benchmark.engines.registry import ENGINES
from benchmark.records.atomic import write_atomic
from benchmark.tools import ops, perf

FAULT_ENV = "SCHEDULE_BENCH_CHECK_FAULT"  # the test hook: "STAGE=hang,STAGE=fail"
GIB = 2**30


def environment(settings: dict) -> dict:
    """What this machine is and whether it can run the benchmark."""
    device = resolve_device(settings["device"])
    cuda = device.type == "cuda"
    precision = settings["precision"] or (settings["sweep_precision"] if cuda else "fp32")
    autocast(precision, device)  # the flags the runs will train under (checks the precision)
    if cuda:
        free, total = torch.cuda.mem_get_info(device)
    else:
        pages = os.sysconf("SC_PAGE_SIZE")
        free, total = os.sysconf("SC_AVPHYS_PAGES") * pages, os.sysconf("SC_PHYS_PAGES") * pages
    for dataset in dict.fromkeys(get_task(t).dataset for t in settings["tasks"]):
        data.check_prepared(datasets.get(dataset), data.data_root(settings["root"]))
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"{device_name(device)} has no bf16: use --precision tf32 or fp32")
    return {
        "versions": {
            "python": platform.python_version(),
            **{p: package_version(p) for p in PACKAGES},
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
        },
        "platform": platform.platform(),
        "device": device_name(device),
        "device_type": device.type,
        "cpu_cores": os.cpu_count(),
        "torch_threads": settings["threads"],  # of each run, as the sweep's
        "free_memory_gib": free / GIB,
        "total_memory_gib": total / GIB,
        "precision": precision,
        "flags": {
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "bf16_supported": torch.cuda.is_bf16_supported() if cuda else None,
        },
        "matmul_gflops": perf.matmul_gflops(device, n=1024),
    }


def engines(task: str, settings: dict) -> dict:
    """Both engines on one sweep-like group of ``task``: agreement, time, operations."""
    device = resolve_device(settings["device"])
    autocast(settings["precision"], device)
    runs, steps, batch = settings["runs"], settings["steps"], get_task(task).batch_size
    splits = data.load(get_task(task).dataset, settings["root"], device)
    specs = perf.sweep_group(task, runs, steps, settings["precision"], settings["eval_size"])
    out, records = {"task": task, "runs": runs, "steps": steps, "batch_size": batch}, {}
    small = perf.sweep_group(task, perf.OPS_RUNS, 1, settings["precision"], eval_size=10)
    for name in ("single", "batched"):
        counts = ops.per_step(name, small, splits, device)  # warms the engine up too
        t0 = sync(device)
        records[name] = ENGINES[name].train(specs, splits, device)
        train_s = sum(r["timing"]["train_s"] for r in records[name])
        out[name] = {
            "engine": sorted({r["engine"] for r in records[name]}),  # a fallback shows here
            "train_s": train_s,  # training only, summed over the runs (the group's time)
            "wall_s": sync(device) - t0,  # evaluation and records included
            "run_step_ms": 1000 * train_s / (runs * steps),
            "run_samples_per_s": runs * steps * batch / train_s,
            "ops_runs": perf.OPS_RUNS,
            "ops_per_group_step": counts.ops,  # of a group of ops_runs runs
            "ops_per_run_step": counts.ops / perf.OPS_RUNS,
            "launches_per_group_step": counts.launches,
            "launches_per_run_step": counts.launches / perf.OPS_RUNS,
        }
    out["agreement"] = agreement(records["single"], records["batched"])
    return out


def agreement(single: list[dict], batched: list[dict]) -> dict:
    """The largest difference between the engines' records of the same runs: of every curve
    loss (relative) and accuracy, the test accuracy, and whether statuses and steps match."""
    loss = acc = 0.0
    same = True
    for a, b in zip(single, batched, strict=True):
        same &= (a["status"], a["budget"]["steps_done"]) == (b["status"], b["budget"]["steps_done"])
        for p, q in zip(a["curve"], b["curve"], strict=True):
            for key in ("train_loss", "val_loss"):
                if p[key] is not None and q[key] is not None:
                    loss = max(loss, abs(p[key] - q[key]) / max(abs(p[key]), 1e-12))
            acc = max(acc, abs(p["val_acc"] - q["val_acc"]))
        acc = max(acc, abs(a["metrics"]["test_acc"] - b["metrics"]["test_acc"]))
    return {"loss_rel": loss, "acc_abs": acc, "same_steps_and_status": same}


def main(stage: str, settings: dict, out: Path) -> None:
    faults = dict(f.split("=", 1) for f in os.environ.get(FAULT_ENV, "").split(",") if "=" in f)
    if faults.get(stage) == "hang":
        time.sleep(10**6)
    if faults.get(stage) == "fail":
        raise RuntimeError(f"failure injected by {FAULT_ENV}")
    t0 = time.perf_counter()
    with torch_threads(settings["threads"]):
        figures = environment(settings) if stage == "environment" else engines(stage, settings)
    figures["work_s"] = time.perf_counter() - t0  # in the stage, torch's import excluded
    write_atomic(out, (json.dumps(figures, indent=1) + "\n").encode())
