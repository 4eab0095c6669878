"""Choose the compute device once: ``auto`` means CUDA when present, else the CPU.

torch is imported when a device is resolved, not when this module is: flag parsers import it.
"""

from __future__ import annotations

import os

from utils.errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto", gpu_id: str | None = None):
    """A ``torch.device``; ``gpu_id`` (the reference's ``--gpu-id``) sets CUDA_VISIBLE_DEVICES before CUDA starts."""
    import torch

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
