"""Write the report's fixture results: synthetic run records shaped like real ones (schema 4).

    python tests/make_report_fixture.py [FOLDER]   # default: rewrites tests/fixtures/report_*/

``report_results/``: three tasks of different kinds (convex SGD, MLP AdamW, recurrent Adam) x
four schedules at one budget (4 epochs), a 3-point lr grid x 1 tuning seed, 8 paired final
seeds. On purpose: a diverged final run, runs that never reach the hard target (censored), and
a schedule whose best lr sits at the edge of the grid.

``report_budgets/``: two tasks x four schedules at two budgets (1 and 3 epochs), each budget
with its own tuning runs and the same 8 final seeds. On fmnist_mlp the order of the schedules
reverses with the budget (constant best at 1 epoch, worst at 3) and its own targets are out
of reach at 1 epoch; on mnist_logreg the order holds. Decaying schedules progress with the
fraction of the budget, constant with epochs, so a longer budget reaches a target later in
steps for them.

Real specs and keys (``RunSpec.make``), task kind and optimizer family from the registries,
curves that rise towards a schedule-dependent accuracy, time to target read off the curve as the
engine does, the digests of the schedule's lr and momentum over the updates made, and test
results (``test_results``): which test examples a run got right (the easiest by a per-task
difficulty plus the run's own noise, as many as its accuracy says, so runs pair example by
example), and macro ROC and precision-recall curves whose areas are its ROC-AUC and average
precision. Each fixture is drawn from its own fixed seed, so rerunning the script gives the
same files; the test results from a generator seeded by the run's key, so adding them moved
no other number.
"""

import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from benchmark.catalogue.optimizers import get_optimizer
from benchmark.catalogue.schedules import Budget, sequences
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import TASKS
from benchmark.engines.semantics import sequence_digest
from benchmark.records import record as records
from benchmark.records.metrics import CURVE_GRID, pack_bits, time_to_target

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEDULES = {  # schedule -> (convergence rate per epoch, best lr factor on the grid)
    "constant": (1.2, 1.0),
    "cosine": (1.6, 1.0),
    "onecycle": (2.2, 3.0),  # best at the grid's upper edge
    "wsd": (1.8, 1.0),
}
OFFSETS = {"constant": -0.012, "cosine": 0.0, "onecycle": 0.002, "wsd": -0.001}  # accuracy
LR_FACTORS = (0.3, 1.0, 3.0)
TUNE_SEEDS, FINAL_SEEDS = (1000,), tuple(range(8))  # 8: Holm over 3 can reject
SEC_PER_STEP = {"mnist_logreg": 0.0006, "fmnist_mlp": 0.004, "mnist_mlp_adam": 0.004,
                "smnist_gru": 0.02}  # fmt: skip
BASE = {"mnist_logreg": 0.9215, "mnist_mlp_adam": 0.9815, "smnist_gru": 0.9815}  # 4 epochs
BY_BUDGET = {  # (task, epochs) -> schedule -> mean final accuracy; fmnist_mlp's order reverses
    ("mnist_logreg", 1): {"onecycle": 0.913, "cosine": 0.912, "wsd": 0.909, "constant": 0.901},
    ("mnist_logreg", 3): {"onecycle": 0.921, "cosine": 0.92, "wsd": 0.917, "constant": 0.909},
    ("fmnist_mlp", 1): {"constant": 0.848, "wsd": 0.8475, "cosine": 0.842, "onecycle": 0.836},
    ("fmnist_mlp", 3): {"onecycle": 0.871, "cosine": 0.87, "wsd": 0.8695, "constant": 0.859},
}
DESIGNS = {  # folder -> what it holds; accuracy: (task, epochs) -> schedule -> final accuracy
    "report_results": {
        "seed": 20261124,
        "run": {"evals_per_epoch": 2, "train_size": 10000, "eval_size": 5000},
        "accuracy": {(t, 4): {s: b + o for s, o in OFFSETS.items()} for t, b in BASE.items()},
        "speed": 1.0,  # rate multiplier
        "horizon": {},  # schedule -> h: progress per epoch scales as epochs^-h
        "diverged": ("smnist_gru", "onecycle", 2),  # task, schedule, seed of a diverged run
    },
    "report_budgets": {
        "seed": 20261125,
        "run": {"evals_per_epoch": 4, "train_size": 10000, "eval_size": 5000},
        "accuracy": BY_BUDGET,
        "speed": 4.0,
        "horizon": {"constant": 0.0, "wsd": 0.5, "cosine": 1.0, "onecycle": 1.0},
        "diverged": None,
    },
}
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


