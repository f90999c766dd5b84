import json
import re

import numpy as np
import pandas as pd
import pytest

from benchmark.records import tidy

SPEC_COLUMNS = [
    "task", "schedule", "lr", "seed", "epochs", "batch_size", "optimizer", "evals_per_epoch",
    "phase", "train_size", "eval_size", "early_stopping", "precision", "subset",
]  # fmt: skip
METRICS = [
    "test_acc", "test_loss", "test_macro_f1", "test_macro_precision", "test_macro_recall",
    "test_roc_auc_ovr", *(f"test_acc_class_{i}" for i in range(10)), "val_acc_final",
    "val_loss_final", "val_acc_best", "train_loss_final",
]  # fmt: skip
TAIL = ["train_s", "eval_s", "engine", "device", "device_type", "git_commit", "git_dirty", "torch"]
TARGETS = {"mnist_mlp": ("0.97", "0.98"), "fashion_cnn": ("0.85", "0.9")}


def point(step: int, val_acc: float, loss: float | None) -> dict:
    return {
        "step": step, "epoch": step / 10, "samples": 128 * step, "lr": 0.1 / (step + 3),
        "train_loss": None if step == 0 else loss, "val_loss": loss, "val_acc": val_acc,
        "wall_s": step / 7,
    }  # fmt: skip


def make_record(key, task, schedule, lr, seed, phase="final", diverged=False, reached=1):
    """A record with every field of results/SCHEMA.md; the first ``reached`` targets are hit."""
    loss = None if diverged else 1 / (seed + 3)
    curve = [point(s, 0.1 + s / 11, loss) for s in (0, 10, 20)[: 2 if diverged else 3]]
    per_class = [(i + seed) / 13 for i in range(10)]
    per_class[3] = None  # a class never seen on test
    return {
        "schema": 1,
        "key": key,
        "spec": {
            "task": task, "schedule": schedule, "lr": lr, "seed": seed, "epochs": 2,
            "batch_size": 128, "optimizer": "sgd",
            "optimizer_params": {"weight_decay": 5e-4, "momentum": 0.9, "nesterov": False},
            "schedule_params": {"warmup_frac": 0.1 + 0.2} if schedule == "cosine" else {},
            "evals_per_epoch": 4, "phase": phase, "train_size": None if seed else 1000,
            "eval_size": None, "early_stopping": 3 if schedule == "constant" else None,
            "precision": "fp32",
        },
        "status": "diverged" if diverged else "ok",
        "diverged_at_step": 12 if diverged else None,
        "stopped_early_at_step": 20 if schedule == "constant" else None,
        "budget": {
            "steps_per_epoch": 10, "total_steps": 20, "steps_done": 12 if diverged else 20,
            "train_examples": 1280, "dev_examples": 100, "test_examples": 100,
        },
        "metrics": {
            "test_acc": 0.9 + seed / 1000, "test_loss": loss, "test_macro_f1": 0.8 + 1 / 3,
            "test_macro_precision": 2 / 3, "test_macro_recall": 0.7,
            "test_roc_auc_ovr": None if diverged else 0.99, "test_per_class_acc": per_class,
            "val_acc_final": curve[-1]["val_acc"], "val_loss_final": loss,
            "val_acc_best": max(p["val_acc"] for p in curve), "train_loss_final": loss,
        },
        "time_to_target": {
            t: None if diverged or i >= reached else {k: curve[1][k] for k in tidy.TTT}
            for i, t in enumerate(TARGETS[task])
        },
        "curve": curve,
        "optimizer": {"class": "SGD", "settings": {"lr": lr, "momentum": 0.9}},
        "engine": "single",
        "timing": {"train_s": 12.3 + seed, "eval_s": 1 / 7},
        "provenance": {
            "git_commit": None if diverged else "abc123",
            "git_dirty": None if diverged else seed > 0,
            "python": "3.12.1", "torch": "2.5.0", "torchvision": "0.20.0", "numpy": "2.1.0",
            "scipy": "1.14.0", "schedulefree": "1.3", "cuda": None, "cudnn": None,
            "device": "Some CPU", "device_type": "cpu", "cpu_threads": 2,
            "deterministic_algorithms": True, "cudnn_deterministic": False,
            "cudnn_benchmark": False, "platform": "Linux", "timestamp": "2025-01-01T00:00:00Z",
        },
    }  # fmt: skip


@pytest.fixture
def records():
    """Given out of order: sorted, the keys read d, c, b, a, e (tune comes after final)."""
    return [
        make_record("a", "mnist_mlp", "onecycle", 0.1, 1),
        make_record("e", "mnist_mlp", "cosine", 0.05, 0, phase="tune"),
        make_record("b", "mnist_mlp", "cosine", 0.3, 0, diverged=True),
        make_record("c", "mnist_mlp", "cosine", 0.1, 2, reached=0),
        make_record("d", "fashion_cnn", "constant", 0.1, 0, reached=2),
    ]


