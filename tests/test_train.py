"""The single-run engine (benchmark/engines/single.py), its record, tasks, optimizers and the CLI.

Runs use the in-memory ``digits`` problem (conftest.py) in place of each task's dataset, so
they take well under a second each on the CPU.
"""

import base64
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.catalogue import optimizers as optim
from benchmark.catalogue.errors import InputError
from benchmark.catalogue.schedules import SCHEDULES, Plateau, sequences
from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import TASKS, markdown_table
from benchmark.cli import main
from benchmark.engines.semantics import (
    build_model,
    evaluation_steps,
    run_examples,
    samples_seen,
    seeds,
    sequence_digest,
    train_rows,
)
from benchmark.engines.single import SingleRun, train
from benchmark.records import record as records
from benchmark.records.metrics import time_to_target
from testkit import record_fields, untimed

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
SMALL = {"epochs": 2, "batch_size": 32, "evals_per_epoch": 2}  # 300 examples: 10 steps / epoch


def run(task="mnist_logreg", schedule="constant", seed=0, splits=None, **fields):
    spec = RunSpec.make(task, schedule, seed=seed, **(SMALL | fields))
    return SingleRun(spec, splits, CPU)


# ------------------------------------------------------------------------------ every task


@pytest.mark.parametrize("task", list(TASKS))
def test_loss_falls_for_every_task(digit_tasks, task):
    record = run(task, "cosine", splits=digit_tasks, epochs=5).run()
    first, last = record["curve"][1], record["curve"][-1]
    assert record["status"] == "ok"
    assert last["train_loss"] < 0.7 * first["train_loss"], record["curve"]
    assert last["val_loss"] < record["curve"][0]["val_loss"]


def test_tasks_are_complete():
    kinds = {(t.dataset, t.model, t.optimizer) for t in TASKS.values()}
    assert len(kinds) == len(TASKS)  # no two tasks alike
    for task in TASKS.values():
        assert len(task.targets) >= 2
        assert task.targets == tuple(sorted(task.targets))
        optim.check_settings(task.optimizer, task.optimizer_params)  # valid defaults


def test_readme_lists_the_tasks():
    assert markdown_table() in (ROOT / "README.md").read_text()


# ------------------------------------------------------------------------------ the record


def schema_fields() -> set[str]:
    """The field paths documented in results/SCHEMA.md's tables."""
    text = (ROOT / "results" / "SCHEMA.md").read_text().split("## Perf files")[0]
    return set(re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE))


def test_record_matches_schema(digit_tasks, tmp_path):
    record = run(splits=digit_tasks).run()
    reached = {**record, "time_to_target": {"0.5": record["curve"][-1]}}  # every subfield
    fields = record_fields(reached) - {"time_to_target.<target>.val_acc"}
    fields -= {f"time_to_target.<target>.{k}" for k in ("lr", "train_loss", "val_loss")}
    assert "fallback" not in record  # only where the batched engine gave a run up (test_fallback)
    assert "cuda_graphs" not in record["timing"]  # only where steps were replayed from graphs
    assert fields == schema_fields() - {"fallback", "timing.cuda_graphs"}
    assert record["schema"] == 4
    assert record["key"] == RunSpec(**record["spec"]).key
    records.write(tmp_path / "r.json", record)  # JSON without NaN
    assert records.read(tmp_path / "r.json") == json.loads(json.dumps(record))


def test_record_says_which_test_examples_the_run_got_right(digit_tasks):
    spec = RunSpec.make("mnist_mlp", "constant", seed=0, eval_size=90, **SMALL)
    single = SingleRun(spec, digit_tasks, CPU)
    record = single.run()
    labels = digit_tasks.test.labels[:90]
    expected = (single.logits(single.data.test_x).argmax(1) == labels).numpy()
    np.testing.assert_array_equal(records.correct(record), expected)
    assert records.correct(record).mean() == record["metrics"]["test_acc"]
    test = record["test"]
    assert (test["split"], test["examples"]) == ("test", 90)
    digest = hashlib.sha256(labels.numpy().astype("<i8").tobytes()).hexdigest()[:16]
    assert test["labels_digest"] == digest  # the same 90 examples: the same digest
    assert len(base64.b64decode(test["correct"])) == 12  # 90 bits, 8 a byte
    grid = test["curves"]["grid"]
    assert len(grid) == len(test["curves"]["roc_tpr"]) == len(test["curves"]["pr_precision"])
    assert test["curves"]["roc_tpr"][-1] == 1.0  # every positive found at FPR 1
    assert records.correct({"schema": 3}) is None  # older records kept only the count


