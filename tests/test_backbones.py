"""Backbones: every torchvision classification model maps to a family whose feature layer is known;
the catalog matches the installed torchvision; D is the removed Linear's in_features; the cache key
separates what changes features; extraction does not depend on batching or on worker processes."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torchvision import models

import data.images as images_module
from data import features as extraction
from data.images import IMAGE_SOURCES, image_transform
from models.backbone import build_backbone, strip_classifier
from models.choices import CATALOG, CATALOG_TORCHVISION, RANDOM_INIT_NAME, backbone_spec, catalog_entry, precision_id
from tests.conftest import make_image_folder

# family: (name pattern, the classifier module the feature is the input of). The path is read from a
# freshly built model, independently of strip_classifier's own search.
FAMILIES = {
    "alexnet": (r"alexnet", "classifier.6"),
    "convnext": (r"convnext_\w+", "classifier.2"),
    "densenet": (r"densenet\d+", "classifier"),
    "efficientnet": (r"efficientnet_b\d", "classifier.1"),
    "efficientnet_v2": (r"efficientnet_v2_[sml]", "classifier.1"),
    "googlenet": (r"googlenet", "fc"),
    "inception": (r"inception_v3", "fc"),
    "maxvit": (r"maxvit_\w+", "classifier.5"),
    "mnasnet": (r"mnasnet\d_\d+", "classifier.1"),
    "mobilenet_v2": (r"mobilenet_v2", "classifier.1"),
    "mobilenet_v3": (r"mobilenet_v3_(small|large)", "classifier.3"),
    "regnet": (r"regnet_[xy]_\w+", "fc"),
    "resnet": (r"resnet\d+", "fc"),
    "resnext": (r"resnext\d+_\w+", "fc"),
    "wide_resnet": (r"wide_resnet\d+_2", "fc"),
    "shufflenet_v2": (r"shufflenet_v2_x\d_\d", "fc"),
    "squeezenet": (r"squeezenet1_[01]", "classifier.1"),  # a 1×1 convolution: the feature is its input, averaged
    "swin": (r"swin_[tsb]", "head"),
    "swin_v2": (r"swin_v2_[tsb]", "head"),
    "vgg": (r"vgg\d+(_bn)?", "classifier.6"),
    "vit": (r"vit_[bhl]_\d+", "heads.head"),
}
# Feature dimension D with each architecture's DEFAULT weights.
KNOWN_DIMS = {
    "alexnet": 4096,
    "vgg16": 4096,
    "vgg19_bn": 4096,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet152": 2048,
    "wide_resnet50_2": 2048,
    "resnext50_32x4d": 2048,
    "densenet121": 1024,
    "densenet201": 1920,
    "googlenet": 1024,
    "inception_v3": 2048,
    "mobilenet_v2": 1280,
    "mobilenet_v3_small": 1024,
    "mobilenet_v3_large": 1280,
    "mnasnet1_0": 1280,
    "shufflenet_v2_x1_0": 1024,
    "squeezenet1_1": 512,
    "efficientnet_b0": 1280,
    "efficientnet_b7": 2560,
    "efficientnet_v2_s": 1280,
    "convnext_tiny": 768,
    "convnext_large": 1536,
    "regnet_y_400mf": 440,
    "regnet_y_16gf": 3024,
    "swin_t": 768,
    "swin_v2_b": 1024,
    "maxvit_t": 512,
    "vit_b_16": 768,
    "vit_l_16": 1024,
    "vit_h_14": 1280,
}
# The default tier's representatives: real builds where the meta device cannot build or the head is special,
# shapes on the meta device for the rest; the slow tier covers every family and every model.
CHEAP = ("resnet18", "squeezenet1_1", "regnet_x_400mf")
META = ("vit_b_16", "swin_t", "convnext_tiny", "efficientnet_b0", "vgg16", "alexnet", "mobilenet_v3_small", "googlenet")


def family_of(name: str) -> str:
    matches = [family for family, (pattern, _) in FAMILIES.items() if re.fullmatch(pattern, name)]
    assert len(matches) == 1, f"{name} maps to {matches or 'no family'}: add it to FAMILIES with its classifier"
    return matches[0]


def all_models() -> list[str]:
    return models.list_models(module=models)


def default_meta(name: str):
    return models.get_model_weights(name).DEFAULT.meta


def smallest_per_family() -> dict[str, str]:
    best: dict[str, str] = {}
    for name in all_models():
        family = family_of(name)
        if family not in best or default_meta(name)["num_params"] < default_meta(best[family])["num_params"]:
            best[family] = name
    return best


def fresh(name: str, device: str = "cpu"):
    """A random-init model as torchvision builds it for its DEFAULT weights (a ViT's input size included)."""
    size = {"image_size": default_meta(name)["min_size"][0]} if name.startswith("vit_") else {}
    with warnings.catch_warnings(), torch.device(device):
        warnings.simplefilter("ignore")
        return models.get_model(name, weights=None, **size)


def removed_width(model, name: str) -> int:
    module = model.get_submodule(FAMILIES[family_of(name)][1])
    return module.in_channels if isinstance(module, torch.nn.Conv2d) else module.in_features


def check_meta(name: str) -> int:
    """D on the meta device (shapes only, no arithmetic): the removed layer's width and the output's."""
    model = fresh(name, "meta")
    expected = removed_width(model, name)
    dim = strip_classifier(model, name)
    size = default_meta(name)["min_size"][0]
    with torch.inference_mode():
        out = model.eval()(torch.empty(2, 3, size, size, device="meta"))
    assert dim == expected and tuple(out.shape) == (2, dim), name
    return dim


def check_real(name: str) -> None:
    """Random weights at the smallest input the architecture accepts: D = the removed Linear's in_features."""
    expected = removed_width(fresh(name), name)
    backbone = build_backbone(name, "none")
    size = default_meta(name)["min_size"][0]
    with torch.inference_mode():
        out = backbone.network(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)))
    assert backbone.feature_dim == expected and tuple(out.shape) == (2, expected), name
    assert torch.isfinite(out).all() and backbone.weights_name == RANDOM_INIT_NAME
    assert not any(p.requires_grad for p in backbone.network.parameters()) and not backbone.network.training


