"""Write the report's fixture results: synthetic run records shaped like real ones.

    python tests/make_report_fixture.py [OUT]   # default: rewrites tests/fixtures/report_results/

Three tasks of different kinds (convex SGD, MLP AdamW, recurrent Adam) x four schedules, a
3-point lr grid x 1 tuning seed, and 8 paired final seeds. Real specs and keys
(``RunSpec.make``), curves that rise towards a schedule-dependent accuracy, time to target read
off the curve as the engine does. On purpose: a diverged final run, runs that never reach the
hard target (censored), and a schedule whose best lr sits at the edge of the grid. Everything
is drawn from one fixed seed, so rerunning the script gives the same files.
"""

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from benchmark import record as records
from benchmark.metrics import time_to_target
from benchmark.spec import RunSpec
from benchmark.tasks import TASKS

OUT = Path(__file__).resolve().parent / "fixtures" / "report_results"
TASK_NAMES = ("mnist_logreg", "mnist_mlp_adam", "smnist_gru")
# schedule -> (final accuracy offset, convergence rate per epoch, best lr factor on the grid)
SCHEDULES = {
    "constant": (-0.012, 1.2, 1.0),
    "cosine": (0.0, 1.6, 1.0),
    "onecycle": (0.002, 2.2, 3.0),  # best at the grid's upper edge
    "wsd": (-0.001, 1.8, 1.0),
}
BASE = {"mnist_logreg": 0.9215, "mnist_mlp_adam": 0.9815, "smnist_gru": 0.9815}
LR_FACTORS = (0.3, 1.0, 3.0)
TUNE_SEEDS, FINAL_SEEDS = (1000,), tuple(range(8))  # 8: Holm over 3 can reject
RUN = {"epochs": 4, "evals_per_epoch": 2, "train_size": 10000, "eval_size": 5000}
DIVERGED = ("smnist_gru", "onecycle", 2)  # task, schedule, seed of the one diverged run
SEC_PER_STEP = {"mnist_logreg": 0.0006, "mnist_mlp_adam": 0.004, "smnist_gru": 0.02}
PROVENANCE = {
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": False,
    "python": "3.11.7",
    "torch": "2.15.0",
    "torchvision": "0.29.2",
    "numpy": "2.4.6",
    "scipy": "1.17.1",
    "schedulefree": "1.4.1",
    "cuda": None,
    "cudnn": None,
    "device": "Fixture CPU",
    "device_type": "cpu",
    "cpu_threads": 1,
    "deterministic_algorithms": False,
    "cudnn_deterministic": False,
    "cudnn_benchmark": False,
    "platform": "Linux-fixture",
    "timestamp": "2026-11-24T12:00:00+00:00",
}


