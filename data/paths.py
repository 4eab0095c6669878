"""Where downloaded datasets and cached features live (never inside this package).

Defaults are folders at the repository root, ignored by git; an environment variable or a CLI
flag (``--data-root`` / ``--feature-root``) overrides them, in that order of precedence:
flag > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT_ENV = "SELFDISTILL_DATA_ROOT"
FEATURE_ROOT_ENV = "SELFDISTILL_FEATURE_ROOT"


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or REPO_ROOT / "datasets")


def default_feature_root() -> Path:
    return Path(os.environ.get(FEATURE_ROOT_ENV) or REPO_ROOT / "feature_cache")


def add_root_flags(parser) -> None:
    """``--data-root`` and ``--feature-root`` (every script that reads datasets, and sweep.py), their defaults shown."""
    parser.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help=f"folder holding downloaded datasets (default: ${DATA_ROOT_ENV} if set, else {default_data_root()})",
    )
    parser.add_argument(
        "--feature-root",
        type=Path,
        metavar="DIR",
        help=f"folder for cached features (default: ${FEATURE_ROOT_ENV} if set, else {default_feature_root()})",
    )
