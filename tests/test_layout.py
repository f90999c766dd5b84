"""The flat layout's plugin modules stay importable for one release, with a warning."""

import importlib
import sys

import pytest

ALIASES = {
    "benchmark.tasks": "benchmark.catalogue.tasks",
    "benchmark.optim": "benchmark.catalogue.optimizers",
    "benchmark.schedules": "benchmark.catalogue.schedules",
    "benchmark.models": "benchmark.engines.models",
}


@pytest.mark.parametrize(("old", "new"), ALIASES.items())
def test_an_old_module_name_warns_and_is_the_new_module(monkeypatch, old, new):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: import {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)  # registries and decorators are the same
