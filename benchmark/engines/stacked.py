"""Models with a leading run dimension: the forward passes of R runs as one computation.

A stacked forward is ``forward(params, x, k) -> logits``: ``params`` maps each parameter name
of the model to a tensor ``[R, *shape]`` (run r's weights in row r), ``x`` holds U input
batches ``[U, B, *shape]`` and run r reads ``x[r // k]`` (R = U k). Runs that share a seed see
the same batches, so a sweep's runs share inputs: the first layer then computes the U inputs
against all their runs' weights in one wide product instead of R narrow ones (on one CPU core
this made `logreg` ~5x faster per run than gathering a batch for every run).

``forward_for`` picks the model's own stacked forward when its ``MODELS`` entry has one
(``gru``: PyTorch cannot vmap ``nn.GRU``, pytorch#134606, so ``models.py`` writes out a cell
with the same weights and gates), the linear-stack forward for an ``nn.Sequential`` of ``Flatten``,
``Linear`` and ``ReLU`` layers, and otherwise ``torch.func.vmap`` over the module.
``vectorisable`` probes that choice against the module itself before any training.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Forward = Callable[[dict[str, Tensor], Tensor, int], Tensor]
_LINEAR_STACK = (nn.Flatten, nn.Linear, nn.ReLU)


def shared_linear(x: Tensor, weight: Tensor, bias: Tensor, k: int) -> Tensor:
    """``x @ weight[r].T + bias[r]`` for every run: x ``[U, M, in]`` shared by k runs each,
    weight ``[R, out, in]``, bias ``[R, out]`` -> ``[R, M, out]``."""
    u, m, _ = x.shape
    out = weight.shape[1]
    wide = torch.bmm(x, weight.view(u, k * out, -1).transpose(1, 2))  # [U, M, k out]
    return wide.view(u, m, k, out).transpose(1, 2).reshape(u * k, m, out) + bias[:, None]


def linear(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``h[r] @ weight[r].T + bias[r]`` for every run: h ``[R, M, in]``."""
    return torch.baddbmm(bias[:, None], h, weight.transpose(1, 2))


def linear_stack(module: nn.Sequential) -> Forward:
    """Flatten, Linear and ReLU layers in order; the first Linear reads the shared inputs."""
    layers = list(module.named_children())

    def forward(params, x, k):
        h, shared = x, True
        for name, layer in layers:
            if isinstance(layer, nn.Flatten):
                h = h.flatten(2)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            else:
                w, b = params[f"{name}.weight"], params[f"{name}.bias"]
                h = shared_linear(h, w, b, k) if shared else linear(h, w, b)
                shared = False
        return h

    return forward


def vmapped(module: nn.Module) -> Forward:
    """``torch.func.vmap`` of the module over the run dimension (inputs repeated per run)."""

    def call(params, x):
        return functional_call(module, params, (x,))

    def forward(params, x, k):
        if x.shape[0] == 1:  # one input for every run
            return vmap(call, in_dims=(0, None))(params, x[0])
        return vmap(call)(params, x.repeat_interleave(k, dim=0) if k > 1 else x)

    return forward


def forward_for(module: nn.Module, own: Callable[[nn.Module], Forward] | None) -> Forward:
    """The stacked forward of ``module``: ``own(module)`` when its model has one."""
    if own is not None:
        return own(module)
    if isinstance(module, nn.Sequential) and all(type(layer) in _LINEAR_STACK for layer in module):
        return linear_stack(module)
    return vmapped(module)


def vectorisable(
    forward: Forward, module: nn.Module, device: torch.device, shape: tuple[int, ...]
) -> str | None:
    """Why ``forward`` cannot stand in for ``module`` (None when it can): two runs with the
    module's weights, on shared and on separate inputs of ``shape``, must give the module's
    logits and a gradient."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *shape, generator=gen).to(device)
    params = {
        n: torch.stack([p.detach()] * 2).requires_grad_() for n, p in module.named_parameters()
    }
    try:
        with torch.no_grad():
            want = torch.stack([module(x[0]), module(x[1])])
        shared = forward(params, x[:1], 2)
        separate = forward(params, x, 1)
        separate.sum().backward()
    except Exception as err:  # any failure means: train these runs one at a time
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    close = torch.allclose(separate, want, rtol=1e-4, atol=1e-5)
    close = close and torch.allclose(shared, want[[0, 0]], rtol=1e-4, atol=1e-5)
    return None if close else "its stacked forward does not match the module's"


def stack_weights(models: list[nn.Module], device) -> dict[str, Tensor]:
    """Each parameter of the models as one leaf tensor ``[R, *shape]`` on ``device`` (run r's
    weights in row r)."""
    names = [name for name, _ in models[0].named_parameters()]
    by_name = [dict(m.named_parameters()) for m in models]
    return {
        name: torch.stack([p[name].detach() for p in by_name]).to(device).requires_grad_()
        for name in names
    }
