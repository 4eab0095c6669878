"""What produced a result: package versions, machine, process, threads and the git commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

_PACKAGES = ("numpy", "scipy", "torch", "torchvision", "scikit-learn")
REPO_ROOT = Path(__file__).resolve().parents[1]


def package_versions(packages: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    """The checked-out commit (with ``-dirty`` when the tree has changes), or ``None`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def provenance(device: str | None = None) -> dict[str, object]:
    info: dict[str, object] = {
        "versions": package_versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "host": platform.node(),
        "pid": os.getpid(),  # the process that trained the run (a sweep's worker)
        "git_commit": git_commit(),
    }
    if device is not None:
        info["device"] = device
    torch = sys.modules.get("torch")  # only if loaded: importing it here would cost seconds
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if device is not None and device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
