"""Model builders: ``MODELS`` maps a name to ``build(classes) -> nn.Module``.

Every model takes a float batch ``[B, 28, 28]`` (normalised pixels) and returns logits
``[B, classes]``. Builders use torch's default initialisation; the engine calls them under a
seeded, forked RNG so a run's seed alone fixes its initial weights.
"""

import itertools
from collections.abc import Callable

from torch import Tensor, nn

from benchmark.errors import unknown_name

MODELS: dict[str, Callable[[int], nn.Module]] = {}


def model(name: str):
    """Register ``build(classes) -> nn.Module`` as ``name``."""

    def register(build):
        MODELS[name] = build
        return build

    return register


def get_model(name: str) -> Callable[[int], nn.Module]:
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


@model("gru")
def gru(classes: int) -> nn.Module:
    """A one-layer GRU (128 units) over the 28 rows, linear head on the last hidden state."""
    return RowGRU(classes)