def test_runs_frame_rows_and_columns(records):
    frame = tidy.runs_frame(records)
    ttt = [
        c for t in ("0.85", "0.9", "0.97", "0.98")
        for c in (f"ttt_{t}_step", f"ttt_{t}_epoch", f"ttt_{t}_samples", f"ttt_{t}_wall_s",
                  f"reached_{t}")
    ]  # fmt: skip
    head = ["key", *SPEC_COLUMNS, "schedule_params", "optimizer_params", "task_kind"]
    head += ["optimizer_family", "optimizer_class", "lr_digest", "momentum_digest"]
    head += ["status", "diverged_at_step", "stopped_early_at_step"]
    head += ["steps_done", "total_steps", "test_examples"]
    assert list(frame.columns) == [*head, *METRICS, *ttt, *TAIL]
    assert list(frame["key"]) == ["d", "c", "b", "a", "e"]
    expected = {"seed": "int64", "lr": "float64", "diverged_at_step": "Int64"}
    expected |= {"ttt_0.97_samples": "Int64", "reached_0.9": "boolean", "test_loss": "float64"}
    assert {name: str(frame[name].dtype) for name in expected} == expected


def test_runs_frame_reads_task_kind_and_optimizer_family_from_schema_2(records):
    """Schema 1 records lack both (empty cells); schema 2 records carry them."""
    newer = make_record("f", "mnist_mlp", "cosine", 0.1, 3)
    newer |= {"schema": 2, "task": {"kind": "MLP", "model": "mlp"}}
    newer["optimizer"]["family"] = "sgd"
    frame = tidy.runs_frame([*records, newer]).set_index("key")
    assert (frame.loc["f", "task_kind"], frame.loc["f", "optimizer_family"]) == ("MLP", "sgd")
    assert frame.drop(index="f")[["task_kind", "optimizer_family"]].isna().all().all()
    assert frame.test_examples.tolist() == [100] * 6


def test_runs_frame_reads_the_digests_of_schema_3(records):
    """Schemas 1 and 2 lack them (empty cells); a schedule that leaves momentum alone has none."""
    newer = make_record("f", "mnist_mlp", "onecycle", 0.1, 3) | {"schema": 3}
    newer["digests"] = {"lr": "0123456789abcdef", "momentum": "fedcba9876543210"}
    plain = make_record("g", "mnist_mlp", "cosine", 0.1, 3) | {"schema": 3}
    plain["digests"] = {"lr": "00112233445566ff", "momentum": None}
    frame = tidy.runs_frame([*records, newer, plain]).set_index("key")
    digests = frame[["lr_digest", "momentum_digest"]]
    assert digests.loc["f"].tolist() == ["0123456789abcdef", "fedcba9876543210"]
    assert digests.loc["g", "lr_digest"] == "00112233445566ff"
    assert digests.drop(index="f").momentum_digest.isna().all()
    assert digests.drop(index=["f", "g"]).lr_digest.isna().all()
    assert (frame.optimizer_class == "SGD").all()


def test_runs_frame_copies_values_exactly(records):
    frame = tidy.runs_frame(records).set_index("key")
    for r in records:
        row = frame.loc[r["key"]]
        for name in SPEC_COLUMNS:
            assert _same(row[name], r["spec"].get(name)), name  # subset: absent before protocol 2
        for name in ("schedule_params", "optimizer_params"):
            assert json.loads(row[name]) == r["spec"][name]
        assert row["optimizer_params"] == '{"momentum":0.9,"nesterov":false,"weight_decay":0.0005}'
        metrics = {k: v for k, v in r["metrics"].items() if k != "test_per_class_acc"}
        for i, acc in enumerate(r["metrics"]["test_per_class_acc"]):
            metrics[f"test_acc_class_{i}"] = acc
        for name, value in metrics.items():
            assert _same(row[name], value), name
        for name in ("status", "diverged_at_step", "stopped_early_at_step", "engine"):
            assert _same(row[name], r[name]), name
        assert row["steps_done"] == r["budget"]["steps_done"]
        assert row["total_steps"] == r["budget"]["total_steps"]
        assert [row["train_s"], row["eval_s"]] == [r["timing"]["train_s"], r["timing"]["eval_s"]]
        for name in ("device", "device_type", "git_commit", "git_dirty", "torch"):
            assert _same(row[name], r["provenance"][name]), name


