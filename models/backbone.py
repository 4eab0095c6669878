"""The frozen feature extractor: a torchvision ResNet with its classifier removed.

``weights="default"`` loads torchvision's recommended ImageNet weights (``weights="DEFAULT"``);
``weights="none"`` gives a randomly initialised network (initialised from a fixed seed, so its
features are reproducible and cacheable), so the path can be exercised offline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from models.choices import FEATURE_DIMS, WEIGHT_CHOICES
from utils.errors import UsageError, UserError

ARCHITECTURES = {18: (models.resnet18, models.ResNet18_Weights),
                 34: (models.resnet34, models.ResNet34_Weights),
                 50: (models.resnet50, models.ResNet50_Weights)}
RANDOM_INIT_SEED = 0
RANDOM_INIT_NAME = f"random-init-seed{RANDOM_INIT_SEED}"


@dataclasses.dataclass(frozen=True)
class Backbone:
    network: nn.Module
    depth: int
    weights_name: str  # e.g. "ResNet34_Weights.IMAGENET1K_V1", or RANDOM_INIT_NAME

    @property
    def feature_dim(self) -> int:
        return FEATURE_DIMS[self.depth]


def resolve_weights_name(depth: int, weights: str) -> str:
    """The exact weights a ``(depth, weights)`` choice means, without building the network."""
    check_choice(depth, weights)
    return RANDOM_INIT_NAME if weights == "none" else str(ARCHITECTURES[depth][1].DEFAULT)


def check_choice(depth: int, weights: str) -> None:
    if depth not in ARCHITECTURES:
        raise UsageError(f"--depth must be one of {sorted(ARCHITECTURES)}, got {depth}")
    if weights not in WEIGHT_CHOICES:
        raise UsageError(f"--weights must be one of {', '.join(WEIGHT_CHOICES)}, got {weights!r}")


def build_backbone(depth: int, weights: str = "default") -> Backbone:
    """A frozen ResNet-``depth`` in eval mode whose output is the penultimate (pooled) layer."""
    check_choice(depth, weights)
    constructor, weight_enum = ARCHITECTURES[depth]
    if weights == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            network = constructor(weights=None)
        return _frozen(network, depth, weights)
    chosen = weight_enum.DEFAULT
    try:
        network = constructor(weights=chosen)
    except Exception as error:  # download failures surface as URLError, OSError, RuntimeError, ...
        file_name = Path(chosen.url).name
        target = Path(torch.hub.get_dir()) / "checkpoints"
        raise UserError(
            f"could not load {chosen} ({type(error).__name__}); place {file_name} "
            f"(from {chosen.url}) in {target}/ or run with --weights none"
        ) from None
    return _frozen(network, depth, weights)


def _frozen(network: nn.Module, depth: int, weights: str) -> Backbone:
    network.fc = nn.Identity()
    network.eval()
    network.requires_grad_(False)
    return Backbone(network=network, depth=depth, weights_name=resolve_weights_name(depth, weights))
