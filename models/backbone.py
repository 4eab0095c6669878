"""The frozen feature extractor: any torchvision classification model with its classifier removed.

The feature is the input of the model's last ``nn.Linear``, which is replaced by ``nn.Identity``:
fc7 (after ReLU and dropout) for VGG and AlexNet, the hidden layer for MobileNetV3 and MaxViT, the
output of the final LayerNorm for ConvNeXt, the pooled output for ResNet, ViT (class token), Swin,
EfficientNet, RegNet, DenseNet and the rest. SqueezeNet has no Linear (its classifier is a 1×1
convolution to the classes): its feature is the global average of its last feature map (512-d).

``weights="none"`` gives a randomly initialised network, initialised from a fixed seed (so its
features are reproducible and cacheable) with the input size of the architecture's DEFAULT weights,
so the whole path can be exercised offline. Pretrained weights come from torchvision's hub folder;
when they cannot be loaded the error names the file and the folder to place it in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from models.choices import (
    DEFAULT_ARCH,
    FIXED_INPUT,
    RANDOM_INIT_SEED,
    arch_entry,
    architecture,
    resolve_weights,
    weights_entry,
)
from utils.errors import UserError
from utils.unreadable import FAILED_DOWNLOAD


@dataclasses.dataclass(frozen=True)
class Backbone:
    network: nn.Module  # frozen, in eval mode; its output is the (N, feature_dim) feature
    arch: str  # e.g. "resnet34", "vit_b_16"
    weights_name: str  # e.g. "ResNet34_Weights.IMAGENET1K_V1", or RANDOM_INIT_NAME
    feature_dim: int


@contextlib.contextmanager
def _quiet_unless_verbose():
    """torchvision warns about future defaults while building some models: shown only with -v."""
    with warnings.catch_warnings():
        if not logging.getLogger().isEnabledFor(logging.INFO):
            warnings.simplefilter("ignore")
        yield


def build_backbone(arch: str | int = DEFAULT_ARCH, weights: str = "default") -> Backbone:
    """A frozen ``arch`` (a torchvision model name; an int means a ResNet depth) whose output is its feature."""
    arch = architecture(depth=arch) if isinstance(arch, int) else architecture(arch=arch)
    weights_name, member = resolve_weights(arch, weights)
    with _quiet_unless_verbose():
        if member is None:
            network = _random_init(arch)
        else:
            network = _pretrained(arch, models.get_model_weights(arch)[member])
    dim = strip_classifier(network, arch)
    network.eval()
    network.requires_grad_(False)
    return Backbone(network=network, arch=arch, weights_name=weights_name, feature_dim=dim)


def _random_init(arch: str) -> nn.Module:
    # A ViT's position embeddings fix its input size: build it for the DEFAULT weights' images.
    size = {"image_size": weights_entry(arch, arch_entry(arch)[1])[1]} if FIXED_INPUT.match(arch) else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        return models.get_model(arch, weights=None, **size)


def _pretrained(arch: str, chosen) -> nn.Module:
    try:
        return models.get_model(arch, weights=chosen)
    except FAILED_DOWNLOAD as error:  # no network, a hash mismatch, a damaged file; anything else is a bug
        file_name = Path(chosen.url).name
        target = Path(torch.hub.get_dir()) / "checkpoints"
        raise UserError(
            f"could not load {chosen} ({type(error).__name__}); place {file_name} "
            f"(from {chosen.url}) in {target}/ or run with --weights none"
        ) from None


def _set_submodule(network: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(network.get_submodule(parent) if parent else network, name, module)


def strip_classifier(network: nn.Module, arch: str) -> int:
    """Replace the classifier so that ``network`` outputs its feature; returns the feature dimension D."""
    modules = list(network.named_modules())
    linears = [(name, module) for name, module in modules if isinstance(module, nn.Linear)]
    leaves = [name for name, module in modules if next(module.children(), None) is None]
    if linears and linears[-1][0] == leaves[-1]:  # the classifier is the last module, as in every torchvision model
        name, linear = linears[-1]
        _set_submodule(network, name, nn.Identity())
        return int(linear.in_features)
    if isinstance(network, models.SqueezeNet):
        conv = network.classifier[1]  # Conv2d(512, classes, 1); forward() flattens what the classifier returns
        network.classifier = nn.AdaptiveAvgPool2d(1)
        return int(conv.in_channels)
    raise UserError(
        f"{arch} does not end in a linear classifier, so its feature layer is not known; "
        f"compute features yourself and pass them with --features"
    )
