"""The batched engine's layout (benchmark/engines/group.py, layers.py, stacked.py): optimizer
blocks as row ranges of flat weights, which runs read which batch, each run's stacked forward
against its own module, evaluation passes, test logits of the runs that end, the graph-ready
step, and how many operations a block's update takes. Records against the single engine:
test_batched.py."""

import pytest
import torch
from test_batched import SMALL
from test_batched import group as group_of
from torch.utils._python_dispatch import TorchDispatchMode

from benchmark.catalogue.spec import RunSpec
from benchmark.catalogue.tasks import TASKS
from benchmark.engines import batched, device, group, models, stacked
from benchmark.engines.batched import GroupRun, train_group
from benchmark.engines.semantics import DataOrder, build_model
from testkit import assert_equivalent, untimed

CPU = torch.device("cpu")
MOMENTUM = {"momentum": 0.9, "weight_decay": 5e-4}


@pytest.mark.parametrize("model", ["logreg", "mlp", "cnn_2c2d", "gru"])
def test_each_runs_stacked_forward_is_its_modules(model):
    """Four runs with their own weights (row r: seed r's), reading separate inputs, one shared
    input, and two segments (one input read by one run, one by three): each row is its own
    module's logits (the CNN's convolutions as products, the GRU's cell written out)."""
    task = next(t for t in TASKS.values() if t.model == model)
    runs = [build_model(task, seed, CPU) for seed in range(4)]
    flat = stacked.Flat(runs[0])
    params = flat.views(flat.stack(runs, CPU).detach())
    forward = stacked.forward_for(runs[0], models.MODELS[model].stacked)
    x = torch.randn(4, 5, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cases = [
            (forward(params, x, ((4, 1),)), [0, 1, 2, 3]),  # run r reads x[r]
            (forward(params, x[:1], ((1, 4),)), [0, 0, 0, 0]),  # every run reads x[0]
            (forward(params, x[:2], ((1, 1), (1, 3))), [0, 1, 1, 1]),
        ]
        for logits, reads in cases:
            for r, module in enumerate(runs):
                want = module(x[reads[r]])
                torch.testing.assert_close(logits[r], want, rtol=1e-5, atol=1e-5)


def test_a_cut_rewrites_the_coefficient_tables_in_place(digit_tasks):
    """Each block's coefficients are its columns of the group's two tables; a controller's cut
    (``refresh``) writes new values into the same memory, which a captured step reads."""
    specs = batched.order(group_of("mnist_logreg"))
    run = GroupRun(specs, digit_tasks, CPU, forward_of("mnist_logreg"))
    where = {kind: table.data_ptr() for kind, table in run.tables.items()}
    before = run.tables[torch.float32].clone()
    run.lr[3:, 4] *= 0.1  # as a plateau cut of run 4 from update 3 on
    run.refresh()
    assert {kind: table.data_ptr() for kind, table in run.tables.items()} == where
    for block in run.blocks:
        rows = range(block.rows.start, block.rows.stop)
        want = block.step.coefficients(run.lr[:, rows], run.momentum[:, rows])
        assert {name for name, _, _ in block.columns} == set(want)
        for name, kind, at in block.columns:
            got = run.tables[kind][:, at : at + len(rows), 0]
            expected = torch.tensor(want[name], dtype=kind)
            assert torch.equal(got, expected), name
    after = run.tables[torch.float32]
    assert torch.equal(after[:3], before[:3])  # the updates before the cut keep theirs
    assert not torch.equal(after[3:], before[3:])


def test_blocks_are_row_ranges_and_each_reads_its_seeds_batches(digit_tasks):
    """Runs ordered by optimizer class, then seed: schedule-free's block reads 2 seeds'
    batches, 1 run each; SGD's the same 2 seeds' batches, 3 runs each."""
    specs = batched.order(group_of("mnist_logreg"))  # 2 schedule-free runs, 6 SGD
    run = GroupRun(specs, digit_tasks, CPU, forward_of("mnist_logreg"))
    assert [b.rows for b in run.blocks] == [slice(0, 2), slice(2, 8)]
    assert [type(b.step).__name__ for b in run.blocks] == ["SGDScheduleFree", "SGD"]
    assert [s.schedule == "schedule_free" for s in specs] == [True] * 2 + [False] * 6
    assert run.reads == ((2, 1), (2, 3))
    assert [o.generator.initial_seed() for o in run.orders] == [
        DataOrder(s, 1).generator.initial_seed() for s in (0, 1, 0, 1)
    ]


def test_test_logits_only_for_the_runs_that_end(digit_tasks):
    specs = batched.order(group_of("mnist_mlp"))
    run = GroupRun(specs, digit_tasks, CPU, forward_of("mnist_mlp"))
    images = run.data.test_x
    every = run.logits(images)
    some = run.logits(images, [1, 6])  # a schedule-free run (averaged weights) and an SGD one
    assert some.shape == (2, *every.shape[1:])
    torch.testing.assert_close(some, every[[1, 6]])


def test_evaluation_passes_follow_the_devices_memory(digit_tasks, monkeypatch):
    """Memory for 3 examples of all runs at a time: many passes, the same records."""
    specs = group_of("mnist_mlp")[:4]
    whole = train_group(specs, digit_tasks, CPU)
    module = build_model(TASKS["mnist_mlp"], 0, CPU)
    per_example = group.activation_floats(forward_of("mnist_mlp"), module, (28, 28), 2) / 2
    total = 3 * len(specs) * 4 * per_example / group.EVAL_SHARE  # bytes: 3 examples a pass

    def memory(device, free=True):
        assert not free  # the total: the passes do not change with what else runs
        return total

    monkeypatch.setattr(group, "memory", memory)
    run = GroupRun(batched.order(specs), digit_tasks, CPU, forward_of("mnist_mlp"))
    assert 1 <= run.per_pass // len(specs) <= 3
    for a, b in zip(whole, train_group(specs, digit_tasks, CPU), strict=True):
        assert_equivalent(a, b, "batched")


def test_the_graph_ready_step_gives_the_same_records(digit_tasks):
    """With ``cuda_graphs`` the step reads its batch from static buffers (captured on CUDA,
    called as it is here): the records are the plain step's to the last bit."""
    specs = group_of("mnist_mlp")
    plain = train_group(specs, digit_tasks, CPU)
    graphed = train_group(specs, digit_tasks, CPU, cuda_graphs=True)
    assert [untimed(r) for r in graphed] == [untimed(r) for r in plain]


def test_graphed_steps_read_static_buffers():
    seen = []
    step = device.Graphed(lambda x: seen.append(x) or x * 2, capture=False)
    for value in (1.0, 2.0, 3.0):
        assert step(torch.full((2,), value)).tolist() == [2 * value] * 2
    assert seen[0] is seen[1] is seen[2]  # one buffer, refilled


def test_a_blocks_update_is_a_few_operations_whatever_the_model(digit_tasks):
    """The update of a block runs on its rows of the flat weights: as many operations for the
    MLP's 8 parameter tensors as for logistic regression's 2."""
    counts = {}
    for task in ("mnist_logreg", "mnist_mlp"):
        specs = [
            RunSpec.make(task, "cosine", seed=s, optimizer_params=MOMENTUM, **SMALL) for s in (0, 1)
        ]
        run = GroupRun(specs, digit_tasks, CPU, forward_of(task))
        run.weights.grad = torch.ones_like(run.weights)
        with CountOps() as ops:
            run.update()
        counts[task] = ops.count
    assert counts["mnist_logreg"] == counts["mnist_mlp"], counts


def forward_of(task: str):
    module = build_model(TASKS[task], 0, CPU)
    return stacked.forward_for(module, models.MODELS[TASKS[task].model].stacked)


class CountOps(TorchDispatchMode):
    """Counts the aten operations dispatched inside it."""

    count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.gpu
def test_cuda_graphs_give_the_eager_records_on_cuda(digit_tasks):
    cuda = torch.device("cuda")
    parts = (digit_tasks.train, digit_tasks.dev, digit_tasks.test)
    splits = type(digit_tasks)(*(type(p)(p.images.to(cuda), p.labels.to(cuda)) for p in parts))
    specs = group_of("mnist_mlp")
    eager = train_group(specs, splits, cuda)
    graphed = train_group(specs, splits, cuda, cuda_graphs=True)
    assert [untimed(r) for r in graphed] == [untimed(r) for r in eager]
    assert all(r["timing"]["cuda_graphs"] for r in graphed)  # and the records say so
    assert not any("cuda_graphs" in r["timing"] for r in eager)