def test_every_model_has_a_family_and_the_catalog_matches_torchvision():
    names = all_models()
    assert {family_of(name) for name in names} == set(FAMILIES), "every family is still there"
    assert sorted(CATALOG) == sorted(names), "models.choices.CATALOG lists exactly torchvision's models"
    # --arch is validated against the catalog without importing torchvision when the versions agree.
    assert torchvision.__version__.split("+")[0] == CATALOG_TORCHVISION, "rewrite CATALOG for this torchvision"
    for name in names:
        assert CATALOG[name] == catalog_entry(name), f"CATALOG[{name!r}] is not torchvision's {catalog_entry(name)}"


@pytest.mark.parametrize("name", CHEAP)
def test_representative_families_with_random_weights(name):
    check_real(name)


@pytest.mark.parametrize("name", META)
def test_representative_feature_layers_on_the_meta_device(name):
    assert check_meta(name) == KNOWN_DIMS[name]


@pytest.mark.slow
def test_known_dimensions_for_default_weights():
    for name, dim in KNOWN_DIMS.items():
        if name.startswith("regnet"):  # regnet's constructor computes widths with real tensors: no meta build
            assert build_backbone(name, "none").feature_dim == dim
        else:
            assert check_meta(name) == dim, name


@pytest.mark.slow
def test_smallest_member_of_every_family_with_random_weights():
    for name in smallest_per_family().values():
        check_real(name)


@pytest.mark.slow
def test_every_model_on_the_meta_device():
    for name in all_models():
        if not name.startswith("regnet"):
            check_meta(name)


def test_the_cache_separates_architectures_weights_transforms_and_precisions(tmp_path):
    specs = [
        backbone_spec(18),
        backbone_spec(50),
        backbone_spec(arch="vit_b_16"),
        backbone_spec(34, weights="none"),
        backbone_spec(50, weights="IMAGENET1K_V1"),
        backbone_spec(34, transform="weights"),
        backbone_spec(arch="convnext_tiny", transform="paper"),
    ]
    paths = {
        extraction.cache_path(tmp_path, extraction.cache_key("cifar10", "train", spec, precision, ""))
        for spec in specs
        for precision in ("fp32", "amp-fp16", "amp-bf16")
    }
    assert len(paths) == len(specs) * 3
    assert precision_id("auto", cuda=True) == "amp-fp16" and precision_id("auto", cuda=False) == "fp32"
    assert precision_id("bf16", cuda=False) == "amp-bf16"


def test_legacy_resnet_keys_and_names_are_pinned(tmp_path):
    """Caches written before --arch existed (ResNets, the paper's transform) keep their exact key and file name."""
    key = extraction.cache_key("cifar100", "train", backbone_spec(34), "amp-fp16", "")
    assert key == {
        "dataset": "cifar100",
        "split": "train",
        "depth": 34,
        "weights": "ResNet34_Weights.IMAGENET1K_V1",
        "transform": "rgb|resize-224x224-bilinear-antialias|tensor|imagenet-mean-std",
        "precision": "amp-fp16",
        "content": "",
    }
    assert extraction.cache_path(tmp_path, key).name == "cifar100-train-resnet34-amp-fp16-08782dda4d02.pt"
    for depth, weights, precision, name in [
        (18, "none", "fp32", "cifar100-train-resnet18-fp32-94907e7f54e8.pt"),
        (50, "default", "fp32", "cifar100-train-resnet50-fp32-c9f828b21264.pt"),
    ]:
        key = extraction.cache_key("cifar100", "train", backbone_spec(depth, weights=weights), precision, "")
        assert extraction.cache_path(tmp_path, key).name == name
    vit = extraction.cache_key("cifar100", "train", backbone_spec(arch="vit_b_16"), "fp32", "")
    assert vit["arch"] == "vit_b_16" and "depth" not in vit


@pytest.fixture
def tiny_images(tmp_path, monkeypatch):
    """Eight generated images per split, decoded and resized to 32×32 (the paper's transform at a tiny size)."""
    monkeypatch.setattr(images_module, "PAPER_SIZE", 32)
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), per_split=(4, 1), size=(20, 14))
    return IMAGE_SOURCES["imagefolder"].build(root, False, image_transform(backbone_spec(18))).train


def test_features_do_not_depend_on_batching_or_workers(tiny_images):
    backbone = build_backbone(18, "none")
    cpu = torch.device("cpu")
    torch.manual_seed(123)
    rng_state = torch.get_rng_state()
    one, labels = extraction.extract(backbone, tiny_images, cpu, batch_size=8, workers=0, amp=False)
    several, labels_several = extraction.extract(backbone, tiny_images, cpu, batch_size=4, workers=0, amp=False)
    workers, labels_workers = extraction.extract(backbone, tiny_images, cpu, batch_size=4, workers=2, amp=False)
    assert one.shape == (8, 512) and np.abs(one).max() > 0
    np.testing.assert_allclose(several, one, rtol=1e-5, atol=1e-5 * np.abs(one).max())
    np.testing.assert_array_equal(workers, several)  # bitwise: workers only decode
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(labels_several, labels)
    np.testing.assert_array_equal(labels_workers, labels)
    assert torch.equal(torch.get_rng_state(), rng_state), "extraction draws nothing from the global generator"
