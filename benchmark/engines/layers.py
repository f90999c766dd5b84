"""torch layers for R runs at once: the stacked forward of an ``nn.Sequential`` built from them.

``LAYERS`` maps a layer type to its stacked form ``apply(layer, params, h, reads)`` and a
check that the layer's settings are ones it computes (``supports``). Activations carry the
run dimension first: ``[N, B, *features]``, with feature maps (C, H, W) laid out
``[N, C, B, H, W]`` so that a convolution's products and a pooling need no transposes. N is
S, the distinct inputs, until the first layer with weights, which reads them as ``reads`` says
(``Reads``: segments ``(u, k)``, the next u inputs read by k consecutive runs apiece) in one
wide product per segment; from there N is R.

Convolutions are products, not vmap's grouped convolution (one group per run, slow on CUDA):
the inputs' windows are copied once into columns ``[N, C k_h k_w, B L]`` (L output positions
per example) and multiplied by each run's kernels ``[O, C k_h k_w]`` with ``bmm``: a first
convolution copies the distinct inputs' windows once and multiplies them by all their runs'
kernels at once.
"""

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional

Reads = tuple[tuple[int, int], ...]  # (inputs u, runs per input k) per segment, in row order
Forward = Callable[[dict[str, Tensor], Tensor, Reads], Tensor]


def segments(reads: Reads, x: Tensor, *rows: Tensor) -> Iterator[tuple]:
    """Per segment of ``reads``: its inputs of ``x``, its k, and its runs' rows of each of
    ``rows`` (the tensors themselves for one segment; else views of one ``split`` each, whose
    gradient is one ``cat``)."""
    if len(reads) == 1:
        yield x, reads[0][1], *rows
        return
    inputs = x.split([u for u, _ in reads])
    parts = [t.split([u * k for u, k in reads]) for t in rows]
    for j, (_, k) in enumerate(reads):
        yield inputs[j], k, *(part[j] for part in parts)


def per_run(x: Tensor, reads: Reads) -> Tensor:
    """Each run's copy of its input ``[R, ...]`` (inputs repeated for their runs)."""
    out = [xs.repeat_interleave(k, dim=0) if k > 1 else xs for xs, k in segments(reads, x)]
    return out[0] if len(out) == 1 else torch.cat(out)


def shared_linear(x: Tensor, weight: Tensor, bias: Tensor, reads: Reads) -> Tensor:
    """``x @ weight[r].T + bias[r]`` for every run: x ``[S, M, in]`` read as ``reads`` says,
    weight ``[R, out, in]``, bias ``[R, out]`` -> ``[R, M, out]``."""
    out = []
    for xs, k, w, b in segments(reads, x, weight, bias):
        u, m, _ = xs.shape
        n = w.shape[1]
        wide = torch.bmm(xs, w.reshape(u, k * n, -1).transpose(1, 2))  # [u, M, k out]
        out.append(wide.view(u, m, k, n).transpose(1, 2).reshape(u * k, m, n) + b[:, None])
    return out[0] if len(out) == 1 else torch.cat(out)


