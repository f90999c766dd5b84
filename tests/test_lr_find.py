"""The LR range test (benchmark/tools/lr_find.py) and ``python -m benchmark lr-find``."""

import numpy as np
import pytest
import torch

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import RunSpec
from benchmark.cli import main
from benchmark.tools.lr_find import _steepest, lr_range_test

CPU = torch.device("cpu")


def test_range_test_sweeps_stops_and_suggests(digit_tasks):
    spec = RunSpec.make("mnist_mlp", "constant", batch_size=32)
    state = torch.get_rng_state()
    test = lr_range_test(spec, digit_tasks, CPU)
    assert torch.equal(state, torch.get_rng_state())  # leaves the global RNG alone
    assert test.lrs[0] == pytest.approx(1e-6)
    ratios = test.lrs[1:] / test.lrs[:-1]
    assert ratios == pytest.approx(np.full(len(ratios), 1e7 ** (1 / 99)))  # exponential
    assert len(test.lrs) < 100  # the loss exploded before lr 10: stopped early
    last = test.smoothed[-1]
    assert not np.isfinite(last) or last > 4 * test.smoothed[:-1].min()
    assert 1e-4 < test.suggestion < test.lrs[-1]
    again = lr_range_test(spec, digit_tasks, CPU)
    assert np.array_equal(again.losses, test.losses)  # deterministic for a seed


def test_no_finite_loss_is_bad_input(digit_tasks):
    spec = RunSpec.make("mnist_mlp", "constant", batch_size=32)
    with pytest.raises(InputError, match="fewer than 3 steps had a finite loss"):
        lr_range_test(spec, digit_tasks, CPU, start=1e8, end=1e9)


def test_steepest_descent_of_a_known_curve():
    lrs = np.logspace(-5, 0, 51)
    loss = 2 - np.tanh(3 * (np.log10(lrs) + 2))  # falls fastest at lr = 1e-2
    assert _steepest(list(lrs), list(loss)) == pytest.approx(1e-2)


def test_cli_lr_find_prints_and_plots(digit_tasks, capsys, tmp_path):
    plot = tmp_path / "lr.png"
    assert main(["lr-find", "--task", "mnist_logreg", "--steps", "30", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mnist_logreg: suggested lr ")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--start", "1", "--end", "0.1"], "error: need 0 < start < end, got (1.0, 0.1)"),
        (["--steps", "2"], "error: steps must be >= 5, got 2"),
        (["--plot", "lr.svg"], "error: --plot lr.svg: expected FILE.png"),
    ],
)
def test_cli_lr_find_bad_input(monkeypatch, capsys, flags, message):
    monkeypatch.setattr(
        "benchmark.data.datasets.load", pytest.fail
    )  # fails before any data is read
    assert main(["lr-find", "--task", "mnist_logreg", *flags]) == 2
    assert capsys.readouterr().err.startswith(message)
