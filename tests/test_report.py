"""The report on the committed fixture results (tests/make_report_fixture.py makes them).

The PDF and browser checks need poppler-utils (pdfinfo, pdftoppm) and Debian's chromium; they
skip when those are missing, except under CI (REPORT_TOOLS_REQUIRED=1), where they must run.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import make_report_fixture
from benchmark.catalogue.schedules import Budget, sequences
from benchmark.engines.semantics import sequence_digest
from report import budgets, classification, findings, identical, mcb, stats, tables, verdicts
from report.__main__ import PREVIEW, main
from report.build import build, tables_of
from report.load import SkippedRecord, load, load_perf
from report.numbers import canonical
from report.render import html, write
from testkit import TESTS

FIXTURE = TESTS / "fixtures" / "report_results"
BUDGETS = TESTS / "fixtures" / "report_budgets"  # two tasks, each at 1 and 3 epochs
SECTIONS = (
    "answer",
    "details",
    "accuracy-section",
    "time-section",
    "across-section",
    "curves-section",
    "sensitivity-section",
    "methods",
    "reproducibility",
    "cite",
    "appendix",
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("REPORT_TOOLS_REQUIRED"):
            pytest.fail(f"{name} is required here (REPORT_TOOLS_REQUIRED is set)")
        pytest.skip(f"{name} not installed (apt-get install poppler-utils chromium)")
    return path


def copy_fixture(tmp_path: Path, fixture: Path = FIXTURE) -> Path:
    out = tmp_path / "results"
    shutil.copytree(fixture, out)
    return out


def edit_records(folder: Path, change) -> None:
    """Apply ``change(record) -> record | None`` to every record; None deletes the file."""
    for path in (folder / "runs").glob("*.json"):
        record = change(json.loads(path.read_text()))
        if record is None:
            path.unlink()
        else:
            path.write_text(json.dumps(record))


def written(tmp_path_factory, fixture: Path):
    """A fixture's report, written: (results, context, paths)."""
    folder = copy_fixture(tmp_path_factory.mktemp("report"), fixture)
    results = load(folder)
    context = build(results)
    return results, context, write(context, folder / "report")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The fixture's report (one budget per task), written once."""
    return written(tmp_path_factory, FIXTURE)


@pytest.fixture(scope="module")
def budget_report(tmp_path_factory):
    """The two-budget fixture's report, written once."""
    return written(tmp_path_factory, BUDGETS)


IMAGES = {  # figures in each report
    "report": 3 + 3 + 1 + 1 + 1 + 1,  # curves and ROC/PR x3 tasks, km, ranks, profiles, lr
    "budget_report": 4 + 4 + 1 + 1 + 1 + 1 + 1,  # both x2 tasks x2 budgets, accuracy by budget
}


@pytest.fixture(params=list(IMAGES))
def each_report(request):
    """Each fixture's report in turn: (name, (results, context, paths))."""
    return request.param, request.getfixturevalue(request.param)


def test_fixture_is_what_its_generator_makes(tmp_path):
    make_report_fixture.main(tmp_path)
    for fixture in (FIXTURE, BUDGETS):
        made = sorted(
            p.relative_to(tmp_path / fixture.name) for p in (tmp_path / fixture.name).rglob("*")
        )
        assert made == sorted(p.relative_to(fixture) for p in fixture.rglob("*"))
        for name in made:
            if name.suffix:
                assert (tmp_path / fixture.name / name).read_bytes() == (
                    fixture / name
                ).read_bytes()


def test_every_section_table_and_figure_is_present(each_report):
    name, (_, context, paths) = each_report
    text = paths["html"].read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in text
    assert ('id="budget-section"' in text) == (name == "budget_report")
    for table in context["tables"].values():
        assert table.caption.split(":")[0] in text  # "Table T-xxxxxxxx"
        assert f"n = {len(table.keys)} runs" in table.caption
        assert "environment: device" in table.caption
        for ext in ("csv", "md", "tex"):
            assert (paths["tables"] / f"{table.id}.{ext}").stat().st_size > 0
        assert (
            f"[{table.id}]({table.id}.md) | {table.name} |"
            in (paths["tables"] / "index.md").read_text()
        )
    assert text.count("<img ") == IMAGES[name]
    assert "<script" not in text
    assert "http://" not in text
    assert "https://" not in text


def test_tables_round_trip_through_csv(each_report):
    _, (_, context, paths) = each_report
    for table in context["tables"].values():
        back = pd.read_csv(paths["tables"] / f"{table.id}.csv")
        expect = table.frame.reset_index(drop=True)
        assert list(back.columns) == list(expect.columns)
        for col in expect:
            if pd.api.types.is_numeric_dtype(expect[col]) and not pd.api.types.is_bool_dtype(
                expect[col]
            ):
                written = [canonical(float(x)) for x in expect[col]]  # 10 decimals, exactly
                np.testing.assert_array_equal(back[col].astype(float), written)
            else:
                assert back[col].astype(str).tolist() == expect[col].astype(str).tolist(), col


