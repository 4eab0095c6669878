"""Result files of a run: its arrays (``.npz``), its record (``.json``), and Phi, stored once per folder.

A run ``<out>/newton-k4-n500-<8 hex>`` (names from :func:`gram_theory.config.run_files`) writes
``<stem>.npz`` and ``<stem>.json``, and ``phi-<gram>-k4-n500-<8 hex>.npy`` unless a run with the same
(K, n, c, d, epsilon, seed, gram) already put it there: Phi is the same for all of them. The record
keeps Phi's file name and SHA-256; :func:`load_run` refuses a Phi that does not match it, and
:func:`recompute_residuals` recomputes every round's residual from the files alone. All files of a
run (figures included) appear together or not at all (``utils.atomic.atomic_group``).

Arrays of a single point (R + 1 solves: the teacher and R students; N = k n):

    labels (N,)            true classes
    given (N,)             given (noisy) labels
    outputs (R + 2, N, K)  index 0: the given one-hot labels; 1: the teacher; t >= 2: student t - 1
    residual (R + 2,)      max |Y_t - F(Y_t)|, entry 0 is 0
    accuracy (R + 2, 3)    percent correct on clean, noisy, all samples
    time (R + 2,)          seconds per solve, entry 0 is 0
    converged (R + 2,)     residual <= tol
    iterations (R + 2,)    Newton iterations or Adam steps (0 for the closed form)
    softmax (R + 2, 2, 3, 2)  [t, clean|noisy, true|given|other label, mean|std]
    undetermined (R + 2,)  samples whose two largest outputs are within tol (argmax not resolved)
    wd (L,), corruption (E,)  the sweep values

In a sweep (more than one wd or corruption) ``given`` is (E, N) and every per-round array gets
leading (L, E) axes: ``outputs`` (L, E, R + 2, N, K) and so on. Phi (N, N) float64 is the ``.npy``:
logits = Phi @ (Y_{t-1} - Y_t) / (N wd).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gram_theory.config import Config, RunFiles, identity, phi_settings
from gram_theory.experiment import PointResult, Setup
from gram_theory.fixed_point import residual
from gram_theory.report import stage_name
from utils.atomic import atomic_group
from utils.errors import UserError
from utils.provenance import git_commit, package_versions

FORMAT = 2
PER_ROUND = ("outputs", "residual", "accuracy", "time", "converged", "iterations", "softmax", "undetermined")


def phi_digest(gram: np.ndarray) -> str:
    """SHA-256 of Phi's float64 values in C order (the bytes ``numpy.save`` writes after its header)."""
    return hashlib.sha256(np.ascontiguousarray(gram, dtype="<f8").tobytes()).hexdigest()


