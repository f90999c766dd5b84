"""Device utilities for the engines: which device, with which precision flags, how many
CPU threads, and a clock that waits for the device. How a run uses them is ``semantics``."""

import contextlib
import time

import torch

from benchmark.catalogue.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the GPU when torch sees one, else the CPU; ``cuda`` without one is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda: torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(threads: int):
    """Train with ``threads`` torch threads, then restore the process's count: a run's sums
    split by the thread count, so its last bits depend on it (recorded as cpu_threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_precision(precision: str, device: torch.device) -> None:
    """tf32 and bf16 are CUDA only."""
    if precision != "fp32" and device.type != "cuda":
        raise InputError(f"precision {precision} needs CUDA; use fp32 on the CPU")


def autocast(precision: str, device: torch.device):
    """The context for forward passes; sets TF32 for matmuls and convolutions, and cuDNN's
    deterministic mode without autotuning."""
    check_precision(precision, device)
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    if precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def sync(device: torch.device) -> float:
    """The time after the device has finished its queued work (seconds)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` without waiting for the device (pinned, asynchronous)."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)