def test_table_ids_are_stable_and_follow_runs_and_definition(report, monkeypatch):
    _results, context, _ = report
    acc = context["tables"]["accuracy"]
    again = tables.Table("accuracy", "other words", acc.frame, list(reversed(acc.keys)), "env")
    assert again.id == acc.id  # order of keys, title and environment do not matter
    assert tables.Table("accuracy", "", acc.frame, acc.keys[1:], "").id != acc.id
    monkeypatch.setattr("report.planning.ALPHA", 0.01)
    assert tables.Table("accuracy", "", acc.frame, acc.keys, "").id != acc.id


def test_table_ids_and_files_survive_a_last_bit_difference(report, tmp_path):
    """Another CPU may sum in another order: every float one ulp off (up or down, at random)
    leaves every ID and every table file as it was."""
    _, context, paths = report
    rng = np.random.default_rng(0)
    for table in context["tables"].values():
        frame = table.frame.copy()
        for col in frame.select_dtypes("float"):
            values = frame[col].to_numpy()
            nudged = np.nextafter(values, np.where(rng.random(len(values)) < 0.5, -1, 1) * np.inf)
            frame[col] = np.where(np.isfinite(values), nudged, values)  # inf stays "not reached"
        off = tables.Table(table.name, table.title, frame, table.keys, table.environment)
        assert not frame.equals(table.frame) or frame.select_dtypes("float").empty
        assert off.id == table.id, table.name
        for path in off.write(tmp_path / table.name):
            assert path.read_bytes() == (paths["tables"] / path.name).read_bytes(), path.name


def test_statistics_in_the_tables_match_the_runs(report):
    results, context, _ = report
    final = results.final
    acc = context["tables"]["accuracy"].frame.set_index(["task", "schedule"])
    gru = final[(final.task == "smnist_gru") & (final.schedule == "onecycle")]
    row = acc.loc[("smnist_gru", "onecycle")]
    assert row.n == 8
    assert row.n_diverged == 1
    assert row.acc_mean == pytest.approx(gru.test_acc.mean())
    ttt = context["tables"]["time_to_target"].frame
    cons = ttt[(ttt.task == "mnist_logreg") & (ttt.schedule == "constant") & (ttt.target == 0.92)]
    assert cons.n_reached.item() == 0
    assert math.isinf(cons.epoch_median.item())
    hard = ttt[(ttt.task == "mnist_mlp_adam") & (ttt.target == 0.98)].set_index("schedule")
    runs = final[(final.task == "mnist_mlp_adam") & (final.schedule == "onecycle")]
    assert hard.loc["onecycle", "n_reached"] == runs["reached_0.98"].sum()


def test_every_metric_is_tabulated_and_the_median_runs_curves_drawn(report):
    results, context, _ = report
    final = results.final
    table = context["tables"]["metrics"].frame.set_index(["task", "schedule"])
    gru = final[(final.task == "smnist_gru") & (final.schedule == "onecycle")]
    row = table.loc[("smnist_gru", "onecycle")]
    assert (row.n, row.n_scored) == (8, 7)  # the diverged run has no finite scores
    for name, column in classification.METRICS.items():
        values = gru[column].dropna()
        assert row[name] == pytest.approx(values.mean())
        lo, hi = stats.mean_ci(values.to_numpy())
        assert (row[f"{name}_lo"], row[f"{name}_hi"]) == pytest.approx((lo, hi))
    medians = classification.median_runs(final).set_index(["task", "schedule"])
    median = medians.loc[("smnist_gru", "onecycle")]
    ranked = gru.sort_values(["test_acc", "seed"])
    assert median.key == ranked.key.iloc[3]  # the lower median of 8: an actual run
    drawn = classification.curves(final, results, "smnist_gru")["onecycle"]
    recorded = results.examples[median.key]["curves"]
    np.testing.assert_array_equal(drawn["pr_precision"], recorded["pr_precision"])
    assert context["without_examples"] == 0
    tasks = ["mnist_logreg", "mnist_mlp_adam", "smnist_gru"]
    assert [p.name for p in context["plots"]["roc_pr"]] == [f"roc-pr-{t}" for t in tasks]


def test_records_before_schema_4_are_read_and_their_limits_said(tmp_path):
    """Schema 3 records hold no per-example results, average precision or curves: the report
    renders them, leaves AP empty, draws no curves for them and says so."""
    folder = copy_fixture(tmp_path)

    def schema_3(record):
        del record["test"], record["metrics"]["test_macro_ap"]
        return record | {"schema": 3}

    edit_records(folder, lambda r: r if r["spec"]["task"] == "mnist_logreg" else schema_3(r))
    results = load(folder)
    context = build(results)
    assert set(results.examples) == set(results.runs.key[results.runs.task == "mnist_logreg"])
    assert context["without_examples"] == 64
    assert [p.name for p in context["plots"]["roc_pr"]] == ["roc-pr-mnist_logreg"]
    table = context["tables"]["metrics"].frame
    assert table.ap.isna().tolist() == (table.task != "mnist_logreg").tolist()
    assert table.roc_auc.notna().all()  # older records have it
    page = html(context)
    assert "64 final run(s) come from records older than schema 4" in page
    assert "pair two schedules example by example nor resample test examples" in page
    edit_records(folder, lambda r: schema_3(r) if "test" in r else r)
    only_old = build(load(folder))
    assert only_old["plots"]["roc_pr"] == []
    assert only_old["tables"]["metrics"].frame.ap.isna().all()


