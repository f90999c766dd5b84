"""Operations per training step (benchmark/tools/ops.py): the outermost aten operators, each
backward operator included, and the operators that launch a kernel, per update of a group
trained through the engine contract."""

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


def test_launches_are_the_operators_that_reach_a_kernel():
    """linear is taken apart (t, a view, and addmm), views launch nothing, and each backward
    operator launches; the forward's 4 launches and the backward's are counted by hand."""
    a, b = torch.randn(4, 3), torch.randn(3, 2, requires_grad=True)
    with ops.Launches() as launches:
        h = torch.nn.functional.linear(a, b.T)  # t (view), t (view), mm: 1
        loss = h.reshape(-1).relu().sum()  # reshape of a contiguous tensor: a view; relu, sum
        loss.backward()  # ones_like (the seed), expand (view), threshold_backward, mm
    assert launches.count == 3 + 3
    with ops.Launches() as none:
        torch.empty(3).view(3, 1).transpose(0, 1).detach()
    assert none.count == 0


@pytest.mark.data
@pytest.mark.parametrize("engine", ["single", "batched"])
def test_every_update_dispatches_the_same_operators(engine):
    splits = data.load("mnist", None, CPU)
    group = perf.sweep_group("mnist_logreg", 2, steps=1, eval_size=10)
    one, two = (ops.per_step(engine, group, splits, CPU, steps=k) for k in (1, 2))
    assert one == two  # updates 2 and 3-4: the same counts per update
    assert one.ops == int(one.ops) > one.launches == int(one.launches) > 0
