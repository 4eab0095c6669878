"""Result files: one ``.npz`` per run, named by its parameters, with the config as JSON beside it.

Arrays of a single point (R = max_dist, N = k n):

    gram (N, N)            Phi as applied: logits = gram @ (Y_{t-1} - Y_t) / (N lbd)
    labels (N,)            true classes
    given (N,)             given (noisy) labels
    outputs (R + 1, N, K)  index 0: the given one-hot labels; index t: round t (1 = teacher)
    residual (R + 1,)      max |Y_t - F(Y_t)|, entry 0 is 0
    accuracy (R + 1, 3)    percent correct on clean, noisy, all samples
    time (R + 1,)          seconds per round, entry 0 is 0
    converged (R + 1,)     residual <= tol
    iterations (R + 1,)    Newton iterations or Adam steps (0 for the closed form)
    softmax (R + 1, 2, 3, 2)  [round, clean|noisy, true|given|other label, mean|std]
    undetermined (R + 1,)  samples whose two largest outputs are within tol (argmax not resolved)
    eta (E,), lbd (L,)     the sweep values

In a sweep (more than one eta or lbd) ``given`` is (E, N) and every per-round array gets leading
(L, E) axes: ``outputs`` (L, E, R + 1, N, K) and so on. ``gram`` and ``labels`` are stored once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from gram_theory.experiment import Config, PointResult, Setup
from utils.atomic import atomic_path, write_json
from utils.provenance import git_commit, package_versions

PER_ROUND = ("outputs", "residual", "accuracy", "time", "converged", "iterations", "softmax", "undetermined")


def _values(name: str, values: tuple[float, ...]) -> str:
    return name + ",".join(f"{v:g}" for v in values)


def stem(config: Config) -> str:
    """A file name (no suffix) that encodes every parameter that changes the numbers."""
    method = config.method + ("-approx" if config.approx else "")
    parts = [f"gram_theory_{config.gram}_{method}", f"k{config.k}", f"n{config.n}", f"c{config.c:g}",
             f"d{config.d:g}", f"eps{config.epsilon:g}", _values("eta", config.eta), _values("lbd", config.lbd),
             f"R{config.max_dist}", f"tol{config.tol:g}", f"seed{config.seed}"]
    if config.method == "adam":
        parts.insert(-1, f"iter{config.max_iter}")
    return "_".join(parts)


def arrays(config: Config, setup: Setup, points: list[list[PointResult]]) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` (see the module docstring), squeezed for a single point."""
    def stack(field: str) -> np.ndarray:
        return np.array([[getattr(p, field) for p in row] for row in points])

    result = {
        "gram": setup.gram,
        "labels": setup.labels,
        "given": np.array([p.given for p in points[0]]),
        "outputs": stack("outputs"),
        "residual": stack("residual"),
        "accuracy": stack("accuracy"),
        "time": stack("seconds"),
        "converged": stack("converged"),
        "iterations": stack("iterations"),
        "softmax": stack("softmax"),
        "undetermined": stack("undetermined"),
        "eta": np.array(config.eta, dtype=np.float64),
        "lbd": np.array(config.lbd, dtype=np.float64),
    }
    if not config.sweep:
        result["given"] = result["given"][0]
        for name in PER_ROUND:
            result[name] = result[name][0, 0]
    return result


def _provenance() -> dict[str, Any]:
    """Versions, machine and commit. (``utils.provenance.provenance`` would import torch, which the
    solver never needs: importing it costs seconds.)"""
    return {"versions": package_versions(("numpy", "scipy", "matplotlib", "tqdm")),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "git_commit": git_commit()}


def save(config: Config, setup: Setup, points: list[list[PointResult]], extra: dict[str, Any] | None = None
         ) -> Path:
    """Write ``<out>/<stem>.npz`` and ``<out>/<stem>.json`` atomically; return the ``.npz`` path."""
    out = Path(config.out)
    path = out / f"{stem(config)}.npz"
    with atomic_path(path) as temp:
        with open(temp, "wb") as stream:
            np.savez(stream, **arrays(config, setup, points))
    realised = {f"{p.eta:g}": float(np.mean(p.given != setup.labels)) for p in points[0]}
    write_json(path.with_suffix(".json"), {
        "config": dataclasses.asdict(config),
        "sweep": config.sweep,
        "map": "linear" if config.approx else "softmax",
        "symmetric_gram": setup.symmetric,
        "realised_noise_rate": realised,
        "setup_seconds": setup.seconds,
        "provenance": _provenance(),
        **(extra or {}),
    })
    return path


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of a saved run and its JSON record."""
    path = Path(path)
    with np.load(path) as stored:
        loaded = {name: stored[name] for name in stored.files}
    return loaded, json.loads(path.with_suffix(".json").read_text())