def test_time_to_target_censored_reached_and_union(records):
    frame = tidy.runs_frame(records).set_index("key")
    hit = records[0]["time_to_target"]["0.97"]
    assert [frame.loc["a", f"ttt_0.97_{k}"] for k in tidy.TTT] == list(hit.values())
    assert frame.loc["a", "reached_0.97"]
    for key, target in [("a", "0.98"), ("b", "0.97"), ("b", "0.98"), ("c", "0.97")]:
        reached = frame.loc[key, f"reached_{target}"]
        assert reached is False or reached is np.False_  # censored: known, not reached
        assert all(pd.isna(frame.loc[key, f"ttt_{target}_{k}"]) for k in tidy.TTT)
    assert frame.loc["d", ["reached_0.85", "reached_0.9"]].tolist() == [True, True]
    # a target of the other task: neither reached nor censored, just absent
    assert frame.loc[["a", "b", "c", "e"], "reached_0.85"].isna().all()
    assert frame.loc["d", ["reached_0.97", "ttt_0.98_step"]].isna().all()


def test_curves_frame(records):
    frame = tidy.curves_frame(records)
    assert len(frame) == sum(len(r["curve"]) for r in records) == 14
    assert list(frame.columns) == [
        "key", "phase", "task", "schedule", "lr", "seed", "step", "epoch", "samples", "lr_now",
        "train_loss", "val_loss", "val_acc", "wall_s",
    ]  # fmt: skip
    assert frame["key"].tolist() == ["d"] * 3 + ["c"] * 3 + ["b"] * 2 + ["a"] * 3 + ["e"] * 3
    for r in records:
        rows = frame[frame["key"] == r["key"]]
        assert rows["lr"].tolist() == [r["spec"]["lr"]] * len(r["curve"])
        assert rows["lr_now"].tolist() == [p["lr"] for p in r["curve"]]
        for name in ("step", "epoch", "samples", "train_loss", "val_loss", "val_acc", "wall_s"):
            assert all(map(_same, rows[name], [p[name] for p in r["curve"]])), name
    assert frame["train_loss"].isna().sum() == 5 + 1  # step 0 of five runs, b's step 10


def test_read_records_finds_bad_files(tmp_path, records, capsys):
    for r in records[:2]:
        (tmp_path / f"{r['key']}.json").write_text(json.dumps(r))
    text = json.dumps(records[2])
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    (tmp_path / "nokey.json").write_text(
        json.dumps({k: v for k, v in records[3].items() if k != "key"})
    )
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "notes.txt").write_text("not a record")
    got, bad = tidy.read_records(tmp_path)
    assert got == records[:2]  # a.json, e.json: by name
    assert bad == [tmp_path / n for n in ("cut.json", "list.json", "nokey.json")]
    assert capsys.readouterr() == ("", "")


def test_write_tables_round_trip(tmp_path, records):
    tidy.write_tables(tmp_path, records[1:])  # then replaced
    paths = tidy.write_tables(tmp_path, records)
    assert paths == (tmp_path / "runs.csv", tmp_path / "curves.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.csv", "runs.csv"]  # no temp
    frames = tidy.runs_frame(records), tidy.curves_frame(records)
    for path, frame in zip(paths, frames, strict=True):
        # read with the frame's dtypes: nullable ints and booleans (with NA) come back as they
        # were, and every float exactly (the CSV holds full precision; pandas' default parser
        # may be off in the last digit, so parse round-trip)
        back = pd.read_csv(path, dtype=frame.dtypes.to_dict())  # pandas 3: round-trip by default
        pd.testing.assert_frame_equal(back, frame, check_exact=True)


def test_no_records_give_empty_tables(tmp_path):
    assert tidy.runs_frame([]).columns.tolist() == [*tidy.HEAD, *tidy.TAIL]
    runs_path, curves_path = tidy.write_tables(tmp_path, [])
    assert pd.read_csv(runs_path).columns.tolist() == [*tidy.HEAD, *tidy.TAIL]
    assert len(pd.read_csv(curves_path).columns) == 14
    assert pd.read_csv(runs_path).empty
    assert pd.read_csv(curves_path).empty


def test_docstring_documents_every_column(records):
    generic = [
        (r"^ttt_[\d.]+_", "ttt_<T>_"),
        (r"^reached_[\d.]+$", "reached_<T>"),
        (r"class_\d+$", "class_<i>"),
    ]
    doc = tidy.__doc__
    for frame in (tidy.runs_frame(records), tidy.curves_frame(records)):
        for name in frame.columns:
            for pattern, repl in generic:
                name = re.sub(pattern, repl, name)
            assert re.search(rf"(?<![\w<]){re.escape(name)}(?![\w>])", doc), name


def _same(got, expected) -> bool:
    """Equal exactly (a bool only to a bool), a null matching NaN / NA."""
    if expected is None:
        return bool(pd.isna(got))
    if isinstance(expected, bool) and not isinstance(got, bool | np.bool_):
        return False
    return bool(pd.notna(got) and got == expected)