def test_curve_follows_the_budget(digit_tasks):
    record = run(splits=digit_tasks, epochs=2, evals_per_epoch=3).run()
    steps = [p["step"] for p in record["curve"]]
    assert steps == [0, 3, 7, 10, 13, 17, 20]  # 10 steps per epoch, round(10 j / 3)
    assert record["budget"] == {
        "steps_per_epoch": 10, "total_steps": 20, "steps_done": 20,
        "train_examples": 300, "dev_examples": 100, "test_examples": 100,
    }  # fmt: skip
    assert [p["samples"] for p in record["curve"]][1:4] == [96, 224, 300]
    assert record["curve"][0]["train_loss"] is None
    times = [p["wall_s"] for p in record["curve"]]
    assert times == sorted(times)
    assert record["metrics"]["val_acc_best"] == max(p["val_acc"] for p in record["curve"])


def test_evaluation_steps_and_samples():
    budget = RunSpec.make("mnist_logreg", "constant", batch_size=128).budget()
    assert budget.steps_per_epoch == 391  # 50,000 / 128, the last batch of 80
    steps = evaluation_steps(budget)
    assert steps[:5] == [0, 98, 196, 293, 391]
    assert steps[-1] == budget.total_steps
    assert samples_seen(391, 391, 128, 50_000) == 50_000
    assert samples_seen(390, 391, 128, 50_000) == 49_920
    assert samples_seen(393, 391, 128, 50_000) == 50_256


def test_same_spec_same_record(digit_tasks):
    first = run("mnist_mlp", "onecycle", splits=digit_tasks).run()
    second = run("mnist_mlp", "onecycle", splits=digit_tasks).run()
    assert untimed(first) == untimed(second)
    other_seed = run("mnist_mlp", "onecycle", seed=1, splits=digit_tasks).run()
    assert other_seed["curve"][-1]["val_loss"] != first["curve"][-1]["val_loss"]


def test_seed_pairs_runs_across_schedules(digit_tasks):
    """Same seed: same initial weights and batches, whatever the schedule (a paired design)."""
    a = run(schedule="cosine", splits=digit_tasks).run()
    b = run(schedule="linear", splits=digit_tasks).run()
    assert a["curve"][0]["val_loss"] == b["curve"][0]["val_loss"]
    state = torch.get_rng_state()
    w0 = build_model(TASKS["mnist_mlp"], 3, CPU).state_dict()
    w1 = build_model(TASKS["mnist_mlp"], 3, CPU).state_dict()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched
    assert len(set(seeds(0)) | set(seeds(1))) == 6


def test_seeds_draw_their_own_training_subset(digit_tasks):
    """With train_size below the split, each seed its own examples (``subset = "first"``: the
    split's first for every seed); dev and test are every run's; all standardised alike."""
    spec = RunSpec.make("mnist_mlp", "cosine", seed=0, train_size=100, eval_size=50)
    available = len(digit_tasks.train)
    rows = {seed: train_rows(replace(spec, seed=seed), available) for seed in (0, 1)}
    assert len(set(rows[0].tolist())) == len(set(rows[1].tolist())) == 100
    assert set(rows[0].tolist()) != set(rows[1].tolist())
    assert torch.equal(rows[0], train_rows(spec, available))  # reproducible from the seed
    assert torch.equal(train_rows(replace(spec, subset="first"), available), torch.arange(100))
    assert train_rows(replace(spec, train_size=None), available) is None
    a, b = (run_examples(replace(spec, seed=seed), digit_tasks) for seed in (0, 1))
    assert torch.equal(a.dev_x, b.dev_x)
    assert torch.equal(a.test_y, b.test_y)
    mean, std = digit_tasks.train.standardisation
    expected = (digit_tasks.train.images[rows[1]].float() / 255 - mean) / std
    assert torch.equal(b.train_x, expected)
    assert torch.equal(b.train_y, digit_tasks.train.labels[rows[1]])


