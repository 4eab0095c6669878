"""Choose the compute device once: ``auto`` means CUDA when present, else the CPU."""

from __future__ import annotations

import os

import torch

from utils.errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto", gpu_id: str | None = None) -> torch.device:
    """``gpu_id`` (the reference's ``--gpu-id``) sets CUDA_VISIBLE_DEVICES before CUDA starts."""
    if choice not in DEVICE_CHOICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, got {choice!r}")
    if gpu_id is not None and choice != "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_id)
    if choice == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if choice == "cuda" and not available:
        raise UsageError("--device cuda was requested but CUDA is not available; use --device cpu or auto")
    return torch.device("cuda") if available else torch.device("cpu")


# Below this many multiply-adds per training step, one CPU thread beats several: the matmuls are
# too small to split, and threads that wait on each other cost more than they save (measured: the
# digits chain ran 6× faster on one thread than on two, with identical numbers).
SMALL_STEP_WORK = 4_000_000


def set_cpu_threads(requested: int | None, work_per_step: int) -> int:
    """Set torch's intra-op threads for CPU training: ``requested`` if given, else 1 for small steps; returns it."""
    threads = requested if requested else (1 if work_per_step < SMALL_STEP_WORK else torch.get_num_threads())
    torch.set_num_threads(threads)
    return threads