def curve(spec: RunSpec, rng, final: float, rate: float, diverged: bool) -> list[dict]:
    """Dev evaluations rising from 0.1 towards ``final`` at ``rate`` per epoch."""
    spe = math.ceil(spec.train_size / spec.batch_size)
    evals = spec.epochs * spec.evals_per_epoch
    stops = [round(i * spe / spec.evals_per_epoch) for i in range(evals + 1)]
    stops = stops[:4] if diverged else stops
    points, sec = [], SEC_PER_STEP[spec.task] * rng.uniform(0.95, 1.05)
    for i, step in enumerate(stops):
        epoch = step / spe
        acc = final - (final - 0.1) * math.exp(-rate * (epoch + 0.2)) + rng.normal(0, 0.001)
        broken = diverged and i == len(stops) - 1
        points.append(
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
    return points


def test_results(spec: RunSpec, test_acc: float, roc_auc, ap) -> dict:
    """The record's ``test`` field: the first ``eval_size`` of a per-task set of labels, the
    ``test_acc`` share of them right, and curves ``tpr = fpr ** (1 / roc_auc - 1)`` and
    ``precision = 1 - 5 (1 - ap) recall ** 4``, whose areas are ``roc_auc`` and ``ap``."""
    task_rng = np.random.default_rng(sum(map(ord, spec.task)))  # the task's test examples
    labels, difficulty = task_rng.integers(0, 10, spec.eval_size), task_rng.random(spec.eval_size)
    noise = np.random.default_rng(int(spec.key, 16)).normal(0, 0.1, spec.eval_size)
    correct = np.zeros(spec.eval_size, bool)
    correct[np.argsort(difficulty + noise)[: round(test_acc * spec.eval_size)]] = True
    scored = roc_auc is not None
    return {
        "split": "test",
        "examples": spec.eval_size,
        "labels_digest": hashlib.sha256(labels.astype("<i8").tobytes()).hexdigest()[:16],
        "correct": pack_bits(correct),
        "curves": {
            "grid": CURVE_GRID.tolist(),
            "roc_tpr": np.round(CURVE_GRID ** (1 / roc_auc - 1), 6).tolist() if scored else None,
            "pr_precision": np.round(1 - 5 * (1 - ap) * CURVE_GRID**4, 6).tolist()
            if scored
            else None,
        },
    }


def record(spec: RunSpec, rng, design: dict, seed_effect: float) -> dict:
    task, (rate, best_factor) = TASKS[spec.task], SCHEDULES[spec.schedule]
    miss = 0.01 * math.log(spec.lr / task.lr / best_factor) ** 2  # lost away from the best lr
    mean = design["accuracy"][spec.task, spec.epochs][spec.schedule]
    final = mean - miss + seed_effect + rng.normal(0, 0.0015)
    rate *= design["speed"] / spec.epochs ** design["horizon"].get(spec.schedule, 0.0)
    diverged = (spec.task, spec.schedule, spec.seed) == design["diverged"] and spec.phase == "final"
    points = curve(spec, rng, final, rate, diverged)
    test_acc = 0.098 if diverged else final + rng.normal(0, 0.001)
    test_acc = round(test_acc * spec.eval_size) / spec.eval_size  # whole test examples
    per_class = [round(min(1.0, test_acc + rng.normal(0, 0.01)), 4) for _ in range(10)]
    vals, spe = [p["val_acc"] for p in points], math.ceil(spec.train_size / spec.batch_size)
    train_s = points[-1]["wall_s"]
    seq = sequences(spec.schedule, spec.lr, Budget(spe * spec.epochs, spe), spec.schedule_params)
    done = points[-1]["step"]
    roc_auc = None if diverged else round(0.99 + 0.009 * test_acc, 4)
    ap = None if diverged else round(test_acc - 0.0008, 4)
    return {
        "schema": 4,
        "key": spec.key,
        "spec": spec.to_dict(),
        "task": {
            "kind": task.kind,
            "dataset": task.dataset,
            "model": task.model,
            "targets": list(task.targets),
        },
        "status": "diverged" if diverged else "ok",
        "diverged_at_step": points[-1]["step"] - 3 if diverged else None,
        "stopped_early_at_step": None,
        "budget": {
            "steps_per_epoch": spe,
            "total_steps": spe * spec.epochs,
            "steps_done": points[-1]["step"],
            "train_examples": spec.train_size,
            "dev_examples": spec.eval_size,
            "test_examples": spec.eval_size,
        },
        "metrics": {
            "test_loss": None if diverged else round(1.2 * (1 - test_acc), 6),
            "test_acc": test_acc,
            "test_macro_f1": round(test_acc - 0.001, 4),
            "test_macro_precision": round(test_acc - 0.0005, 4),
            "test_macro_recall": round(test_acc - 0.001, 4),
            "test_roc_auc_ovr": roc_auc,
            "test_macro_ap": ap,
            "test_per_class_acc": per_class,
            "val_acc_final": vals[-1],
            "val_loss_final": points[-1]["val_loss"],
            "val_acc_best": max(vals),
            "train_loss_final": points[-1]["train_loss"],
        },
        "test": test_results(spec, test_acc, roc_auc, ap),
        "time_to_target": time_to_target(points, task.targets),
        "curve": points,
        "digests": {
            "lr": sequence_digest(seq.lr[:done]),
            "momentum": None if seq.momentum is None else sequence_digest(seq.momentum[:done]),
        },
        "optimizer": {
            "name": spec.optimizer,
            "family": get_optimizer(spec.optimizer).family,
            "class": task.optimizer,
            "settings": {"lr": spec.lr},
        },
        "engine": "single",
        "timing": {
            "train_s": train_s,
            "eval_s": 0.05 * len(points),
            "group_train_s": train_s,
            "group_runs": 1,
        },
        "provenance": PROVENANCE,
    }


def write(out: Path, design: dict) -> None:
    """One fixture folder: runs/<key>.json for every tune and final run, and sweep.json."""
    rng = np.random.default_rng(design["seed"])
    shutil.rmtree(out, ignore_errors=True)
    (out / "runs").mkdir(parents=True)
    seed_effects = {s: rng.normal(0, 0.002) for s in (*TUNE_SEEDS, *FINAL_SEEDS)}  # paired
    for task, epochs in design["accuracy"]:
        run = {"epochs": epochs, **design["run"]}
        for schedule, (_, best_factor) in SCHEDULES.items():
            for phase, factors, seeds in (("tune", LR_FACTORS, TUNE_SEEDS),
                                          ("final", (best_factor,), FINAL_SEEDS)):  # fmt: skip
                for factor in factors:  # final: the grid point the selection rule picks
                    lr = TASKS[task].lr * factor
                    for seed in seeds:
                        spec = RunSpec.make(task, schedule, seed, lr=lr, phase=phase, **run)
                        rec = record(spec, rng, design, seed_effects[seed])
                        records.write(out / "runs" / f"{spec.key}.json", rec)
    budgets = sorted({e for _, e in design["accuracy"]})
    sweep = {
        "name": f"fixture{'-budgets' if len(budgets) > 1 else ''}",
        "description": "synthetic records for the report's tests",
        "tasks": list(dict.fromkeys(t for t, _ in design["accuracy"])),
        "schedules": list(SCHEDULES),
        "run": {"epochs": budgets if len(budgets) > 1 else budgets[0], **design["run"]},
        **({"budgets": budgets} if len(budgets) > 1 else {}),
        "tune_seeds": list(TUNE_SEEDS),
        "lr_factors": list(LR_FACTORS),
        "centre": "task",
        "final_seeds": list(FINAL_SEEDS),
        "plugins": [],
        "schedule_params": {},
    }
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    print(f"wrote {len(list((out / 'runs').glob('*.json')))} records to {out}")


def main(folder: Path = FIXTURES) -> None:
    for name, design in DESIGNS.items():
        write(Path(folder) / name, design)


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:2]))
