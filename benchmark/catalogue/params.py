"""Checking user parameters against a function's keyword-only annotations (no torch here).

Schedules and optimizers are plain functions whose keyword-only parameters, with their type
annotations, are what users may set (``--set schedule.KEY=VALUE``, sweep files). Values come
from TOML or Python, so ``int`` fits ``float`` but ``bool`` fits neither.
"""

import importlib
import inspect
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any, Literal, get_args, get_origin

from benchmark.catalogue.errors import InputError


def keyword_params(fn: Callable) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of ``fn``: the ones users may set."""
    sig = inspect.signature(fn).parameters.values()
    return {p.name: p for p in sig if p.kind is p.KEYWORD_ONLY}


def check(known: Mapping[str, inspect.Parameter], params: Mapping) -> dict[str, Any]:
    """``params`` as a dict, after checking each key is known and each value fits its type."""
    for key, value in params.items():
        if key not in known:
            raise InputError(f"unknown parameter {key!r}; known: {', '.join(known) or 'none'}")
        kind = known[key].annotation
        need(fits(value, kind), f"{key} must be {in_words(kind)}", value)
    return dict(params)


def fits(value, kind) -> bool:
    """Whether ``value`` (from TOML or Python) matches the annotation ``kind``."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        return isinstance(value, str) and value in args
    if origin is UnionType:
        return any(fits(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(fits(v, args[0]) for v in value)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def in_words(kind) -> str:
    """The annotation ``kind`` in words, for error messages."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(f'"{arg}"' for arg in args)
    if origin is UnionType:
        return " or ".join(in_words(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"a list, each {in_words(args[0])}"
    return {int: "an integer", float: "a number", bool: "true or false"}[kind]


def need(ok: bool, what: str, value) -> None:
    """Raise ``InputError("<what>, got <value>")`` unless ``ok``."""
    if not ok:
        raise InputError(f"{what}, got {value!r}")


def load_named(path):
    """The object a ``"module:name"`` reference names (an optimizer class, an engine's train
    function, a data set's loader or source), imported when first needed; an object given
    itself (a plugin's callable) as it is."""
    if callable(path):
        return path
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