# ------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize("schedule", [*SCHEDULES, "examples.user_schedule:halve_every_3_epochs"])
def test_every_schedule_runs(digit_tasks, schedule):
    record = run(schedule=schedule, splits=digit_tasks, epochs=1).run()
    assert record["status"] == "ok"
    assert record["budget"]["steps_done"] == 10
    if schedule not in ("plateau",):  # curve lr: that of the latest update
        spec = RunSpec(**record["spec"])
        lr = sequences(schedule, spec.lr, spec.budget()).lr
        assert [p["lr"] for p in record["curve"][1:]] == pytest.approx(lr[[4, 9]], rel=1e-12)


@pytest.mark.parametrize(("task", "key"), [("mnist_mlp", "momentum"), ("mnist_mlp_adam", "betas")])
def test_cycled_momentum_reaches_the_optimizer(digit_tasks, task, key):
    single = run(task, "onecycle", splits=digit_tasks, epochs=1)
    seen = []
    step = single.opt.step

    def spy(*args, **kwargs):
        value = single.opt.param_groups[0][key]
        seen.append(value[0] if key == "betas" else value)
        return step(*args, **kwargs)

    single.opt.step = spy
    single.run()
    expected = sequences("onecycle", single.spec.lr, single.budget).momentum
    assert seen == pytest.approx(expected, rel=1e-12)


def test_plateau_cuts_the_lr_when_dev_loss_stalls(digit_tasks):
    record = run(
        schedule="plateau", lr=1e-12, splits=digit_tasks, epochs=3, evals_per_epoch=4,
        schedule_params={"patience": 1, "factor": 0.5, "eps": 0.0},  # eps: cuts below 1e-8 count
    ).run()  # fmt: skip
    lrs = [p["lr"] for p in record["curve"]]
    assert lrs == sorted(lrs, reverse=True)
    assert lrs[-1] <= lrs[0] * 0.5**3
    assert set(np.round(np.log2(np.array(lrs) / lrs[0]), 9)) <= {0.0, -1.0, -2.0, -3.0, -4.0, -5.0}


def applied(single: SingleRun, key: str) -> list[float]:
    """Train ``single``; the ``key`` of its optimizer's first group at every update."""
    seen, step = [], single.opt.step

    def spy(*args, **kwargs):
        value = single.opt.param_groups[0][key]
        seen.append(value[0] if key == "betas" else value)
        return step(*args, **kwargs)

    single.opt.step = spy
    single.record_ = single.run()
    return seen


@pytest.mark.parametrize(
    ("schedule", "params", "fields"),
    [
        ("plateau", {"patience": 0, "threshold": 0.5}, {"epochs": 3, "evals_per_epoch": 4}),
        ("onecycle", {}, {}),
        ("cosine", {}, {"early_stopping": 1, "epochs": 4, "evals_per_epoch": 4}),
        ("constant", {}, {"lr": 1e38}),  # diverges: the updates made, not the budget
    ],
)
def test_digests_are_of_what_the_optimizer_applied(digit_tasks, schedule, params, fields):
    single = run("mnist_mlp", schedule, splits=digit_tasks, schedule_params=params, **fields)
    lrs = applied(single, "lr")
    record = single.record_
    assert len(lrs) == record["budget"]["steps_done"]
    assert record["digests"]["lr"] == sequence_digest(lrs)
    spec = RunSpec(**record["spec"])
    momentum = sequences(schedule, spec.lr, spec.budget(), params).momentum
    if momentum is None:
        assert record["digests"]["momentum"] is None
    else:  # cycled: what the optimizer's momentum was at each update
        assert record["digests"]["momentum"] == sequence_digest(momentum[: len(lrs)])
    if schedule == "plateau":
        assert len(set(lrs)) > 1  # it cut
    if schedule in ("cosine", "constant"):
        assert len(lrs) < spec.budget().total_steps  # stopped early, or diverged


