"""Model builders: ``MODELS`` maps a name to ``build(classes) -> nn.Module``.

Every model takes a float batch ``[B, 28, 28]`` (normalised pixels) and returns logits
``[B, classes]``. Builders use torch's default initialisation; the engine calls them under a
seeded, forked RNG so a run's seed alone fixes its initial weights.

The batched engine trains R runs of a model at once (``benchmark/engines/stacked.py``): an
``nn.Sequential`` of Flatten, Linear and ReLU layers, or a module ``torch.func.vmap`` can
batch, needs nothing more; a model that neither fits gives ``stacked``, a function of the
module that returns its stacked forward (``row_gru`` below).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmark.catalogue.errors import unknown_name
from benchmark.engines.stacked import Forward, linear, shared_linear


@dataclass(frozen=True)
class Model:
    build: Callable[[int], nn.Module]
    stacked: Callable[[nn.Module], Forward] | None = None  # its own stacked forward


MODELS: dict[str, Model] = {}


def model(name: str, *, stacked: Callable[[nn.Module], Forward] | None = None):
    """Register ``build(classes) -> nn.Module`` as ``name`` (``stacked``: its own stacked
    forward, when vmap cannot batch the module)."""

    def register(build):
        MODELS[name] = Model(build, stacked)
        return build

    return register


def get_model(name: str) -> Model:
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return MODELS[name]


@model("logreg")
def logreg(classes: int) -> nn.Module:
    """Multinomial logistic regression: one linear layer on the 784 pixels (a convex problem)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, classes))


@model("mlp")
def mlp(classes: int) -> nn.Module:
    """DeepOBS mnist_mlp: 784-1000-500-100-classes, ReLU (Schneider et al. 2019)."""
    widths = [28 * 28, 1000, 500, 100]
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], classes))


@model("cnn_2c2d")
def cnn_2c2d(classes: int) -> nn.Module:
    """DeepOBS 2c2d: conv 32 5x5, max-pool, conv 64 5x5, max-pool, fc 1024, fc classes."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28)),  # [B, 28, 28] -> [B, 1, 28, 28]
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14 x 14
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7 x 7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1024),
        nn.ReLU(),
        nn.Linear(1024, classes),
    )


class RowGRU(nn.Module):
    """Sequential MNIST read row by row: 28 steps of 28 pixels into a GRU, a linear head."""

    def __init__(self, classes: int, hidden: int = 128):
        super().__init__()
        self.gru = nn.GRU(28, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, images: Tensor) -> Tensor:
        _, last = self.gru(images)  # last hidden state: [1, B, hidden]
        return self.head(last[0])


def row_gru(module: RowGRU) -> Forward:
    """RowGRU for R runs: nn.GRU's gates (r, z, n) over the 28 rows, then the linear head."""

    def forward(params, x, k):
        u, b, steps, _ = x.shape
        w_ih, b_ih = params["gru.weight_ih_l0"], params["gru.bias_ih_l0"]
        w_hh, b_hh = params["gru.weight_hh_l0"], params["gru.bias_hh_l0"]
        gates_in = shared_linear(x.reshape(u, b * steps, -1), w_ih, b_ih, k)
        gates_in = gates_in.view(u * k, b, steps, -1)
        h = x.new_zeros(u * k, b, w_hh.shape[2])
        for t in range(steps):
            i_r, i_z, i_n = gates_in[:, :, t].chunk(3, dim=-1)
            h_r, h_z, h_n = linear(h, w_hh, b_hh).chunk(3, dim=-1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = n + z * (h - n)  # (1 - z) n + z h
        return linear(h, params["head.weight"], params["head.bias"])

    return forward


@model("gru", stacked=row_gru)
def gru(classes: int) -> nn.Module:
    """A one-layer GRU (128 units) over the 28 rows, linear head on the last hidden state."""
    return RowGRU(classes)