def test_answer_carries_numbers_and_verdicts(report):
    _, context, _ = report
    matrix = context["tables"]["recommendation"].frame
    assert set(matrix.accuracy) <= set(mcb.VERDICTS)
    # the fixture's constant schedule is 1.2 points behind on every seed
    assert (matrix[matrix.schedule == "constant"].accuracy == mcb.WORSE_BEYOND).all()
    assert (matrix.gap_ci_lo <= matrix.gap).all()
    assert (matrix.gap <= matrix.gap_ci_hi).all()
    for task, sentences in context["answer"].items():
        text = " ".join(sentences)
        assert "simultaneous 95% interval (n = 8 seeds x 5,000 test examples)" in text, task
        assert "seeds per schedule would resolve it" in text, task
    for line in context["takeaways"]:
        assert "n = 8 seeds x 5,000 test examples; resolves" in line["text"], line
    assert "Diverged runs" in " ".join(context["answer"]["smnist_gru"])
    assert any("one task" in g for g in context["guidance"])
    assert context["guidance"][0].startswith(
        "On every task (mnist_logreg, mnist_mlp_adam, smnist_gru"
    )


def made_up(accuracies: dict[str, np.ndarray]) -> pd.DataFrame:
    """Final runs of one problem "t" with these test accuracies, seed by seed."""
    return pd.concat(
        pd.DataFrame({"task": "t", "schedule": s, "seed": range(len(a)), "test_acc": a,
                      "key": [f"{s}-{i}" for i in range(len(a))]})
        for s, a in accuracies.items()
    )  # fmt: skip


def test_accuracy_verdicts_come_from_comparisons_with_the_best():
    """Made-up accuracies on 10 paired seeds (the test set counted as fixed): the verdicts
    are those of mcb.verdicts on mcb.mcb's intervals, and each says what its interval shows."""
    rng = np.random.default_rng(3)
    base = 0.88 + rng.normal(0, 0.004, 10)
    runs = made_up({
        "top": base + 0.002,
        "close": base + 0.002 - rng.uniform(0.0004, 0.001, 10),  # 0.04-0.1 points behind
        "bad": base - 0.018 + rng.normal(0, 0.0005, 10),  # 2 points behind
        "noisy": base + rng.normal(0, 0.015, 10),  # ~0.2 points behind, SD 1.5 points
    })  # fmt: skip
    words, resolution = verdicts.accuracy(runs, {}, margin=0.005)
    out = words.set_index("schedule")
    # noisy may be the best, so top may be too, and close, behind top on every seed, is worse
    # by an amount its interval cannot resolve: it reaches down to what noisy might be
    assert out.verdict.to_dict() == {
        "bad": mcb.WORSE_BEYOND,
        "close": mcb.WORSE,
        "noisy": mcb.POSSIBLY_BEST,
        "top": mcb.POSSIBLY_BEST,
    }
    assert out.loc["close", "gap_ci_hi"] < 0
    acc = np.stack([runs[runs.schedule == s].test_acc.to_numpy() for s in out.index])
    res = mcb.mcb(acc)
    np.testing.assert_array_equal(out.gap_ci_lo, res.lower)
    np.testing.assert_array_equal(out.verdict, mcb.verdicts(res.lower, res.upper, 0.005))
    assert out.loc["bad", "gap"] == pytest.approx(-0.02, abs=0.001)
    row = resolution.iloc[0]
    assert (row.schedules, row.n_seeds, row.n_examples) == (4, 10, 0)
    assert row.resolvable == pytest.approx(float(res.resolvable))
    assert 2 <= row.seeds_plan_lo <= row.seeds_plan_hi


