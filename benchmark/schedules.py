"""Deprecated alias of ``benchmark.catalogue.schedules``, kept for one release so that plugins
written against the flat layout keep working: importing it warns and gives that module."""

import importlib
import sys
import warnings

warnings.warn(
    f"{__name__} is deprecated: import benchmark.catalogue.schedules",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = importlib.import_module("benchmark.catalogue.schedules")
