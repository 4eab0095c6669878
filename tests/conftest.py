"""Shared fixtures: tiny generated image folders and isolated data/feature roots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.threads import cpu_threads

REPO = Path(__file__).resolve().parents[1]


def run_script(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a repository script in a subprocess (no stdin) and capture its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def make_image_folder(root: Path, classes=("cat", "dog"), per_split=(3, 2), size=(12, 10), seed=0) -> Path:
    """train/<class>/*.png and test/<class>/*.png of random pixels; one class in grayscale."""
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), per_split):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                if index == 0:
                    pixels = rng.integers(0, 256, size=size[::-1], dtype=np.uint8)
                    Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
                else:
                    pixels = rng.integers(0, 256, size=(*size[::-1], 3), dtype=np.uint8)
                    Image.fromarray(pixels, mode="RGB").save(folder / f"{i}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run small problems: on one thread, as the CLI runs them (a test may ask for more, scoped)."""
    with cpu_threads(1):
        yield


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's dataset, feature or torch-hub folders from a test."""
    monkeypatch.setenv("SELFDISTILL_DATA_ROOT", str(tmp_path / "data-root"))
    monkeypatch.setenv("SELFDISTILL_FEATURE_ROOT", str(tmp_path / "feature-root"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