def test_identical_sequences_have_equal_digests(digit_tasks):
    """A plateau that never cuts and a step that never comes within the budget are constant."""
    digest = {}
    for name, schedule, params in [
        ("constant", "constant", {}), ("plateau", "plateau", {"patience": 100}),
        ("late step", "step", {"step_size": 1000}), ("step", "step", {"step_size": 1}),
    ]:  # fmt: skip
        record = run(schedule=schedule, splits=digit_tasks, schedule_params=params).run()
        digest[name] = record["digests"]["lr"]
    assert digest["constant"] == digest["plateau"] == digest["late step"] != digest["step"]


@pytest.mark.parametrize(("mode", "metric"), [("min", "val_loss"), ("max", "val_acc")])
def test_plateau_is_fed_the_metric_its_mode_names(digit_tasks, monkeypatch, mode, metric):
    fed = []
    step = Plateau.step
    monkeypatch.setattr(Plateau, "step", lambda self, value: fed.append(value) or step(self, value))
    record = run(schedule="plateau", splits=digit_tasks, schedule_params={"mode": mode}).run()
    assert fed == [p[metric] for p in record["curve"][1:]]


def test_plateau_keeps_the_lr_while_dev_loss_improves(digit_tasks):
    record = run(schedule="plateau", splits=digit_tasks, schedule_params={"patience": 2}).run()
    losses = [p["val_loss"] for p in record["curve"]]
    assert losses == sorted(losses, reverse=True)  # improving at every evaluation
    assert {p["lr"] for p in record["curve"]} == {record["spec"]["lr"]}


@pytest.mark.parametrize("task", ["mnist_mlp", "mnist_mlp_adam"])
def test_schedule_free_evaluates_the_averaged_weights(digit_tasks, task):
    single = run(task, "schedule_free", splits=digit_tasks)
    record = single.run()
    assert record["optimizer"]["class"].endswith("ScheduleFree")
    dev_x, dev_y = single.data.dev_x, single.data.dev_y
    single._eval_mode()
    with torch.no_grad():
        averaged = torch.nn.functional.cross_entropy(single.model(dev_x), dev_y)
    single._train_mode()
    with torch.no_grad():
        current = torch.nn.functional.cross_entropy(single.model(dev_x), dev_y)
    assert record["curve"][-1]["val_loss"] == pytest.approx(averaged.item(), rel=1e-5)
    assert averaged.item() != pytest.approx(current.item(), rel=1e-3)


def test_schedule_free_sgd_without_momentum_uses_the_methods_default(digit_tasks):
    record = run("mnist_logreg", "schedule_free", splits=digit_tasks).run()
    assert record["spec"]["optimizer_params"]["momentum"] == 0.0
    assert record["optimizer"]["class"] == "SGDScheduleFree"
    assert record["optimizer"]["settings"]["momentum"] == optim.SCHEDULE_FREE_MOMENTUM
    assert record["optimizer"]["settings"]["warmup_steps"] == 1  # 5% of 20 steps


# ------------------------------------------------------------------------------ endings


def test_absurd_lr_diverges_and_is_recorded(digit_tasks, tmp_path):
    record = run("mnist_mlp", lr=1e6, splits=digit_tasks).run()
    assert record["status"] == "diverged"
    assert 0 <= record["diverged_at_step"] < record["budget"]["total_steps"]
    assert record["budget"]["steps_done"] < record["budget"]["total_steps"]
    assert record["curve"][-1]["step"] == record["budget"]["steps_done"]
    assert record["metrics"]["test_loss"] is None
    assert record["metrics"]["test_macro_ap"] is None  # NaN scores rank nothing
    assert record["test"]["curves"]["roc_tpr"] is None
    records.write(tmp_path / "diverged.json", record)  # no NaN in JSON


def test_early_stopping(digit_tasks):
    stalled = run(lr=1e-12, splits=digit_tasks, epochs=4, early_stopping=2).run()
    assert stalled["stopped_early_at_step"] is not None
    assert stalled["budget"]["steps_done"] == stalled["stopped_early_at_step"] < 40
    assert stalled["status"] == "ok"
    learning = run(splits=digit_tasks, epochs=2, early_stopping=100).run()
    assert learning["stopped_early_at_step"] is None
    assert learning["budget"]["steps_done"] == 20