def test_speed_is_the_restricted_mean_time_compared_with_the_fastest():
    """Made-up epochs to a target 0.9 (None: not reached in 3 epochs), 6 paired seeds."""
    epochs = {
        "a": [1, 1, 1.5, 1.5, 2, 2],
        "b": [1, 1.5, 1.5, 1.5, 2, 2.5],  # a little slower on two seeds: cannot be told apart
        "slow": [2.5, 2.5, 3, None, None, None],
        "never": [None] * 6,
    }
    final = pd.concat(
        pd.DataFrame({"task": "t", "schedule": s, "seed": range(6), "epochs": 3.0,
                      "reached_0.9": [e is not None for e in x],
                      "ttt_0.9_epoch": [np.nan if e is None else e for e in x]})
        for s, x in epochs.items()
    )  # fmt: skip
    out = verdicts.speed(final, 0.9).set_index("schedule")
    restricted = {s: np.mean([3.0 if e is None else e for e in x]) for s, x in epochs.items()}
    assert out.rmst.to_dict() == pytest.approx(restricted)
    assert out.n_reached.to_dict() == {"a": 6, "b": 6, "never": 0, "slow": 3}
    assert out.verdict.to_dict() == {
        "a": verdicts.POSSIBLY_FASTEST,
        "b": verdicts.POSSIBLY_FASTEST,
        "never": verdicts.SLOWER,
        "slow": verdicts.SLOWER,
    }
    assert out.loc["slow", "gap"] == pytest.approx(restricted["slow"] - restricted["a"])
    assert (out.reached_ci_lo <= out.reached).all()
    assert (out.reached <= out.reached_ci_hi).all()
    nobody = verdicts.speed(final[final.schedule == "never"], 0.9)
    assert set(nobody.verdict) == {verdicts.NONE}


