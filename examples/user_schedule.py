"""Two user schedules, one per convention; name them as ``module:function``.

From the repository root:

    python -m benchmark schedule examples.user_schedule:halve_every_3_epochs --csv
    python -m benchmark schedule examples.user_schedule:cosine_to_tenth --plot cosine.png

- ``f(epoch, lr) -> lr``, the Keras LearningRateScheduler convention: called once at the start
  of each epoch (from 0) with the lr of the epoch before (the run's lr before epoch 0); the lr
  it returns holds for the whole epoch.
- ``f(step, total_steps) -> factor``: called for each optimizer step (from 0); the lr of that
  step is the run's lr times the factor.

Either must give a finite lr >= 0 at every step. The function's first docstring line is its
description in plots.
"""

import math


def halve_every_3_epochs(epoch: int, lr: float) -> float:
    """Keras style: halve the lr at epochs 3, 6, 9, ..."""
    return lr / 2 if epoch > 0 and epoch % 3 == 0 else lr


def cosine_to_tenth(step: int, total_steps: int) -> float:
    """Per step: cosine from the run's lr down to a tenth of it."""
    return 0.1 + 0.9 * (1 + math.cos(math.pi * step / total_steps)) / 2
