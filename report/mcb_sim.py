"""Simulations whose measured rates the methods text cites for ``report/mcb.py`` (the tests
run them and check them against alpha): many synthetic problems with a known truth, all
through ``mcb`` at once (vectorised over problems, in chunks that bound the memory).

- ``null_error_rate``: a complete null (every schedule equally good); the fraction of problems
  in which ``mcb`` calls some schedule better or worse (best, or either worse verdict).
  Measured (``SEED``, 13 schedules, 10 seeds, run SD 0.5 points, margin 0.5 points):
  0 of 2,000 problems over seeds only, 0 of 300 with a 100-example test set per problem.
  The union over possible bests makes "best" and "worse" rarer than alpha under a complete
  null: alpha is what the least favourable configuration, below, spends.
- ``one_ahead``: one schedule ``ahead`` of the others, which tie: the fraction of problems
  whose intervals all hold (the simultaneous coverage, nominally 1 - alpha) and the fraction
  in which the leader is called best (power). Measured (ahead 2 points = 4 run SDs, else as
  above): coverage 0.969, the leader called best in 1.000 of 2,000 problems.
"""

import numpy as np

from report.mcb import BEST, RESAMPLES, WORSE_BEYOND, WORSE_WITHIN, mcb, verdicts
from report.planning import ALPHA
from report.stats import SEED

ACCURACY = 0.85  # the mean accuracy of the simulated schedules
CHUNK = 50  # problems per call of mcb: ~ CHUNK * resamples * schedules^2 floats at a time


def _seed_problems(rng, problems: int, schedules: int, seeds: int, sd: float):
    """acc [problems, schedules, seeds]: a seed effect shared by all schedules (as the same
    seed gives the same data order) and a run effect, each half of the run variance sd^2."""
    shared = rng.normal(0, sd / np.sqrt(2), (problems, 1, seeds))
    return ACCURACY + shared + rng.normal(0, sd / np.sqrt(2), (problems, schedules, seeds)), None


def _example_problems(rng, problems: int, schedules: int, seeds: int, sd: float, examples: int):
    """correct [problems, schedules, seeds, examples]: each test example has a difficulty, each
    schedule its own luck on each example (a schedule x example interaction, so one test set
    can favour a schedule that the population of examples does not) and each run an SD ``sd``
    shift; all schedules equal over the population of examples."""
    shape = (problems, schedules, seeds, examples)
    difficulty = rng.normal(0, 0.1, (problems, 1, 1, examples))
    luck = rng.normal(0, 0.1, (problems, schedules, 1, examples))
    run = rng.normal(0, sd, (problems, schedules, seeds, 1))
    correct = rng.random(shape) < np.clip(ACCURACY + difficulty + luck + run, 0, 1)
    return correct.mean(-1), correct


def _simulate(rng, problems, schedules, seeds, sd, examples, shift, margin, resamples):
    """Verdicts and intervals of ``problems`` problems, in chunks; ``shift`` [schedules] added
    to every run's accuracy (the truth, with equal schedules otherwise)."""
    out = []
    for start in range(0, problems, CHUNK):
        size = min(CHUNK, problems - start)
        if examples:
            acc, correct = _example_problems(rng, size, schedules, seeds, sd, examples)
        else:
            acc, correct = _seed_problems(rng, size, schedules, seeds, sd)
        res = mcb(acc + shift[:, None], correct, resamples=resamples)
        out.append((verdicts(res.lower, res.upper, margin), res.lower, res.upper))
    return [np.concatenate(parts) for parts in zip(*out, strict=True)]


def null_error_rate(
    problems: int = 2000, schedules: int = 13, seeds: int = 10, sd: float = 0.005,
    examples: int = 0, margin: float = 0.005, resamples: int = RESAMPLES // 4,
) -> float:  # fmt: skip
    """The fraction of ``problems`` complete-null problems in which some schedule is called
    best or worse; over seeds only, or with a test set of ``examples`` examples."""
    rng = np.random.default_rng(SEED)
    shift = np.zeros(schedules)
    verdict, *_ = _simulate(rng, problems, schedules, seeds, sd, examples, shift, margin, resamples)
    claims = np.isin(verdict, [BEST, WORSE_WITHIN, WORSE_BEYOND])
    return float(claims.any(-1).mean())


def one_ahead(
    ahead: float = 0.02, problems: int = 2000, schedules: int = 13, seeds: int = 10,
    sd: float = 0.005, margin: float = 0.005, resamples: int = RESAMPLES // 4,
) -> tuple[float, float]:  # fmt: skip
    """(simultaneous coverage, fraction of problems calling the leader best) with schedule 0
    ``ahead`` (fraction) of the other, equal schedules; over seeds only."""
    rng = np.random.default_rng(SEED)
    shift = np.r_[ahead, np.zeros(schedules - 1)]
    theta = np.r_[ahead, np.full(schedules - 1, -ahead)]
    verdict, lower, upper = _simulate(rng, problems, schedules, seeds, sd, 0, shift, margin, resamples)
    covered = ((lower <= theta) & (theta <= upper)).all(-1)
    return float(covered.mean()), float(np.mean(verdict[:, 0] == BEST))
