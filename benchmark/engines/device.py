"""Device utilities for the engines: which device, with which precision flags, how many
CPU threads, how much memory, which errors mean it ran out, and a clock that waits for the
device. How a run uses them is ``semantics``."""

import contextlib
import os
import time
from collections import Counter
from pathlib import Path

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
    deterministic mode without autotuning (an engine calls it before anything else touches the
    device: a check or a size measured under other flags would not hold for the run)."""
    check_precision(precision, device)
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    if precision == "bf16":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


@contextlib.contextmanager
def strict_fp32():
    """float32 matmuls and convolutions without TF32 inside, the flags restored after."""
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


# what CUDA's libraries (cuBLAS, cuDNN, cuFFT: a plain RuntimeError, not torch.OutOfMemoryError)
# and the CPU allocator say when an allocation fails
_OUT_OF_MEMORY = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
                  "CUFFT_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
                  "can't allocate memory")  # fmt: skip


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the device (or the host) ran out of memory."""
    if isinstance(err, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(err, RuntimeError) and any(s in str(err) for s in _OUT_OF_MEMORY)


def memory(device: torch.device, free: bool = True) -> int:
    """The device's free memory in bytes (the host's available memory on the CPU), or its
    share of the total: the GPU's (one process holds it), the host's per core on the CPU (a
    worker process per core shares it)."""
    if device.type == "cuda":
        free_bytes, total = torch.cuda.mem_get_info(device)
        return free_bytes if free else total
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    field = "MemAvailable:" if free else "MemTotal:"
    host = int(meminfo.split(field)[1].split()[0]) * 1024 if field in meminfo else 8 << 30
    return host if free else host // (os.cpu_count() or 1)


class Graphed:
    """``step(*inputs) -> out`` through static input buffers; with ``capture`` (CUDA only) the
    step is captured in a CUDA graph per input shape after ``WARMUP`` eager calls and replayed
    from then on, else called on the buffers. A captured step must read no host value and keep
    its state in place (it replays on the same memory); the batched engine's is written so.
    """

    WARMUP = 2  # eager calls before a capture: cuBLAS and cuDNN set up their workspaces

    def __init__(self, step, capture: bool):
        self.step, self.capture = step, capture
        self.calls, self.graphs = Counter(), {}

    @property
    def captured(self) -> bool:
        """Whether a step was captured (and replayed from then on)."""
        return any(graph is not None for _, graph, _ in self.graphs.values())

    def __call__(self, *inputs):
        key = tuple(tuple(t.shape) for t in inputs)
        if key not in self.graphs and self.capture and self.calls[key] < self.WARMUP:
            self.calls[key] += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.step(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if key not in self.graphs:
            static, graph, out = [t.clone() for t in inputs], None, None
            if self.capture:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = self.step(*static)
            self.graphs[key] = static, graph, out
        static, graph, out = self.graphs[key]
        for buffer, t in zip(static, inputs, strict=True):
            buffer.copy_(t)
        if graph is None:
            return self.step(*static)
        graph.replay()
        return out


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
