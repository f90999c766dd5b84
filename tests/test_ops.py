"""Operations per training step (benchmark/tools/ops.py): the outermost aten operators, each
backward operator included, per update of a group trained through the engine contract."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from benchmark.data import datasets as data
from benchmark.tools import ops, perf

CPU = torch.device("cpu")


def test_an_operator_called_inside_another_is_not_counted_again():
    a, b = torch.randn(4, 3), torch.randn(3, 2, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss = torch.nn.functional.linear(a, b.T).relu().sum()  # linear calls t and addmm/mm
        loss.backward()
    events = prof.events()
    names = [e.name for e in events if e.name.startswith("aten::")]
    assert "aten::mm" in names or "aten::addmm" in names  # nested ones are profiled ...
    outer = ops.outermost_aten(events)
    assert outer < len(names)  # ... and not counted
    # forward: t, linear, relu, sum; backward (no aten parent): at least one each of sum's,
    # relu's and linear's gradient
    assert outer >= 4 + 3


@pytest.mark.data
@pytest.mark.parametrize("engine", ["single", "batched"])
def test_every_update_dispatches_the_same_operators(engine):
    splits = data.load("mnist", None, CPU)
    group = perf.sweep_group("mnist_logreg", 2, steps=1, eval_size=10)
    one, two = (ops.per_step(engine, group, splits, CPU, steps=k) for k in (1, 2))
    assert one == two  # updates 2 and 3-4: the same count per update
    assert one == int(one) > 0
