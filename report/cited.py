"""The cited tables of a results folder, computed before anything is drawn: what
``python -m report DIR --tables-only`` writes in seconds (no figure, HTML or PDF), and what the
full report (``build.py``) shows and links.
"""

import math
from pathlib import Path

import pandas as pd

from report import budgets, classification, identical, stats, tables, verdicts
from report.load import Results
from report.tables import Table

TITLES = {  # each cited table's title, shown in its caption after its ID
    "recommendation": "Verdict per problem and schedule on final test accuracy (from the "
    "comparison with the best: gap, the schedule's mean minus the best mean of the others, with "
    "its simultaneous 95% interval) and on time to the task's headline target",
    "accuracy": "Final test accuracy per task and schedule: mean, std, 95% t interval of the "
    "mean, interquartile mean (IQM); diverged runs included",
    "verdicts": "Comparisons with the best on final test accuracy (multiple comparisons with "
    "the best, paired by seed; resampled over seeds and over test examples where every run's "
    "record keeps its per-example results): mean, gap (the schedule's mean minus the best mean "
    "of the others) with its simultaneous 95% interval (a problem's intervals hold together), "
    "top_share (the share of resamples in which it has the top mean, kept within [1/B, 1 - "
    "1/B]: no probability of being best), verdict",
    "resolution": "Resolution and planning per problem: schedules, seeds every schedule ran, "
    "test examples resampled (0: the test set counted as fixed), seed_sd (SD of a run's paired "
    "difference with the best), test_set_se (what the test set adds to the standard error of a "
    "difference of means), resolvable (the smallest margin the problem can show), the chosen "
    "margin, below (the margin is below what it can show), and the seeds per schedule with which "
    "a sweep would resolve the margin (at seed_sd and at its upper 95% confidence limit)",
    "speed": "Time to each problem's headline dev-accuracy target: runs that reached it (the "
    "fraction with its exact 95% interval), restricted mean epochs to it (rmst: a run that never "
    "reached it counts as its whole budget; 95% t interval), gap (rmst minus the smallest rmst "
    "of the others, paired by seed) with its simultaneous 95% interval, verdict",
    "time_to_target": "Time to every dev-accuracy target some run reached: runs that reached "
    "it and the Kaplan-Meier median (95% CI) in steps, epochs and training seconds; n.r.: not "
    "reached (inf in the CSV)",
    "metrics": "Every test metric per task and schedule: accuracy, macro F1, macro precision and "
    "recall, one-vs-rest ROC-AUC and average precision (AP) of the softmax scores, macro; each "
    "the mean over the final runs with its 95% t interval; ROC-AUC and AP over the n_scored "
    "runs whose scores were finite (a diverged run's are not), AP from records of schema 4 on",
    "ranks": "Rank of each schedule on mean test accuracy per problem (1 = best among the "
    "problem's distinct schedules) and its mean rank over tasks, each task's budgets averaged "
    "first (descriptive)",
    "robustness": "LR robustness from the tune runs: the best grid lr, and the contiguous range "
    f"of grid lrs around it whose mean dev accuracy is within {100 * stats.ROBUST_POINTS:g} "
    "points of it (width = lr_to / lr_from)",
    "lr_sensitivity": "Dev accuracy at the end of the budget against lr, mean over tuning seeds",
    "budgets": "Every schedule at every budget of a task run at several (epochs; each budget "
    "with its own tuned lr and the same seeds): the lr selected there, final test accuracy "
    "(mean, 95% t interval), the gap to the best of the others at that budget with its "
    "simultaneous 95% interval, and the verdict; a schedule merged with another at a budget is "
    "listed under each name",
    "budget_ranking": "Does the order of the schedules change with the budget? Kendall's tau-b "
    "between the distinct schedules' mean test accuracies at two budgets (+1: the same order, "
    "-1: reversed), with a 95% percentile interval over resamples of each budget's seeds",
    "budget_time": "Time to each dev-accuracy target some run reached, per schedule and budget "
    "(each budget with its own tuned lr): runs that reached it and the Kaplan-Meier median "
    "(95% CI) in steps and epochs; n.r.: not reached (inf in the CSV)",
    "reproduction": "Reproduction check: test accuracy of both result sets; agree when a Welch "
    "TOST shows the means within the margin, differ when a Welch t test separates them (Holm)",
}


