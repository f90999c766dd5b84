"""Model builders: ``MODELS`` maps a name to ``build(classes, shape) -> nn.Module``.

Every model takes a float batch ``[B, *shape]`` (standardised inputs; ``shape`` is the data
set's, ``(28, 28)`` for the MNIST family) and returns logits ``[B, classes]``. A builder that
takes no ``shape`` is built for the shape it was written for. Builders use torch's default
initialisation; the engine calls them under a seeded, forked RNG so a run's seed alone fixes its
initial weights.

The batched engine trains R runs of a model at once (``benchmark/engines/stacked.py``): an
``nn.Sequential`` of the layers ``layers.LAYERS`` computes (Linear, Conv2d, MaxPool2d, ReLU,
Flatten, Unflatten), or a module ``torch.func.vmap`` can batch, needs nothing more; a model
that neither fits gives ``stacked``, a function of the module that returns its stacked forward
(``row_gru`` below).
"""

import inspect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmark.catalogue.errors import unknown_name
from benchmark.engines.layers import Forward, linear, shared_linear


@dataclass(frozen=True)
class Model:
    build: Callable[..., nn.Module]  # build(classes, shape) or build(classes)
    stacked: Callable[[nn.Module], Forward] | None = None  # its own stacked forward

    def make(self, classes: int, shape: tuple[int, ...]) -> nn.Module:
        """The module for ``classes`` classes and inputs of ``shape``."""
        if "shape" in inspect.signature(self.build).parameters:
            return self.build(classes, shape=tuple(shape))
        return self.build(classes)


MODELS: dict[str, Model] = {}


def model(name: str, *, stacked: Callable[[nn.Module], Forward] | None = None):
    """Register ``build(classes, shape) -> nn.Module`` as ``name`` (``stacked``: its own
    stacked forward, when vmap cannot batch the module)."""

    def register(build):
        MODELS[name] = Model(build, stacked)
        return build

    return register


def get_model(name: str) -> Model:
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return MODELS[name]


@model("logreg")
def logreg(classes: int, shape: tuple[int, ...] = (28, 28)) -> nn.Module:
    """Multinomial logistic regression: one linear layer on the inputs (a convex problem)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), classes))


@model("mlp")
def mlp(classes: int, shape: tuple[int, ...] = (28, 28)) -> nn.Module:
    """DeepOBS mnist_mlp: inputs-1000-500-100-classes, ReLU (Schneider et al. 2019)."""
    widths = [math.prod(shape), 1000, 500, 100]
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], classes))


@model("cnn_2c2d")
def cnn_2c2d(classes: int, shape: tuple[int, ...] = (28, 28)) -> nn.Module:
    """DeepOBS 2c2d: conv 32 5x5, max-pool, conv 64 5x5, max-pool, fc 1024, fc classes; on
    one-channel images ``(height, width)``."""
    height, width = shape
    return nn.Sequential(
        nn.Unflatten(1, (1, height)),  # [B, H, W] -> [B, 1, H, W]
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14 x 14 for MNIST
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7 x 7
        nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), 1024),
        nn.ReLU(),
        nn.Linear(1024, classes),
    )


class RowGRU(nn.Module):
    """An image read row by row (sequential MNIST: 28 steps of 28 pixels) into a GRU, a linear
    head."""

    def __init__(self, classes: int, row: int = 28, hidden: int = 128):
        super().__init__()
        self.gru = nn.GRU(row, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, images: Tensor) -> Tensor:
        _, last = self.gru(images)  # last hidden state: [1, B, hidden]
        return self.head(last[0])


def row_gru(module: RowGRU) -> Forward:
    """RowGRU for R runs: nn.GRU's gates (r, z, n) over the rows, then the linear head; r and
    z in one sigmoid, each row's step in six operations (the GRU is launch-bound)."""

    def forward(params, x, reads):
        s, b, steps, _ = x.shape
        w_ih, b_ih = params["gru.weight_ih_l0"], params["gru.bias_ih_l0"]
        w_hh, b_hh = params["gru.weight_hh_l0"], params["gru.bias_hh_l0"]
        hidden = w_hh.shape[2]
        gates_in = shared_linear(x.reshape(s, b * steps, -1), w_ih, b_ih, reads)
        gates_in = gates_in.view(len(w_ih), b, steps, -1).unbind(2)
        w_t, bias = w_hh.transpose(1, 2), b_hh[:, None]
        h = x.new_zeros(len(w_ih), b, hidden)
        for i_gates in gates_in:
            i_rz, i_n = i_gates.split([2 * hidden, hidden], dim=-1)
            h_rz, h_n = torch.baddbmm(bias, h, w_t).split([2 * hidden, hidden], dim=-1)
            r, z = torch.sigmoid(i_rz + h_rz).chunk(2, dim=-1)
            n = torch.tanh(torch.addcmul(i_n, r, h_n))
            h = torch.lerp(n, h, z)  # (1 - z) n + z h
        return linear(h, params["head.weight"], params["head.bias"])

    return forward


@model("gru", stacked=row_gru)
def gru(classes: int, shape: tuple[int, ...] = (28, 28)) -> nn.Module:
    """A one-layer GRU (128 units) over the image's rows, linear head on the last hidden
    state."""
    return RowGRU(classes, row=shape[-1])
