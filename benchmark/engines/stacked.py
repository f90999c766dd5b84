"""Models with a leading run dimension: the forward passes of R runs as one computation.

A stacked forward is ``forward(params, x, reads) -> logits``: ``params`` maps each parameter
name of the model to a tensor ``[R, *shape]`` (run r's weights in row r), ``x`` holds S input
batches ``[S, B, *shape]`` and ``reads`` says which runs read which: segments ``(u, k)`` in row
order, each the next u inputs of x read by k consecutive runs apiece (``((S, k),)`` when every
input has k runs; ``((R, 1),)`` when each run reads its own). Runs that share a seed see the
same batches, so a sweep's runs share inputs: the first layer then computes the inputs against
all their runs' weights in one wide product instead of R narrow ones (on one CPU core this
made `logreg` ~5x faster per run than gathering a batch for every run).

``forward_for`` picks the model's own stacked forward when its ``MODELS`` entry has one
(``gru``: PyTorch cannot vmap ``nn.GRU``, pytorch#134606, so ``models.py`` writes out a cell
with the same weights and gates), the layer-by-layer forward for an ``nn.Sequential`` of the
layers ``layers.LAYERS`` computes (``Linear``, ``Conv2d``, ``MaxPool2d``, ``ReLU``, ``Flatten``,
``Unflatten``: the MLP and the CNN), and otherwise ``torch.func.vmap`` over the module.
``vectorisable`` probes that choice against the module itself before any training, in strict
float32.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from benchmark.engines.device import strict_fp32
from benchmark.engines.layers import Forward, layer_stack, per_run, stackable


def vmapped(module: nn.Module) -> Forward:
    """``torch.func.vmap`` of the module over the run dimension (inputs repeated per run)."""

    def call(params, x):
        return functional_call(module, params, (x,))

    def forward(params, x, reads):
        if x.shape[0] == 1:  # one input for every run
            return vmap(call, in_dims=(0, None))(params, x[0])
        return vmap(call)(params, per_run(x, reads))

    return forward


def forward_for(module: nn.Module, own: Callable[[nn.Module], Forward] | None) -> Forward:
    """The stacked forward of ``module``: ``own(module)`` when its model has one."""
    if own is not None:
        return own(module)
    if stackable(module):
        return layer_stack(module)
    return vmapped(module)


def vectorisable(
    forward: Forward, module: nn.Module, device: torch.device, shape: tuple[int, ...]
) -> str | None:
    """Why ``forward`` cannot stand in for ``module`` (None when it can): three runs with the
    module's weights, on shared inputs, on separate inputs and on both at once, must give the
    module's logits (in strict float32: TF32 would part them by design) and a gradient."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, *shape, generator=gen).to(device)
    params = {
        n: torch.stack([p.detach()] * 3).requires_grad_() for n, p in module.named_parameters()
    }
    try:
        with strict_fp32():
            with torch.no_grad():
                want = torch.stack([module(xs) for xs in x])
            got = [
                (forward(params, x[:1], ((1, 3),)), want[[0, 0, 0]]),
                (forward(params, x[1:], ((1, 1), (1, 2))), want[[1, 2, 2]]),
                (separate := forward(params, x, ((3, 1),)), want),
            ]
            separate.sum().backward()
    except Exception as err:  # any failure means: train these runs one at a time
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    close = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in got)
    return None if close else "its stacked forward does not match the module's"


class Flat:
    """Each run's parameters as one row of a flat ``[R, P]`` tensor (names in the module's
    order): an optimizer block of runs is then a range of rows, updated whole."""

    def __init__(self, module: nn.Module):
        named = list(module.named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [p.numel() for _, p in named]

    def stack(self, models: list[nn.Module], device) -> Tensor:
        """The models' weights as a leaf ``[R, P]`` on ``device`` that requires its gradient."""
        rows = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models]
        return torch.stack(rows).to(device).requires_grad_()

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """Each parameter as a view ``[R, *shape]`` of ``flat``."""
        parts = flat.split(self.sizes, dim=1)
        return {
            name: part.view(len(flat), *shape)
            for name, shape, part in zip(self.names, self.shapes, parts, strict=True)
        }
