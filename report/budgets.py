"""Training budgets: which schedule at which budget, and whether the answer changes with it.

A results folder may hold a task's final runs at several budgets (``spec.epochs``: a sweep
with ``[run] epochs = [1, 3]`` tunes, selects and runs the final seeds at each). Runs at
different budgets are different problems, so ``split`` names each task x budget
"task, N epochs" (a task with one budget keeps its name) and the report computes everything
per problem: verdicts, paired tests, P(best), merged schedules, time to target, ranks. The
budget section then lines up each task's budgets, as the runs give them:
- ``verdicts``: every schedule's accuracy, P(best) and verdict at every budget;
- ``ranking``: Kendall's tau between the schedules' mean test accuracies at two budgets, with
  a CI by resampling the seeds, which every budget shares (``stats.rank_agreement``);
- ``robust``: the schedules best or equivalent at every budget;
- ``times``: Kaplan-Meier time to each target, in steps and epochs, at every budget.
A schedule merged with another at one budget ("step = multistep", ``identical.py``) counts
under each of its names, so that every budget has every name.
"""

import itertools
import math
from dataclasses import replace

import pandas as pd

from report import stats
from report.findings import name_list, plural
from report.load import Results
from report.numbers import fixed, percent
from report.verdicts import BEST_SURE, GOOD


def label(task: str, epochs: int) -> str:
    """A problem's name: "mnist_logreg, 3 epochs"."""
    return f"{task}, {plural(epochs, 'epoch')}"