def tables_of(results: Results) -> tuple[Results, dict, dict[str, Table], pd.DataFrame]:
    """What the report computes before it draws: the results split into problems (task x
    budget) with identical schedules merged and targets added, the merged groups, the cited
    tables by name (the verdict matrix first) and time to every target."""
    margin = verdicts.margin(results.sweep)
    merged_results, merged = identical.merge(budgets.split(results))
    results = tables.reachable_targets(merged_results)
    final, tune = results.final, results.tune

    def cite(name: str, frame: pd.DataFrame, runs: pd.DataFrame = final) -> Table:
        env = tables.environment(results, runs.key)
        return Table(name, TITLES[name], frame, runs.key.tolist(), env)

    every_ttt = tables.time_to_target(results)
    words, resolution = verdicts.accuracy(final, results.examples, margin)
    speed = verdicts.speeds(final, every_ttt)
    some = every_ttt.groupby(["task", "target"]).n_reached.transform("sum") > 0
    acc = tables.accuracy(final)
    cited = {
        "recommendation": cite("recommendation", verdicts.matrix(words, speed)),
        "accuracy": cite("accuracy", acc),
        "metrics": cite("metrics", classification.table(final)),
        "verdicts": cite("verdicts", words),
        "resolution": cite("resolution", resolution),
        "speed": cite("speed", speed),
        "ranks": cite("ranks", tables.ranks(final, results.task_of)),
        "time_to_target": cite("time_to_target", every_ttt[some].reset_index(drop=True)),
    }
    if budgets.tasks(results):
        runs = final[final.task.isin([p for ps in budgets.tasks(results).values() for p in ps])]
        cited["budgets"] = cite("budgets", budgets.verdicts(results, acc, words), runs)
        cited["budget_ranking"] = cite("budget_ranking", budgets.ranking(results), runs)
        cited["budget_time"] = cite("budget_time", budgets.times(results, every_ttt), runs)
    if len(tune):
        sens = tables.sensitivity(tune)
        cited["robustness"] = cite("robustness", stats.robustness(sens), tune)
        cited["lr_sensitivity"] = cite("lr_sensitivity", sens, tune)
    return results, merged, cited, every_ttt


def write_tables(cited: dict[str, Table], folder: Path) -> Path:
    """tables/<ID>.csv|.md|.tex of every table, and index.md naming them, in ``folder`` (tables
    of an earlier report are removed: their IDs are not these); returns index.md's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("T-*.*"):
        old.unlink()
    index = ["| table | name | title | runs |", "|---|---|---|---|"]
    for table in cited.values():
        table.write(folder)
        index.append(
            f"| [{table.id}]({table.id}.md) | {table.name} | {table.title} | {len(table.keys)} |"
        )
    (folder / "index.md").write_text("\n".join(index) + "\n")
    return folder / "index.md"


def plan_text(results: Results, margin: float) -> str:
    """Per problem of ``results``: the seeds per schedule with which a sweep would resolve
    ``margin`` (a fraction), as a range (``planning.seeds_to_plan``), and what it resolves now."""
    merged = identical.merge(budgets.split(results))[0]
    rows = verdicts.accuracy(merged.final, merged.examples, margin)[1]
    lines = [
        f"Seeds per schedule to resolve a margin of {100 * margin:g} accuracy points (at the SD "
        "of paired run differences .. at its upper 95% confidence limit):"
    ]
    for r in rows.itertuples():
        now = f"now {r.n_seeds} seeds x {r.n_examples or 'a fixed set of'} test examples"
        if math.isnan(r.resolvable):
            lines.append(f"  {r.task}: no comparison ({now})")
            continue
        lo, hi = (f"{x:.0f}" if math.isfinite(x) else "more than 1,000" for x in
                  (r.seeds_plan_lo, r.seeds_plan_hi))  # fmt: skip
        plan = f"{lo} .. {hi}" if math.isfinite(r.seeds_plan_lo) else (
            "no number of seeds on this test set (it needs a larger one)")  # fmt: skip
        lines.append(f"  {r.task}: {plan} ({now}, resolving {100 * r.resolvable:.2f} points)")
    return "\n".join(lines)