def linear(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``h[r] @ weight[r].T + bias[r]`` for every run: h ``[R, M, in]``."""
    return torch.baddbmm(bias[:, None], h, weight.transpose(1, 2))


def shared_product(cols: Tensor, weight: Tensor, bias: Tensor, reads: Reads | None) -> Tensor:
    """``weight[r] @ cols[r] + bias[r]``: cols ``[N, K, M]`` (read as ``reads`` says, or one
    per run), weight ``[R, O, K]``, bias ``[R, O]`` -> ``[R, O, M]``."""
    if reads is None:
        return torch.baddbmm(bias[:, :, None], weight, cols)
    out = []
    for xs, _, w, b in segments(reads, cols, weight, bias):
        u, kdim, m = xs.shape
        wide = torch.bmm(w.reshape(u, -1, kdim), xs)  # [u, k O, M]: k runs' kernels at once
        out.append(wide.view(len(w), -1, m) + b[:, :, None])
    return out[0] if len(out) == 1 else torch.cat(out)


def _linear(layer: nn.Linear, p: dict, h: Tensor, reads: Reads | None) -> Tensor:
    if reads is None:
        return linear(h, p["weight"], p["bias"])
    return shared_linear(h, p["weight"], p["bias"], reads)


def _conv2d(layer: nn.Conv2d, p: dict, h: Tensor, reads: Reads | None) -> Tensor:
    """Feature maps ``[N, C, B, H, W]`` -> ``[R, O, B, H', W']``. The columns are windows
    of the padded maps (views) copied once, not ``F.unfold``, whose im2col loops over the
    examples (a kernel launch each on CUDA)."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    n, c, batch = h.shape[:3]
    windows = (
        functional.pad(h, (pw, pw, ph, ph)).unfold(3, kh, sh).unfold(4, kw, sw)
    )  # [.., H', W', kh, kw]
    out_h, out_w = windows.shape[3:5]
    cols = windows.permute(0, 1, 5, 6, 2, 3, 4).reshape(n, c * kh * kw, -1)  # [N, C kh kw, B L]
    weight = p["weight"].flatten(2)  # [R, O, C kh kw], the columns' order
    out = shared_product(cols, weight, p["bias"], reads)
    return out.view(len(out), -1, batch, out_h, out_w)


def _max_pool2d(layer: nn.MaxPool2d, p: dict, h: Tensor, reads) -> Tensor:
    n, c = h.shape[:2]
    pooled = functional.max_pool2d(
        h.flatten(0, 1), layer.kernel_size, layer.stride, layer.padding, layer.dilation,
        ceil_mode=layer.ceil_mode,
    )  # fmt: skip
    return pooled.view(n, c, *pooled.shape[1:])


def _flatten(layer: nn.Flatten, p: dict, h: Tensor, reads) -> Tensor:
    return (h.transpose(1, 2) if h.dim() == 5 else h).flatten(2)  # maps: (C, H, W) order


def _unflatten(layer: nn.Unflatten, p: dict, h: Tensor, reads) -> Tensor:
    return maps(h.unflatten(layer.dim + 1, layer.unflattened_size))


def maps(h: Tensor) -> Tensor:
    """Examples with (C, H, W) features ``[N, B, C, H, W]`` as feature maps ``[N, C, B, H, W]``."""
    return h.transpose(1, 2) if h.dim() == 5 else h


def _plain_conv(layer: nn.Conv2d) -> bool:
    """One group, a bias, no dilation, zero padding given in numbers."""
    plain = layer.groups == 1 and layer.bias is not None and layer.dilation == (1, 1)
    return plain and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)


class Layer(NamedTuple):
    apply: Callable[[nn.Module, dict, Tensor, Reads | None], Tensor]
    supports: Callable[[nn.Module], bool] = lambda layer: True


LAYERS: dict[type, Layer] = {
    nn.Linear: Layer(_linear, lambda layer: layer.bias is not None),
    nn.Conv2d: Layer(_conv2d, _plain_conv),
    nn.MaxPool2d: Layer(_max_pool2d, lambda layer: not layer.return_indices),
    nn.ReLU: Layer(lambda layer, p, h, reads: torch.relu(h)),
    nn.Flatten: Layer(_flatten, lambda layer: (layer.start_dim, layer.end_dim) == (1, -1)),
    nn.Unflatten: Layer(_unflatten, lambda layer: layer.dim >= 1),
}


def stackable(module: nn.Module) -> bool:
    """Whether ``module`` is an ``nn.Sequential`` of layers ``LAYERS`` computes."""
    return isinstance(module, nn.Sequential) and all(
        type(layer) in LAYERS and LAYERS[type(layer)].supports(layer) for layer in module
    )


def layer_stack(module: nn.Sequential) -> Forward:
    """The layers in order; the first with weights reads the shared inputs."""
    layers = [(name, layer, LAYERS[type(layer)].apply) for name, layer in module.named_children()]
    own = {name: [n for n, _ in layer.named_parameters()] for name, layer, _ in layers}

    def forward(params, x, reads):
        h, shared = maps(x), reads
        for name, layer, apply in layers:
            mine = {n: params[f"{name}.{n}"] for n in own[name]}
            h = apply(layer, mine, h, shared)
            shared = shared if not mine else None
        return h

    return forward
