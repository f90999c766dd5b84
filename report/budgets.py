"""Training budgets: which schedule at which budget, and whether the answer changes with it.

A results folder may hold a task's final runs at several budgets (``spec.epochs``: a sweep
with ``[run] epochs = [1, 3]`` tunes, selects and runs the final seeds at each). Runs at
different budgets are different problems, so ``split`` names each task x budget
"task, N epochs" (a task with one budget keeps its name) and the report computes everything
per problem: verdicts, comparisons with the best, merged schedules, time to target, ranks.
The budget section then lines up each task's budgets, as the runs give them:
- ``verdicts``: every schedule's accuracy, gap to the best and verdict at every budget, and
  ``sets``: the possibly-best set at each budget (``verdicts.GOOD``: best, possibly best or
  within the margin, whose intervals all reach 0), which answers "does it change?" and names
  the schedules robust to the budget (possibly best at every one);
- ``ranking``: Kendall's tau between the distinct schedules' mean test accuracies at two
  budgets, with a CI by resampling each budget's seeds on its own (``stats.rank_agreement``:
  the same seed's runs at two budgets are not alike enough to pair);
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
from report.identical import merged_away
from report.load import Results
from report.numbers import fixed
from report.verdicts import GOOD


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


def verdicts(results: Results, acc: pd.DataFrame, verdicts_: pd.DataFrame) -> pd.DataFrame:
    """Every schedule at every budget: task, schedule, epochs, lr (selected at that budget), n,
    acc_mean with its 95% t interval, gap to the best with its simultaneous interval, and the
    accuracy verdict (``verdicts.accuracy``)."""
    cols = ["task", "schedule", "gap", "gap_ci_lo", "gap_ci_hi", "verdict"]
    both = acc.merge(verdicts_[cols], on=["task", "schedule"])
    cols = ["task", "schedule", "epochs", "lr", "n", "acc_mean", "acc_ci_lo", "acc_ci_hi"]
    rows = _by_budget(results, both)[[*cols, "gap", "gap_ci_lo", "gap_ci_hi", "verdict"]]
    return rows.sort_values(["task", "schedule", "epochs"], ignore_index=True)


def sets(table: pd.DataFrame) -> dict[str, dict[int, list[str]]]:
    """Per task of ``verdicts``' table: each budget's possibly-best set (``GOOD``)."""
    good = table[table.verdict.isin(GOOD)]
    return {
        task: {int(e): sorted(good.schedule[(good.task == task) & (good.epochs == e)])
               for e in sorted(g.epochs.unique())}
        for task, g in table.groupby("task")
    }  # fmt: skip


def ranking(results: Results) -> pd.DataFrame:
    """Per task and pair of budgets: the distinct schedules run at both (a name merged into
    another's at either budget left out), the seeds each budget ran all of them on, and
    Kendall's tau (95% CI) between their orders by mean test accuracy."""
    rows, later = [], merged_away(results.final.schedule.unique())
    for task, g in _by_budget(results, results.final).groupby("task"):
        acc = g.pivot_table(
            index="seed", columns=["epochs", "schedule"], values="test_acc", aggfunc="first"
        )
        for a, b in itertools.combinations(sorted(g.epochs.unique()), 2):
            names = acc[a].columns.intersection(acc[b].columns).difference(sorted(later))
            at_a, at_b = acc[a][names].dropna(), acc[b][names].dropna()
            if len(names) < 2 or at_a.empty or at_b.empty:
                continue
            tau = stats.rank_agreement(at_a.to_numpy(), at_b.to_numpy())
            rows.append({"task": task, "epochs_a": a, "epochs_b": b, "n_schedules": len(names),
                         "n_seeds_a": len(at_a), "n_seeds_b": len(at_b), "tau": tau[0],
                         "tau_ci_lo": tau[1], "tau_ci_hi": tau[2]})  # fmt: skip
    return pd.DataFrame(rows)


def times(results: Results, ttt: pd.DataFrame) -> pd.DataFrame:
    """Time to every target some run of the task reached, per schedule and budget: n,
    n_reached and the Kaplan-Meier median (95% CI) in steps and epochs
    (``tables.time_to_target``, whose added targets are measured at every budget)."""
    rows = _by_budget(results, ttt)
    some = rows.groupby(["task", "target"]).n_reached.transform("sum") > 0
    cols = ["task", "target", "schedule", "epochs", "n", "n_reached"]
    cols += [f"{unit}_{s}" for unit in ("step", "epoch") for s in ("median", "lo", "hi")]
    return rows[some][cols].sort_values(["task", "target", "schedule", "epochs"], ignore_index=True)


def _sets_sentence(by_budget: dict[int, list[str]]) -> str:
    """Does the possibly-best set change with the budget? Each budget's set, and the answer."""
    at = "; ".join(f"at {plural(e, 'epoch')}: {name_list(s)}" for e, s in by_budget.items())
    sets_ = [set(s) for s in by_budget.values()]
    if all(s == sets_[0] for s in sets_):
        return f"Possibly best {at}: the same set at every budget."
    only = [
        f"{name_list(sorted(s - set.union(*(o for o in sets_ if o is not s))))} only at "
        f"{plural(e, 'epoch')}"
        for e, s in zip(by_budget, sets_, strict=True)
        if s - set.union(*(o for o in sets_ if o is not s))
    ]
    both = set.intersection(*sets_)
    return (
        f"Possibly best {at}: the set changes with the budget"
        + (f" ({'; '.join(only)})" if only else "")
        + f"; possibly best at every budget (robust to it): {name_list(sorted(both))}."
    )


def takeaway(task: str, by_budget: dict[int, list[str]]) -> str:
    """Page 1's line for a task with several budgets: the possibly-best set at each."""
    return _sets_sentence(by_budget)


def sentences(results: Results, task: str, section: dict) -> list[str]:
    """What the budget section says about one task: the possibly-best set at each budget and
    whether it changes, whether the order of the schedules changes, and the time to target."""
    out = [_sets_sentence(section["sets"][task])]
    ranks = section["ranking"]
    out += [_order_sentence(r) for r in ranks[ranks.task == task].itertuples()]
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
        f"Order of the {r.n_schedules} distinct schedules by mean test accuracy at "
        f"{plural(r.epochs_a, 'epoch')} against {plural(r.epochs_b, 'epoch')}: Kendall's tau "
        f"{fixed(r.tau, 2, sign=True)} (95% CI {fixed(r.tau_ci_lo, 2, sign=True)} to "
        f"{fixed(r.tau_ci_hi, 2, sign=True)}; n = {r.n_seeds_a} and {r.n_seeds_b} seeds, each "
        f"budget's resampled on its own; +1: the same order, -1: reversed): {verdict}."
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