def test_time_to_target_from_a_curve():
    curve = [
        {"step": s, "epoch": s / 10, "samples": 32 * s, "wall_s": s / 100, "val_acc": a}
        for s, a in [(0, 0.1), (5, 0.9), (10, 0.96), (15, 0.95), (20, 0.99)]
    ]
    out = time_to_target(curve, [0.9, 0.97, 0.995])
    assert out["0.9"] == {"step": 5, "epoch": 0.5, "samples": 160, "wall_s": 0.05}
    assert out["0.97"]["step"] == 20
    assert out["0.995"] is None


def test_time_to_target_in_a_record(digit_tasks, monkeypatch):
    task = TASKS["mnist_logreg"]
    monkeypatch.setitem(TASKS, "mnist_logreg", type(task)(**{**vars(task), "targets": (0.3, 2.0)}))
    record = run(splits=digit_tasks).run()
    hit = record["time_to_target"]["0.3"]
    first = next(p for p in record["curve"] if p["val_acc"] >= 0.3)
    assert hit == {k: first[k] for k in ("step", "epoch", "samples", "wall_s")}
    assert record["time_to_target"]["2"] is None


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "mnist_nope"}, "unknown task 'mnist_nope'; did you mean 'mnist_mlp' or "),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; valid: adam, adamw, sgd"),
        ({"optimizer_params": {"betas": [0.9, 0.99]}}, "optimizer sgd: unknown parameter 'betas'"),
        ({"optimizer_params": {"momentum": 1.5}}, "momentum must be in [0, 1)"),
        ({"schedule_params": {"gamma": "x"}}, "schedule step: gamma must be a number"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"precision": "fp8"}, "precision must be one of"),
    ],
)
def test_bad_specs_fail_before_anything_runs(fields, message):
    task = fields.pop("task", "mnist_mlp")
    with pytest.raises(InputError, match=re.escape(message)):
        RunSpec.make(task, "step", **fields)


def test_bf16_needs_cuda(digit_tasks):
    with pytest.raises(InputError, match="precision bf16 needs CUDA"):
        run(splits=digit_tasks, precision="bf16")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "nope", "--schedule", "cosine"], "error: unknown task 'nope'; valid: "),
        (["--task", "mnist_mlp", "--schedule", "nope"], "error: unknown schedule 'nope'; valid: "),
        (["--task", "mnist_mlp", "--schedule", "cosine", "--set", "optimizer.bogus=1"],
         "error: optimizer sgd: unknown parameter 'bogus'; known: momentum, nesterov, "),
        (["--task", "mnist_mlp", "--schedule", "cosine", "--set", "schedule.T_max=x"],
         "error: schedule cosine: T_max must be an integer, got 'x'"),  # a bare word is text
        (["--task", "mnist_mlp", "--schedule", "cosine", "--set", "schedule.T_max=[1,"],
         "error: --set 'schedule.T_max=[1,': expected KEY=VALUE"),
        (["--task", "mnist_mlp", "--schedule", "cosine", "--set", "lr=1"],
         "error: --set lr: expected schedule.KEY or optimizer.KEY"),
        (["--task", "mnist_mlp", "--schedule", "cosine", "--out", "x.txt"],
         "error: --out x.txt: expected FILE.json"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line(capsys, argv, message):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_cli_train_writes_the_record(digit_tasks, capsys, tmp_path):
    out = tmp_path / "run.json"
    # fmt: off
    argv = ["train", "--task", "mnist_logreg", "--schedule", "onecycle", "--epochs", "2",
            "--batch-size", "32", "--set", "schedule.pct_start=0.25", "--out", str(out)]
    # fmt: on
    assert main(argv) == 0
    record = records.read(out)
    assert record["spec"]["schedule_params"] == {"pct_start": 0.25}
    assert record["spec"]["batch_size"] == 32
    printed = capsys.readouterr().out
    assert f"test accuracy {record['metrics']['test_acc']:.4f}" in printed
    assert "dev accuracy 0.9: " in printed
    assert list(tmp_path.iterdir()) == [out]  # nothing else written


def test_train_loads_the_tasks_dataset(digit_tasks):
    record = train(RunSpec.make("mnist_logreg", "constant", **SMALL), device="cpu")
    assert record["budget"]["train_examples"] == 300
