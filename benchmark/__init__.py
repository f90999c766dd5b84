"""schedule-bench: train small networks under every learning-rate schedule and record the runs."""

from benchmark.catalogue.errors import InputError

__all__ = ["InputError"]