def split(results: Results) -> Results:
    """``results`` with each run's task replaced by its problem: "task, N epochs" when the
    task's runs have several budgets, else the task; ``problems`` maps each to (task, epochs)."""
    runs = results.runs
    several = runs.groupby("task").epochs.nunique() > 1
    pairs = runs[["task", "epochs"]].drop_duplicates().itertuples(index=False)
    names = {(t, e): label(t, e) if several[t] else t for t, e in pairs}
    of_key = {k: names[t, e] for k, t, e in runs[["key", "task", "epochs"]].itertuples(index=False)}
    problems = {name: (t, int(e)) for (t, e), name in names.items()}

    def relabel(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(task=frame.key.map(of_key))

    return replace(results, runs=relabel(runs), curves=relabel(results.curves), problems=problems)


def order(results: Results, problems) -> list[str]:
    """Problems by task, then budget (1, 3, 10 epochs, not 1, 10, 3 as text sorts them)."""
    return sorted(problems, key=lambda p: results.problems.get(p, (p, 0)))


def tasks(results: Results) -> dict[str, list[str]]:
    """Each task whose final runs have several budgets: its problems, shortest budget first."""
    out: dict[str, list[str]] = {}
    for problem in order(results, results.final.task.unique()):
        out.setdefault(results.task_of(problem), []).append(problem)
    return {task: problems for task, problems in out.items() if len(problems) > 1}


def _by_budget(results: Results, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of tasks with several budgets, as task and epochs; a merged schedule's rows
    under each of its names."""
    rows = frame[frame.task.isin([p for ps in tasks(results).values() for p in ps])]
    return rows.assign(
        task=rows.task.map(results.task_of),
        epochs=rows.task.map(lambda p: results.problems[p][1]),
        schedule=rows.schedule.str.split(" = "),
    ).explode("schedule", ignore_index=True)


def verdicts(results: Results, acc: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Every schedule at every budget: task, schedule, epochs, lr (selected at that budget), n,
    acc_mean with its 95% t interval, p_best and the accuracy verdict (``tables.paired``)."""
    both = acc.merge(paired[["task", "schedule", "p_best", "verdict"]], on=["task", "schedule"])
    cols = ["task", "schedule", "epochs", "lr", "n", "acc_mean", "acc_ci_lo", "acc_ci_hi"]
    rows = _by_budget(results, both)[[*cols, "p_best", "verdict"]]
    return rows.sort_values(["task", "schedule", "epochs"], ignore_index=True)


def ranking(results: Results) -> pd.DataFrame:
    """Per task and pair of budgets: the schedules run at both, the seeds every one of them ran
    at both, and Kendall's tau (95% CI) between their orders by mean test accuracy."""
    rows = []
    for task, g in _by_budget(results, results.final).groupby("task"):
        acc = g.pivot_table(
            index="seed", columns=["epochs", "schedule"], values="test_acc", aggfunc="first"
        )
        for a, b in itertools.combinations(sorted(g.epochs.unique()), 2):
            names = acc[a].columns.intersection(acc[b].columns)
            pair = pd.concat([acc[a][names], acc[b][names]], axis=1, keys=["a", "b"]).dropna()
            if len(names) < 2 or pair.empty:
                continue
            tau = stats.rank_agreement(pair["a"].to_numpy(), pair["b"].to_numpy())
            rows.append({"task": task, "epochs_a": a, "epochs_b": b, "n_schedules": len(names),
                         "n_seeds": len(pair), "tau": tau[0], "tau_ci_lo": tau[1],
                         "tau_ci_hi": tau[2]})  # fmt: skip
    return pd.DataFrame(rows)


def robust(table: pd.DataFrame) -> dict[str, list[str]]:
    """Per task of ``verdicts``' table: the schedules best or equivalent at every budget."""
    out = {}
    for task, g in table.groupby("task"):
        good = g[g.verdict.isin(GOOD)].groupby("schedule").epochs.nunique()
        out[task] = sorted(good.index[good == g.epochs.nunique()])
    return out


def times(results: Results, ttt: pd.DataFrame) -> pd.DataFrame:
    """Time to every target some run of the task reached, per schedule and budget: n,
    n_reached and the Kaplan-Meier median (95% CI) in steps and epochs
    (``tables.time_to_target``, whose added targets are measured at every budget)."""
    rows = _by_budget(results, ttt)
    some = rows.groupby(["task", "target"]).n_reached.transform("sum") > 0
    cols = ["task", "target", "schedule", "epochs", "n", "n_reached"]
    cols += [f"{unit}_{s}" for unit in ("step", "epoch") for s in ("median", "lo", "hi")]
    return rows[some][cols].sort_values(["task", "target", "schedule", "epochs"], ignore_index=True)


def _bests(results: Results, task: str, acc, paired) -> list[tuple[str, str]]:
    """Per budget of a task: (its best schedule, "at N epochs: the best, its mean (95% CI, n;
    P(best))")."""
    out = []
    for problem in tasks(results)[task]:
        best = paired[(paired.task == problem) & paired.verdict.str.startswith("best")].iloc[0]
        a = acc[(acc.task == problem) & (acc.schedule == best.schedule)].iloc[0]
        ci = (
            "no CI"
            if math.isnan(a.acc_ci_lo)
            else f"95% CI {fixed(a.acc_ci_lo, 4)} to {fixed(a.acc_ci_hi, 4)}"
        )
        at = f"at {plural(results.problems[problem][1], 'epoch')}: {best.schedule}"
        sure = f"best in {percent(best.p_best)} of seed resamples"
        out.append((best.schedule, f"{at}, {fixed(a.acc_mean, 4)} ({ci}, n = {int(a.n)}; {sure})"))
    return out


def takeaway(results: Results, task: str, acc, paired, robust_: dict) -> str:
    """Page 1's line for a task with several budgets: the best at each, and the robust ones."""
    at = "; ".join(text for _, text in _bests(results, task, acc, paired))
    return f"Best {at}; best or equivalent at every budget: {name_list(robust_[task])}."


def sentences(results: Results, task: str, acc, paired, section: dict) -> list[str]:
    """What the budget section says about one task: the best at each budget with its numbers,
    whether the order of the schedules changes, the robust schedules and the time to target."""
    bests = _bests(results, task, acc, paired)
    if len({name for name, _ in bests}) == 1:
        change = "the same schedule at every budget"
    else:
        change = "the best changes with the budget"
        uncertain = paired[paired.task.isin(tasks(results)[task])].verdict == "best, uncertain"
        if uncertain.any():
            change += f" (where P(best) is under {percent(BEST_SURE)}, another could be the best)"
    out = [f"Highest mean test accuracy {'; '.join(t for _, t in bests)}: {change}."]
    ranks = section["ranking"]
    out += [_order_sentence(r) for r in ranks[ranks.task == task].itertuples()]
    out.append(
        "Best or equivalent at every budget (robust to the budget): "
        f"{name_list(section['robust'][task])}."
    )
    return out + _time_sentences(section["times"][section["times"].task == task])


def _order_sentence(r) -> str:
    if math.isnan(r.tau_ci_lo):
        verdict = "no interval: every resample has tied means"
    elif r.tau_ci_lo > 0:
        verdict = "the two orders agree"
    elif r.tau_ci_hi < 0:
        verdict = "the order reverses"
    else:
        verdict = "the orders are shown neither to agree nor to reverse"
    return (
        f"Order of the {r.n_schedules} schedules by mean test accuracy at "
        f"{plural(r.epochs_a, 'epoch')} against {plural(r.epochs_b, 'epoch')}: Kendall's tau "
        f"{fixed(r.tau, 2, sign=True)} (95% CI {fixed(r.tau_ci_lo, 2, sign=True)} to "
        f"{fixed(r.tau_ci_hi, 2, sign=True)}; n = {r.n_seeds} seeds, resampled alike at both "
        f"budgets; +1: the same order, -1: reversed): {verdict}."
    )


def _time_sentences(t: pd.DataFrame) -> list[str]:
    """Shortest against longest budget, in steps, to the hardest target at least half the runs
    reached at every budget: which schedules got there sooner, later or at the same step."""
    share = t.groupby(["target", "epochs"])[["n_reached", "n"]].sum()
    share = (share.n_reached / share.n).groupby("target").min()
    if not (share >= 0.5).any():
        return []
    target = share.index[share >= 0.5].max()
    short, long = t.epochs.min(), t.epochs.max()
    steps = t[t.target == target].pivot(index="schedule", columns="epochs", values="step_median")
    finite = steps[[short, long]].map(math.isfinite).all(axis=1)
    d = steps[long] - steps[short]
    groups = {"sooner": finite & (d < 0), "later": finite & (d > 0),
              "at the same step": finite & (d == 0),
              "not reached by half the runs at one of them": ~finite}  # fmt: skip
    said = "; ".join(f"{w} for {', '.join(steps.index[m])}" for w, m in groups.items() if m.any())
    return [
        f"Time to dev accuracy {target:g} at {plural(long, 'epoch')} against "
        f"{plural(short, 'epoch')} (Kaplan-Meier median in steps): {said}. Every target, "
        "schedule and budget is in the table of times across budgets."
    ]