def record(spec: RunSpec, rng: np.random.Generator, seed_effect: float) -> dict:
    task = TASKS[spec.task]
    offset, rate, best_factor = SCHEDULES[spec.schedule]
    factor = spec.lr / task.lr
    miss = 0.01 * math.log(factor / best_factor) ** 2  # accuracy lost away from the best lr
    final = BASE[spec.task] + offset - miss + seed_effect + rng.normal(0, 0.0015)
    spe = math.ceil(RUN["train_size"] / spec.batch_size)
    total = spe * spec.epochs
    stops = [round(i * spe / spec.evals_per_epoch) for i in range(spec.epochs * 2 + 1)]
    diverged = (spec.task, spec.schedule, spec.seed) == DIVERGED and spec.phase == "final"
    if diverged:
        stops = stops[:4]
    curve, sec = [], SEC_PER_STEP[spec.task] * rng.uniform(0.95, 1.05)
    for i, step in enumerate(stops):
        epoch = step / spe
        acc = final - (final - 0.1) * math.exp(-rate * (epoch + 0.2)) + rng.normal(0, 0.001)
        broken = diverged and i == len(stops) - 1
        curve.append(
            {
                "step": step,
                "epoch": epoch,
                "samples": step * spec.batch_size,
                "lr": spec.lr,
                "train_loss": None if step == 0 or broken else round(1.5 * (1 - acc), 6),
                "val_loss": None if broken else round(1.2 * (1 - acc), 6),
                "val_acc": 0.098 if broken else round(min(acc, 0.999), 4),
                "wall_s": step * sec,
            }
        )
    test_acc = 0.098 if diverged else final + rng.normal(0, 0.001)
    test_acc = round(test_acc * RUN["eval_size"]) / RUN["eval_size"]  # whole test examples
    per_class = [round(min(1.0, test_acc + rng.normal(0, 0.01)), 4) for _ in range(10)]
    vals = [p["val_acc"] for p in curve]
    return {
        "schema": 1,  # the layout before task and optimizer family (still read)
        "key": spec.key,
        "spec": spec.to_dict(),
        "status": "diverged" if diverged else "ok",
        "diverged_at_step": stops[-1] - 3 if diverged else None,
        "stopped_early_at_step": None,
        "budget": {
            "steps_per_epoch": spe,
            "total_steps": total,
            "steps_done": stops[-1],
            "train_examples": RUN["train_size"],
            "dev_examples": RUN["eval_size"],
            "test_examples": RUN["eval_size"],
        },
        "metrics": {
            "test_loss": None if diverged else round(1.2 * (1 - test_acc), 6),
            "test_acc": test_acc,
            "test_macro_f1": round(test_acc - 0.001, 4),
            "test_macro_precision": round(test_acc - 0.0005, 4),
            "test_macro_recall": round(test_acc - 0.001, 4),
            "test_roc_auc_ovr": None if diverged else round(0.99 + 0.009 * test_acc, 4),
            "test_per_class_acc": per_class,
            "val_acc_final": vals[-1],
            "val_loss_final": curve[-1]["val_loss"],
            "val_acc_best": max(vals),
            "train_loss_final": curve[-1]["train_loss"],
        },
        "time_to_target": time_to_target(curve, task.targets),
        "curve": curve,
        "optimizer": {"class": task.optimizer, "settings": {"lr": spec.lr}},
        "engine": "single",
        "timing": {"train_s": stops[-1] * sec, "eval_s": 0.05 * len(stops)},
        "provenance": PROVENANCE,
    }


def main(out: Path = OUT) -> None:
    rng = np.random.default_rng(20261124)
    shutil.rmtree(out, ignore_errors=True)
    (out / "runs").mkdir(parents=True)
    seed_effects = {s: rng.normal(0, 0.002) for s in (*TUNE_SEEDS, *FINAL_SEEDS)}  # paired
    for name in TASK_NAMES:
        for schedule, (_, _, best_factor) in SCHEDULES.items():
            for factor in LR_FACTORS:
                lr = TASKS[name].lr * factor
                for seed in TUNE_SEEDS:
                    spec = RunSpec.make(name, schedule, seed, lr=lr, phase="tune", **RUN)
                    records.write(
                        out / "runs" / f"{spec.key}.json", record(spec, rng, seed_effects[seed])
                    )
            lr = TASKS[name].lr * best_factor  # the grid point the selection rule picks
            for seed in FINAL_SEEDS:
                spec = RunSpec.make(name, schedule, seed, lr=lr, phase="final", **RUN)
                rec = record(spec, rng, seed_effects[seed])
                records.write(out / "runs" / f"{spec.key}.json", rec)
    sweep = {
        "name": "fixture",
        "description": "synthetic records for the report's tests",
        "tasks": list(TASK_NAMES),
        "schedules": list(SCHEDULES),
        "run": RUN,
        "tune_seeds": list(TUNE_SEEDS),
        "lr_factors": list(LR_FACTORS),
        "centre": "task",
        "final_seeds": list(FINAL_SEEDS),
        "plugins": [],
        "schedule_params": {},
    }
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    print(f"wrote {len(list((out / 'runs').glob('*.json')))} records to {out}")


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:2]))
