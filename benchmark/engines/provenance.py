"""Where a result came from: code version, software, device and determinism settings.

Every run record carries ``provenance()`` so a cited number names the environment that
produced it (DESIGN.md). The git facts are read once per process.
"""

import functools
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch

from benchmark.records.folders import REPOSITORY

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "schedulefree")


@functools.cache
def git_state() -> dict:
    """The checkout's commit and whether tracked files differ from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=REPOSITORY,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


@functools.cache
def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def precision_flags(device: torch.device) -> dict:
    """The float32 arithmetic in effect on ``device`` when the run ended (a spec's
    ``precision`` sets them, ``device.autocast``): TF32 products in matmuls and in cuDNN's
    convolutions and RNNs (None off CUDA, where they do not apply)."""
    cuda = device.type == "cuda"
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32 if cuda else None,
    }


def provenance(device: torch.device) -> dict:
    """Code, software, device and determinism flags, and the time (UTC) the record was made."""
    return {
        **git_state(),
        "python": sys.version.split()[0],
        **{package: package_version(package) for package in PACKAGES},
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "host": socket.gethostname(),  # the machine: merged results say where each was made
        "device": device_name(device),
        "device_type": device.type,
        "cpu_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        **precision_flags(device),
        "platform": platform.platform(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