def test_pdf_answers_on_page_one_and_has_no_nearly_empty_page(each_report, tmp_path):
    _, (_, context, paths) = each_report
    first = subprocess.run(
        [tool("pdftotext"), "-f", "1", "-l", "1", "-layout", paths["pdf"], "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Which learning-rate schedule for which task, and how sure are we?" in first
    for line in context["takeaways"]:
        assert line["task"] in first
        assert " ".join(line["text"].split()[:4]) in " ".join(first.split())
    assert all(row["schedule"] in first for row in context["matrix"]["rows"])
    assert "Contents" not in first
    subprocess.run(
        [tool("pdftoppm"), "-png", "-r", "20", paths["pdf"], tmp_path / "page"], check=True
    )
    from PIL import Image  # matplotlib's dependency

    pages = sorted(tmp_path.glob("page*.png"))
    assert 5 < len(pages) < 25
    images = []
    for page in pages:
        with Image.open(page) as image:
            images.append(np.asarray(image.convert("L")))
    for page, image, after in zip(pages, images, images[1:], strict=False):
        if after.shape != image.shape:  # the last page of a part (portrait, then the landscape
            continue  # appendix) may end where the part does, as the last may where the report does
        ink = image[:-30] < 200  # without the footer
        lowest = np.flatnonzero(ink.any(axis=1)).max()
        assert lowest > 0.4 * ink.shape[0], f"{page.name} is nearly empty"


def test_report_bytes_are_the_same_when_rendered_again(each_report, tmp_path):
    """Rendered again in another process (another hash seed): the same HTML, PDF (with
    HarfBuzz's subsetter, WeasyPrint embeds the same font subsets) and tables."""
    _, (results, _, paths) = each_report
    out, no_perf = tmp_path / "again", tmp_path / "no-perf"
    argv = [sys.executable, "-m", "report", str(results.folder), "--out", str(out), "--perf",
            str(no_perf)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ | {
        "PYTHONHASHSEED": "12345"}, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = {"html": out / "index.html", "pdf": out / "report.pdf", "tables": out / "tables"}
    for name in ("html", "pdf"):
        assert again[name].read_bytes() == paths[name].read_bytes(), name
    tables_a, tables_b = sorted(paths["tables"].iterdir()), sorted(again["tables"].iterdir())
    assert [p.name for p in tables_a] == [p.name for p in tables_b]
    for a, b in zip(tables_a, tables_b, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  document.title = "CHECK " + JSON.stringify({n: imgs.length, bad: bad});
});
</script></body>"""


def test_html_loads_in_headless_chromium_with_every_image(each_report, tmp_path):
    name, (_, _, paths) = each_report
    page = tmp_path / "index.html"  # a copy with a probe script; the report itself has none
    page.write_text(paths["html"].read_text().replace("</body>", CHECK_IMAGES))
    run = subprocess.run(
        [
            tool("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    title = re.search(r"<title>CHECK (.*?)</title>", run.stdout)
    assert title, run.stderr[-2000:]
    check = json.loads(title.group(1).replace("&quot;", '"'))
    assert check["n"] == IMAGES[name]
    assert check["bad"] == []
    text = paths["html"].read_text()  # the answer comes first, the contents after it
    assert text.index('class="takeaways"') < text.index('id="recommendation"')
    assert text.index('id="recommendation"') < text.index('class="contents"')
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert console == []


def test_names_are_escaped(tmp_path):
    folder = copy_fixture(tmp_path)
    evil = '<img src=x onerror="alert(1)">&sched'

    def rename(record):
        if record["spec"]["schedule"] == "wsd":
            record["spec"]["schedule"] = evil
        return record

    edit_records(folder, rename)
    text = html(build(load(folder)))
    assert evil not in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;sched" in text


def test_corrupt_records_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    folder = copy_fixture(tmp_path)
    (folder / "runs" / "truncated.json").write_text('{"schema": 1, "key": "ab')
    (folder / "runs" / "future.json").write_text('{"schema": 99}')
    with pytest.warns(SkippedRecord) as caught:
        results = load(folder)
    assert sorted(Path(str(w.message).split()[1][:-1]).name for w in caught) == [
        "future.json",
        "truncated.json",
    ]
    assert {name for name, _ in results.skipped} == {"truncated.json", "future.json"}
    assert len(results.runs) == len(list((FIXTURE / "runs").glob("*.json")))
    assert main([str(folder), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: skipped" in err
    assert "future.json: schema 99" in err
    assert "truncated.json" in (tmp_path / "out" / "index.html").read_text()


def test_no_tune_records_and_a_single_seed_are_said(tmp_path):
    folder = copy_fixture(tmp_path)
    edit_records(
        folder, lambda r: r if r["spec"]["phase"] == "final" and r["spec"]["seed"] == 0 else None
    )
    context = build(load(folder))
    text = html(context)
    assert "no tuning runs" in text
    assert "robustness" not in context["tables"]
    assert context["single_seed"]
    assert "single seed" in text
    assert set(context["tables"]["recommendation"].frame.accuracy) == {verdicts.N_A}
    assert set(context["tables"]["recommendation"].frame.speed) <= {verdicts.N_A}
    assert "no CI" in text


def test_compare_flags_a_result_set_that_disagrees(tmp_path):
    folder = copy_fixture(tmp_path)

    def worse(record):
        if record["spec"]["schedule"] == "cosine" and record["spec"]["task"] == "mnist_logreg":
            record["metrics"]["test_acc"] -= 0.05
        return record

    edit_records(folder, worse)
    check = findings.reproduction(load(FIXTURE).final, load(folder).final, margin=0.005)
    flagged = check[check.agreement == "differ"]
    assert flagged[["task", "schedule"]].values.tolist() == [["mnist_logreg", "cosine"]]
    same = check.set_index(["task", "schedule"]).agreement.drop(("mnist_logreg", "cosine"))
    assert same.pop(("smnist_gru", "onecycle")) == "inconclusive"  # a diverged run: wide spread
    assert (same == "agree").all()  # the same runs


def test_identical_schedules_are_one_hypothesis(tmp_path):
    """A "step" whose step never comes within the budget is "constant"; merged only when its
    results are identical on every seed too."""
    folder = copy_fixture(tmp_path)
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        if record["spec"]["schedule"] == "constant" and record["spec"]["phase"] == "final":
            record["spec"] |= {"schedule": "step", "schedule_params": {"step_size": 1000}}
            record["key"] = record["key"][::-1]  # a new file
            (folder / "runs" / f"{record['key']}.json").write_text(json.dumps(record))
    results, merged, cited, _ = tables_of(load(folder))
    assert merged == {t: [["constant", "step"]] for t in results.final.task.unique()}
    words = cited["verdicts"].frame
    assert "constant = step" in set(words.schedule)
    assert words.groupby("task").size().eq(4).all()  # 4 schedules, 3 hypotheses each
    frames = [cited[n].frame for n in ("accuracy", "verdicts", "resolution", "speed")]
    sentences = findings.task_sentences("mnist_logreg", *frames, merged["mnist_logreg"], [])
    assert any("constant = step at this budget" in s for s in sentences)

    def differ(record):
        if record["spec"]["schedule"] == "step" and record["spec"]["seed"] == 0:
            record["metrics"]["test_acc"] += 0.0002
        return record

    edit_records(folder, differ)
    assert tables_of(load(folder))[1] == {}


def test_identical_means_the_recorded_sequences_and_optimizer_too(tmp_path):
    """Renamed copies of constant's final runs merge with it; one seed's lr digest, or the
    optimizer class, made different keeps them apart; without digests (schema 2) none merge."""
    folder = copy_fixture(tmp_path)
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        if record["spec"]["schedule"] == "constant" and record["spec"]["phase"] == "final":
            record["spec"]["schedule"], record["key"] = "plateau", record["key"][::-1]
            (folder / "runs" / f"{record['key']}.json").write_text(json.dumps(record))
    tasks = ("mnist_logreg", "mnist_mlp_adam", "smnist_gru")
    merged = {t: [["constant", "plateau"]] for t in tasks}
    assert tables_of(load(folder))[1] == merged

    def edit(change):
        def apply(record):
            return change(record) if record["spec"]["schedule"] == "plateau" else record

        edit_records(folder, apply)

    def cut(record):  # a plateau run that cut its lr on seed 3: another sequence
        if record["spec"]["seed"] == 3 and record["spec"]["task"] == "mnist_logreg":
            record["digests"]["lr"] = "0" * 16
        return record

    edit(cut)
    assert tables_of(load(folder))[1] == {t: g for t, g in merged.items() if t != "mnist_logreg"}

    def other_class(record):
        if record["spec"]["task"] == "mnist_mlp_adam":
            record["optimizer"]["class"] = "AdamWScheduleFree"
        return record

    edit(other_class)
    assert tables_of(load(folder))[1] == {"smnist_gru": merged["smnist_gru"]}

    def schema_2(record):
        del record["digests"]
        return record | {"schema": 2}

    edit_records(folder, schema_2)
    results, found, _, _ = tables_of(load(folder))
    assert found == {}
    assert identical.undigested(results.final) == len(results.final)


def test_tables_only_writes_the_reports_tables_and_nothing_else(report, tmp_path, capsys):
    _, _, paths = report
    folder = copy_fixture(tmp_path)
    assert main([str(folder), "--tables-only", "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("tables: ")
    written = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(p.name for p in paths["tables"].iterdir())  # the same IDs
    assert not (tmp_path / "out" / "index.html").exists()


def test_plan_prints_the_seeds_a_margin_needs(report, capsys):
    """--plan at the sweep's own margin prints the resolution table's range; a wider margin
    needs fewer seeds, a narrower one more."""
    _, context, _ = report
    resolution = context["tables"]["resolution"].frame.set_index("task")
    plans = {}
    for points in (0.5, 1.0, 0.25):
        assert main([str(FIXTURE), "--plan", str(points)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"Seeds per schedule to resolve a margin of {points:g} ")
        plans[points] = dict(
            re.match(r"  (.+?): (\S+) \.\. (\S+) ", ln).group(1, 2) for ln in lines[1:]
        )
    for task, row in resolution.iterrows():
        assert plans[0.5][task] == f"{row.seeds_plan_lo:.0f}"
        assert int(plans[1.0][task]) < int(plans[0.5][task]) < int(plans[0.25][task])
    assert main([str(FIXTURE), "--plan", "0"]) == 2


def test_margin_comes_from_sweep_json(tmp_path, capsys):
    folder = copy_fixture(tmp_path)
    sweep = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps(sweep | {"report": {"equivalence_margin": 0.05}}))
    wide, default = (tables_of(load(f))[2] for f in (folder, FIXTURE))
    assert (wide["resolution"].frame.margin == 0.05).all()
    assert (wide["verdicts"].frame.verdict == mcb.WITHIN).sum() > (
        default["verdicts"].frame.verdict == mcb.WITHIN
    ).sum()
    (folder / "sweep.json").write_text(json.dumps(sweep | {"report": {"equivalence_margin": 5}}))
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "report.equivalence_margin" in err


def test_without_arguments_the_report_goes_to_an_untracked_folder(monkeypatch, capsys):
    written = {}
    monkeypatch.setattr("report.__main__.REFERENCE", FIXTURE)
    monkeypatch.setattr("report.build.build", lambda *args: {})
    monkeypatch.setattr(
        "report.render.write", lambda context, out: written.setdefault("out", out) and {}
    )
    assert main([]) == 0
    assert written["out"] == PREVIEW
    ignored = subprocess.run(["git", "check-ignore", "-q", str(PREVIEW / "index.html")],
                             cwd=TESTS.parent)  # fmt: skip
    assert ignored.returncode == 0  # git-ignored: the committed reference report stays as it is
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: the check reads words, not wrapping
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "results/report-preview" in " ".join(capsys.readouterr().out.split())


def test_cli_never_imports_torch_and_rejects_bad_folders(tmp_path):
    folder = copy_fixture(tmp_path)
    code = (
        "import sys; from report.__main__ import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    ok = subprocess.run(
        [sys.executable, "-c", code, str(folder), "--compare", str(FIXTURE)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "Reproduction check" in (folder / "report" / "index.html").read_text()
    for bad in (tmp_path / "missing", tmp_path):
        run = subprocess.run(
            [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, env=env
        )
        assert run.returncode == 2
        assert run.stderr.count("\n") == 1
        assert "no run records" in run.stderr


def test_perf_files_give_the_speed_chart(tmp_path):
    measured = [{"method": "standard", "runs": 1, "run_samples_per_s": 2e4},
                {"method": "single", "runs": 1, "run_samples_per_s": 9e4},
                *({"method": "batched", "runs": r, "run_samples_per_s": 9e4 * r**0.8}
                  for r in (1, 8, 32))]  # fmt: skip
    task = {"task": "mnist_mlp", "steps": 100, "floor_run_samples_per_s": 1e8}
    perf = {"device": "Test GPU", "threads": 1, "versions": {"torch": "2"},
            "tasks": [task | {"measurements": measured}]}  # fmt: skip
    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "test_gpu.json").write_text(json.dumps(perf))
    (tmp_path / "perf" / "notes.json").write_text("{}")
    with pytest.warns(SkippedRecord, match="notes.json: not a perf file"):
        frame = load_perf(tmp_path / "perf")
    assert len(frame) == 5
    assert set(frame.method) == {"standard", "single", "batched"}
    context = build(load(FIXTURE), perf=frame)
    text = html(context)
    assert 'id="perf-section"' in text
    assert "Test GPU, mnist_mlp, 100 steps" in text
    assert load_perf(tmp_path / "absent").empty


def test_tuning_runs_only_and_odd_failed_files(tmp_path, capsys):
    folder = copy_fixture(tmp_path)
    (folder / "failed").mkdir()
    (folder / "failed" / "0123456789abcdef.json").write_text('{"key": "0123456789abcdef"}')
    assert "no error recorded" in html(build(load(folder)))
    edit_records(folder, lambda r: r if r["spec"]["phase"] == "tune" else None)
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no final runs" in err


def test_readme_cites_the_reference_tables_as_they_are():
    """The README's Results section quotes table IDs of results/reference/quick; they change
    when the records, the statistics or a table's definition do, so the README must follow."""
    reference = TESTS.parent / "results" / "reference" / "quick"
    readme = (TESTS.parent / "README.md").read_text()
    cited = set(re.findall(r"T-[0-9a-f]{8}", readme))
    ids = {t.id for t in tables_of(load(reference))[2].values()}
    assert cited
    assert cited <= ids, f"README cites {sorted(cited - ids)}; the reference gives {sorted(ids)}"
    committed = (reference / "report" / "index.html").read_text()
    assert cited <= set(re.findall(r"T-[0-9a-f]{8}", committed))  # the committed report too


@pytest.mark.filterwarnings("error::report.load.SkippedRecord")
def test_kinds_come_from_the_records_old_and_new(report, tmp_path):
    """A plugin's kind that no registry knows reaches the guidance as its records say; schema-1
    records (no task, no optimizer name or family) are read and reported, kind unknown."""
    folder = copy_fixture(tmp_path)

    def change(record):
        if record["spec"]["task"] == "mnist_logreg":
            record["task"]["kind"] = "graph"
        if record["spec"]["task"] == "smnist_gru":
            record["schema"] = 1
            del record["task"], record["optimizer"]["name"], record["optimizer"]["family"]
            del record["digests"]
        return record

    edit_records(folder, change)
    context = build(load(folder))
    kinds = {line["task"]: line["kind"] for line in context["takeaways"]}
    assert kinds == {"mnist_logreg": "graph with SGD", "mnist_mlp_adam": "MLP with Adam",
                     "smnist_gru": None}  # fmt: skip
    assert any(g.startswith("graph with SGD (mnist_logreg; one task") for g in context["guidance"])
    assert context["guidance"][-1] == "Kind not in the records (schema 1): smnist_gru."
    page = html(context)
    assert "<b>smnist_gru</b> (kind unknown)" in page
    assert "32 of 96 final runs come from records of schema 2 or older" in page  # smnist_gru
    assert "32 final runs come from records of schema 2 or older" in page  # methods
    same = {name: table.id for name, table in report[1]["tables"].items()}
    assert {name: table.id for name, table in context["tables"].items()} == same


def test_budget_section_answers_per_budget(budget_report):
    """fmnist_mlp: constant best at 1 epoch, worst at 3 (the order reverses); mnist_logreg: the
    same order at both budgets (tests/make_report_fixture.py)."""
    _, context, paths = budget_report
    heads = [h["task"] for h in context["matrix"]["tasks"]]
    assert heads == ["fmnist_mlp, 1 epoch", "fmnist_mlp, 3 epochs",
                     "mnist_logreg, 1 epoch", "mnist_logreg, 3 epochs"]  # fmt: skip
    lines = {line["task"]: line["text"] for line in context["takeaways"]}
    table = (
        context["tables"]["budgets"].frame.set_index(["task", "epochs", "schedule"]).sort_index()
    )
    sets = context["budget"]["sets"]
    for task, by_budget in sets.items():
        for epochs, names in by_budget.items():
            words = table.loc[(task, epochs)].verdict
            assert names == sorted(words.index[words.isin(verdicts.GOOD)]), (task, epochs)
    # constant is ahead at 1 epoch and far behind at 3 (tests/make_report_fixture.py)
    assert sets["fmnist_mlp"] == {1: ["constant", "wsd"], 3: ["cosine", "onecycle", "wsd"]}
    assert lines["fmnist_mlp"].startswith(
        "Possibly best at 1 epoch: constant, wsd; at 3 epochs: cosine, onecycle, wsd: the set "
        "changes with the budget (constant only at 1 epoch; cosine, onecycle only at 3 epochs)"
    )
    assert lines["fmnist_mlp"].endswith("possibly best at every budget (robust to it): wsd.")
    fmnist, logreg = (
        " ".join(context["budget"]["sentences"][t]) for t in ("fmnist_mlp", "mnist_logreg")
    )
    assert "Kendall's tau -0.67 (95% CI -1.00 to" in fmnist
    assert "n = 8 and 8 seeds, each budget's resampled on its own" in fmnist
    assert "later for cosine, onecycle, wsd; at the same step for constant" in fmnist
    assert "the two orders agree" in logreg
    added = context["results"].derived_targets
    assert added == {"fmnist_mlp": [0.835]}  # 1 epoch: its own targets are out of reach
    ttt = context["tables"]["budget_time"].frame
    assert set(ttt[ttt.target == 0.835].epochs) == {1, 3}  # the added target, at every budget
    text = paths["html"].read_text()
    assert "<h2>2. Which schedule at which budget</h2>" in text
    assert "<h2>10. How to cite</h2>" in text
    assert "multiple comparisons with the best, §8" in text
    assert context["meta"]["tasks"] == ["fmnist_mlp", "mnist_logreg"]


def test_each_budget_gets_the_verdicts_of_its_runs_alone(budget_report, tmp_path):
    """Every table the report computes per task, at one budget, is what the runs of that budget
    give when they are the only ones (named "task" there, "task, N epochs" here)."""
    _, context, _ = budget_report
    both = {name: t.frame for name, t in context["tables"].items()}
    for epochs in (1, 3):
        folder = copy_fixture(tmp_path / str(epochs), BUDGETS)
        edit_records(folder, lambda r, e=epochs: r if r["spec"]["epochs"] == e else None)
        alone = tables_of(load(folder))[2]
        names = {budgets.label(t, epochs): t for t in ("fmnist_mlp", "mnist_logreg")}
        for name in ("accuracy", "verdicts", "resolution", "speed", "recommendation"):
            mine = both[name][both[name].task.isin(names)].reset_index(drop=True)
            mine = mine.assign(task=mine.task.map(names))
            pd.testing.assert_frame_equal(mine, alone[name].frame, obj=f"{name} at {epochs}")
        per_budget = both["budgets"][both["budgets"].epochs == epochs].set_index(
            ["task", "schedule"]
        )
        words = alone["verdicts"].frame.set_index(["task", "schedule"])
        assert per_budget.verdict.to_dict() == words.verdict.to_dict()
        assert per_budget.gap_ci_lo.to_dict() == words.gap_ci_lo.to_dict()


def applied_lr_digest(record: dict) -> str:
    """The digest of the lr a run of ``record``'s spec applies over its updates (no controller)."""
    spec, budget = record["spec"], record["budget"]
    total, done = budget["total_steps"], budget["steps_done"]
    lr = sequences(spec["schedule"], spec["lr"], Budget(total, budget["steps_per_epoch"]),
                   spec["schedule_params"]).lr  # fmt: skip
    return sequence_digest(lr[:done])


def test_identical_schedules_are_merged_per_budget(tmp_path):
    """A "step" that decays after 2 epochs is "constant" within 1 epoch, not within 3."""
    folder = copy_fixture(tmp_path, BUDGETS)
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        if record["spec"]["schedule"] == "constant" and record["spec"]["phase"] == "final":
            record["spec"] |= {"schedule": "step", "schedule_params": {"step_size": 2}}
            record["key"] = record["key"][::-1]
            record["digests"]["lr"] = applied_lr_digest(record)  # as the engine records it
            (folder / "runs" / f"{record['key']}.json").write_text(json.dumps(record))
    _, merged, cited, _ = tables_of(load(folder))
    assert merged == {
        f"{t}, 1 epoch": [["constant", "step"]] for t in ("fmnist_mlp", "mnist_logreg")
    }
    words = cited["verdicts"].frame
    assert set(words[words.task == "fmnist_mlp, 1 epoch"].schedule) == {
        "constant = step", "cosine", "onecycle", "wsd"}  # fmt: skip
    assert {"constant", "step"} <= set(words[words.task == "fmnist_mlp, 3 epochs"].schedule)
    table = cited["budgets"].frame.set_index(["task", "schedule", "epochs"])
    assert len(table) == 2 * 5 * 2  # tasks x names x budgets: the merged pair under each name
    for task in ("fmnist_mlp", "mnist_logreg"):
        assert table.loc[(task, "step", 1)].equals(table.loc[(task, "constant", 1)])


def test_a_choice_at_an_edge_of_the_lrs_tried_is_flagged_on_page_one(report):
    final = pd.DataFrame(
        {"schedule": ["a", "b", "c", "d"], "task": "t", "lr": [1.0, 0.1, 0.3, 1.0]}
    )
    tune = pd.DataFrame({
        "schedule": ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"],
        "task": "t", "lr": [0.1, 0.3, 1.0] * 3 + [1.0],
    })  # fmt: skip
    assert tables.grid_edges(final, tune) == {("a", "t"): "high", ("b", "t"): "low"}
    results, context, _ = report
    edges = tables.grid_edges(results.final, results.tune)
    cells = [c for row in context["matrix"]["rows"] for c in row["cells"] if c]
    assert sum(c[3] is not None for c in cells) == len(edges)
    page = html(context).split('id="recommendation"')[1].split("</figure>")[0]
    assert page.count("lr at the ") == len(edges) + 1  # each flagged cell, and the key