def read_phi(path: Path, size: int | None = None, digest: str | None = None) -> np.ndarray:
    """Phi from its ``.npy``, checked: a float64 (N, N) array, and its SHA-256 when ``digest`` is given."""
    try:
        with open(path, "rb") as stream:
            magic = stream.read(6)
            stream.seek(0)
            if magic != b"\x93NUMPY":
                what = "empty" if not magic else ("a zip archive" if magic.startswith(b"PK") else "not a .npy file")
                raise UserError(
                    f"{path} is {what}, not Phi's .npy array; remove it so that the next run writes it again"
                )
            gram = np.load(stream, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: Phi file not found; it belongs beside the run that references it") from None
    except (ValueError, EOFError) as error:
        raise UserError(
            f"{path} is not a readable Phi file (truncated or damaged: {' '.join(str(error).split())[:70]}); "
            "remove it so that the next run writes it again"
        ) from None
    expected = (size, size) if size is not None else None
    if (
        gram.dtype != np.float64
        or gram.ndim != 2
        or gram.shape[0] != gram.shape[1]
        or (expected is not None and gram.shape != expected)
    ):
        raise UserError(
            f"{path} holds a {gram.dtype} array of shape {gram.shape}, not Phi"
            + (f" ({size} x {size} float64)" if size else "")
            + "; remove it"
        )
    if digest is not None and phi_digest(gram) != digest:
        raise UserError(
            f"{path} does not match the SHA-256 its run recorded ({digest[:12]}…): it was changed "
            "or damaged; remove it and run again"
        )
    return gram


def phi_is_stored(files: RunFiles, gram: np.ndarray) -> bool:
    """Whether ``files.phi`` already holds this Phi (then it is not written again).

    Missing: False. Present and equal: True. Present and different: an error, since every run that
    refers to it would then recompute wrong residuals.
    """
    path = files.phi
    if not path.exists():
        return False
    stored = read_phi(path, gram.shape[0])
    if phi_digest(stored) != phi_digest(gram):
        raise UserError(
            f"{path} holds a different Phi than these settings give (damaged, or written by "
            "another version); remove it so that this run writes it again"
        )
    return True


def arrays(config: Config, setup: Setup, points: list[list[PointResult]]) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` (see the module docstring), squeezed for a single point."""

    def stack(field: str) -> np.ndarray:
        return np.array([[getattr(p, field) for p in row] for row in points])

    result = {
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
        "wd": np.array(config.wd, dtype=np.float64),
        "corruption": np.array(config.corruption, dtype=np.float64),
    }
    if not config.sweep:
        result["given"] = result["given"][0]
        for name in PER_ROUND:
            result[name] = result[name][0, 0]
    return result


@functools.cache
def _versions() -> dict[str, str]:
    return package_versions(("numpy", "scipy", "matplotlib", "tqdm"))


def provenance(threads: int) -> dict[str, Any]:
    """Versions, machine, thread count and commit. (``utils.provenance.provenance`` would import torch,
    which the solver never needs.)"""
    return {
        "versions": dict(_versions()),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "git_commit": git_commit(),
    }


def record(
    config: Config,
    setup: Setup,
    points: list[list[PointResult]],
    files: RunFiles,
    digest: str,
    threads: int,
    figures: list[Path],
) -> dict[str, Any]:
    realised = {f"{p.eta:g}": float(np.mean(p.given != setup.labels)) for p in points[0]}
    return {
        "format": FORMAT,
        "config": dataclasses.asdict(config),
        "identity": hashlib.sha256(json.dumps(identity(config), sort_keys=True).encode()).hexdigest(),
        "stages": [stage_name(t) for t in range(config.solves + 1)],  # what outputs[t] holds
        "phi": {
            "file": files.phi.name,
            "sha256": digest,
            "shape": list(setup.gram.shape),
            "settings": phi_settings(config),
        },
        "sweep": config.sweep,
        "map": config.map,
        "symmetric_gram": setup.symmetric,
        "realised_noise_rate": realised,
        "setup_seconds": setup.seconds,
        "files": [files.arrays.name, files.record.name, *(path.name for path in figures)],
        "provenance": provenance(threads),
    }


def save(
    config: Config,
    setup: Setup,
    points: list[list[PointResult]],
    files: RunFiles,
    *,
    threads: int,
    write_phi: bool,
    figures: list[tuple[Path, Callable[[Path], None]]] = (),
) -> list[Path]:
    """Write the run's files together (``atomic_group``); ``figures`` are (path, draw(temp path)) pairs.

    Returns the paths written. Phi is written only when ``write_phi`` (it is not in the folder yet).
    """
    digest = phi_digest(setup.gram)
    content = record(config, setup, points, files, digest, threads, [path for path, _ in figures])
    targets = [files.arrays, files.record, *([files.phi] if write_phi else []), *(path for path, _ in figures)]
    with atomic_group(targets) as temps:
        with open(temps[0], "wb") as stream:
            np.savez_compressed(stream, **arrays(config, setup, points))
        temps[1].write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        if write_phi:
            with open(temps[2], "wb") as stream:
                np.save(stream, np.ascontiguousarray(setup.gram, dtype="<f8"))
        for (_, draw), temp in zip(figures, temps[len(targets) - len(figures) :]):
            draw(temp)
    return targets


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """A run read back: its arrays, its JSON record and Phi (checked against the recorded SHA-256)."""

    arrays: dict[str, np.ndarray]
    record: dict[str, Any]
    gram: np.ndarray


def _read_record(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: run record not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not a readable run record ({type(error).__name__}); run the solver again") from None
    try:
        phi = content["phi"]
        needed = (phi["file"], phi["sha256"], content["config"]["wd"], content["config"]["corruption"], content["map"])
    except (KeyError, TypeError):
        needed = None
    if not isinstance(content, dict) or needed is None or content.get("format") != FORMAT:
        raise UserError(f"{path} is not a solver run record of format {FORMAT}; run the solver again")
    return content


def load_run(path: str | os.PathLike) -> SavedRun:
    """Read the run at ``path`` (its ``.npz`` or ``.json``) and the Phi it references, from files alone."""
    path = Path(path)
    content = _read_record(path.with_suffix(".json"))
    npz = path.with_suffix(".npz")
    try:
        stored = np.load(npz, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with stored:
            loaded = {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise UserError(f"{npz}: run arrays not found") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(
            f"{npz} is not a readable run file ({' '.join(str(error).split())[:60]}); run the solver again"
        ) from None
    missing = [name for name in ("labels", "outputs", "residual") if name not in loaded]
    if missing:
        raise UserError(f"{npz} lacks the arrays {', '.join(missing)}; run the solver again")
    phi = content["phi"]
    gram = read_phi(path.parent / phi["file"], loaded["labels"].shape[0], phi["sha256"])
    return SavedRun(loaded, content, gram)


def recompute_residuals(path: str | os.PathLike) -> np.ndarray:
    """Every round's max-norm residual |Y_t - F(Y_t)|, recomputed from the saved files alone.

    Same shape as the saved ``residual``: (R + 2,) for one point, (L, E, R + 2) for a sweep; entry 0
    (the given labels) is 0. F is the softmax map, or the linear one for a run made with ``--approx``.
    """
    run = load_run(path)
    outputs = run.arrays["outputs"]
    linear = run.record["map"] == "linear"
    if not run.record["sweep"]:
        outputs = outputs[None, None]
    result = np.zeros(outputs.shape[:3])
    for i, lbd in enumerate(run.record["config"]["wd"]):
        for j in range(outputs.shape[1]):
            for t in range(1, outputs.shape[2]):
                result[i, j, t] = residual(run.gram, outputs[i, j, t - 1], outputs[i, j, t], lbd, linear)
    return result if run.record["sweep"] else result[0, 0]
