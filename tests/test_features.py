"""Frozen-feature extraction and its sharded cache: hits, legacy entries, resumption, rebuilding, identity.

Registry-level tests decode generated images at 32×32 (the paper's transform at a tiny size) through
randomly initialised torchvision networks; cache-level tests use a tiny network on in-memory tensors.
"""

from __future__ import annotations

import logging
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import data.images as images_module
import models.backbone as backbone_module
from data import DataOptions, load_feature_set
from data import features as extraction
from data.registry import feature_identity
from models.backbone import Backbone, build_backbone
from models.choices import backbone_spec
from utils.errors import UsageError, UserError


def options(root, feature_root, **changes):
    settings = {
        "data_root": root,
        "feature_root": feature_root,
        "download": "never",
        "depth": 18,
        "weights": "none",
        "device": "cpu",
        "workers": 0,
        "batch_size": 4,
    }
    return DataOptions(**{**settings, **changes})


@pytest.fixture(autouse=True)
def tiny_paper_transform(monkeypatch):
    monkeypatch.setattr(images_module, "PAPER_SIZE", 32)


@pytest.fixture
def count_builds(monkeypatch):
    calls = []

    def counting(arch, weights="default"):
        calls.append(arch)
        return build_backbone(arch, weights)

    monkeypatch.setattr(backbone_module, "build_backbone", counting)
    return calls


def test_extraction_shapes_names_and_grayscale_conversion(image_folder, tmp_path, count_builds):
    features = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert features.train_features.shape == (6, 512) and features.test_features.shape == (4, 512)
    assert features.class_names == ("cat", "dog")  # "cat" images are grayscale: converted to RGB
    np.testing.assert_array_equal(features.train_labels, [0, 0, 0, 1, 1, 1])
    assert np.isfinite(features.train_features).all()
    assert count_builds == ["resnet18"]
    assert (features.backbone, features.weights) == ("resnet18", "random-init-seed0")
    assert features.source.startswith(
        "imagefolder/resnet18/random-init-seed0/rgb|resize-224x224-bilinear-antialias|tensor|imagenet-mean-std/fp32/"
    )
    identity = feature_identity("imagefolder", options(image_folder, tmp_path / "cache"))
    assert (identity.backbone, identity.weights, identity.source) == (
        features.backbone,
        features.weights,
        features.source,
    )


def test_cache_is_reused_and_separated_by_architecture(image_folder, tmp_path, count_builds, caplog):
    caplog.set_level(logging.INFO)
    first = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    second = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert count_builds == ["resnet18"], "the second call must not run the backbone"
    assert "cache hit" in caplog.text
    np.testing.assert_array_equal(first.train_features, second.train_features)
    other = options(image_folder, tmp_path / "cache", depth=None, arch="squeezenet1_1", transform="paper")
    squeeze = load_feature_set("imagefolder", other)
    assert count_builds == ["resnet18", "squeezenet1_1"], "a new architecture must not reuse resnet18 features"
    assert squeeze.source != first.source and squeeze.backbone == "squeezenet1_1" and squeeze.dim == 512
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 4


def test_a_cache_written_before_shards_is_still_a_hit(image_folder, tmp_path, count_builds):
    """The single-file entry {key, features, labels} at the old name is read as it was."""
    source_options = options(image_folder, tmp_path / "cache")
    fingerprint = images_module.list_image_folder(image_folder).fingerprint
    stored = {}
    for split, rows in (("train", 6), ("test", 4)):
        key = extraction.cache_key("imagefolder", split, backbone_spec(18, weights="none"), "fp32", fingerprint)
        assert set(key) == {"dataset", "split", "depth", "weights", "transform", "precision", "content"}
        stored[split] = torch.randn(rows, 512), torch.tensor([0, 1] * (rows // 2))
        path = extraction.cache_path(tmp_path / "cache", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "features": stored[split][0], "labels": stored[split][1]}, path)
    features = load_feature_set("imagefolder", source_options)
    assert count_builds == []
    np.testing.assert_array_equal(features.train_features, stored["train"][0].numpy())
    np.testing.assert_array_equal(features.test_labels, stored["test"][1].numpy())


def test_changed_images_change_the_cache_key(image_folder, tmp_path, count_builds):
    load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    (image_folder / "train" / "dog" / "0.png").write_bytes((image_folder / "train" / "dog" / "1.png").read_bytes())
    load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert count_builds == ["resnet18", "resnet18"], "new image content must not hit the old cache"


def test_missing_pretrained_weights_name_the_file_and_folder(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(backbone_module.models._api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(UserError, match=r"resnet18-f37072fd\.pth.*hub/checkpoints.*--weights none"):
        build_backbone(18, "default")
    with pytest.raises(UserError, match=r"squeezenet1_1-b8a52dc0\.pth.*hub/checkpoints/ or run with --weights none"):
        build_backbone("squeezenet1_1", "default")


def test_imagefolder_errors_are_user_errors(tmp_path, image_folder):
    with pytest.raises(UserError, match="train/<class>"):
        load_feature_set("imagefolder", options(tmp_path, tmp_path / "cache"))
    (image_folder / "train" / "empty").mkdir()
    with pytest.raises(UserError, match=r"class folder\(s\) empty in .* hold no images"):
        load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"arch": "resnet50"}, r"give --depth or --arch, not both \(--depth 18 means --arch resnet18\)"),
        ({"depth": None, "arch": "vit_b16"}, r"unknown --arch 'vit_b16'; close matches: vit_b_16"),
        ({"depth": None, "arch": "resnet"}, r"close matches: resnet\d+"),
        (
            {"weights": "IMAGENET1K_V2"},
            r"--weights 'IMAGENET1K_V2' is not a weights name of resnet18; choose default, "
            r"none or one of IMAGENET1K_V1",
        ),
        (
            {"depth": None, "arch": "vit_b_16", "weights": "IMAGENET1K_SWAG_E2E_V1", "transform": "paper"},
            r"takes 384×384 images, but --transform paper gives 224×224",
        ),
        ({"transform": "crop"}, "--transform must be one of paper, weights"),
        ({"precision": "fp8"}, "--precision must be one of auto, fp16, bf16, fp32"),
        ({"batch_size": 0}, "--extract-batch must be at least 1"),
        ({"workers": -1}, "-j/--workers must be at least 0"),
        ({"device": "tpu"}, "--device must be one of auto, cpu, cuda"),
        ({"depth": 101}, "--depth must be one of 18, 34, 50, got 101; use --arch"),
    ],
)
def test_option_errors_are_one_line_usage_errors(tmp_path, changes, pattern):
    with pytest.raises(UsageError, match=pattern) as error:
        options(tmp_path, tmp_path / "cache", **changes).validate()
    assert "\n" not in str(error.value)


def test_identity_of_every_existing_configuration_is_unchanged():
    """Run identities hash these strings: they must stay byte-identical to what they were."""
    cpu = DataOptions(device="cpu")
    assert feature_identity("digits").source == "sklearn-digits/split-0.25-0/standardised"
    assert feature_identity("digits")[:2] == ("identity", "none")
    assert feature_identity("synthetic").source == (
        "synthetic(num_superclasses=4,classes_per_super=3,dim=64,train_per_class=100,test_per_class=100,"
        "superclass_radius=5.0,class_scale=0.35,noise_scale=1.0,seed=0)"
    )
    assert feature_identity("synthetic")[:2] == ("planted", "none")
    paper = "rgb|resize-224x224-bilinear-antialias|tensor|imagenet-mean-std"
    assert feature_identity("cifar10", DataOptions(device="cpu", depth=50)) == (
        "resnet50",
        "ResNet50_Weights.IMAGENET1K_V2",
        f"cifar10/resnet50/ResNet50_Weights.IMAGENET1K_V2/{paper}/fp32",
    )
    assert feature_identity("food101", DataOptions(device="cpu", weights="none", depth=18)).source == (
        f"food101/resnet18/random-init-seed0/{paper}/fp32"
    )
    assert feature_identity("cifar100", cpu).source == f"cifar100/resnet34/ResNet34_Weights.IMAGENET1K_V1/{paper}/fp32"
    assert feature_identity("cifar100", DataOptions(device="cpu", precision="fp16")).source.endswith("/amp-fp16")
    vit = feature_identity("cifar100", DataOptions(device="cpu", arch="vit_b_16"))
    assert vit == (
        "vit_b_16",
        "ViT_B_16_Weights.IMAGENET1K_V1",
        "cifar100/vit_b_16/ViT_B_16_Weights.IMAGENET1K_V1/"
        "rgb|resize-shorter-256-bilinear-antialias|center-crop-224|tensor|imagenet-mean-std/fp32",
    )


# Cache-level tests: a tiny network on in-memory tensors.


class Tiny(nn.Module):
    """A small frozen convolutional network whose forward calls are counted."""

    def __init__(self, fail_after: int | None = None, nan: bool = False):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 5, 3)
        self.images, self.nan = 0, nan

    def forward(self, x):
        self.images += x.shape[0]
        out = self.conv(x).mean(dim=(2, 3))
        return out * float("nan") if self.nan else out


def tiny_backbone(**kwargs) -> Backbone:
    network = Tiny(**kwargs).eval().requires_grad_(False)
    return Backbone(network=network, arch="tiny", weights_name="random", feature_dim=5)


def tensors(n=22, seed=1):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 6, 6, generator=g), torch.arange(n) % 3)


def tiny_cache(root, rows=22, shard_rows=5):
    key = {
        "dataset": "toy",
        "split": "train",
        "arch": "tiny",
        "weights": "random",
        "transform": "none",
        "precision": "fp32",
        "content": "",
    }
    return extraction.FeatureCache(root, key, rows, 3, shard_rows)


SETTINGS = extraction.ExtractSettings(torch.device("cpu"), "fp32", batch_size=5, workers=0)


def test_interrupted_extraction_resumes_from_its_last_complete_shard(tmp_path, monkeypatch):
    data = tensors()
    reference, reference_labels, hit = extraction.cached_features(
        tiny_cache(tmp_path / "ref"), data, tiny_backbone, SETTINGS
    )
    assert not hit and reference.shape == (22, 5)
    cache = tiny_cache(tmp_path / "cache")
    write = extraction.FeatureCache.write_shard

    def interrupt_after_two(self, number, features, labels):
        if number == 2:
            raise KeyboardInterrupt
        write(self, number, features, labels)

    monkeypatch.setattr(extraction.FeatureCache, "write_shard", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        extraction.cached_features(cache, data, tiny_backbone, SETTINGS)
    monkeypatch.setattr(extraction.FeatureCache, "write_shard", write)
    assert sorted(p.name for p in cache.shard_dir.iterdir()) == ["00000.pt", "00001.pt"], "no partial shard left"
    assert not cache.index_path.exists()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.shard_dir.iterdir()}
    backbone = tiny_backbone()
    features, labels, hit = extraction.cached_features(cache, data, lambda: backbone, SETTINGS)
    assert not hit and backbone.network.images == 22 - 2 * 5, "shards 0 and 1 are not recomputed"
    assert {name: before[name] for name in before} == {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.shard_dir.iterdir() if p.name in before
    }
    np.testing.assert_array_equal(features, reference)
    np.testing.assert_array_equal(labels, reference_labels)
    assert len(list(cache.shard_dir.iterdir())) == 5  # 5 + 5 + 5 + 5 + 2 rows


def test_damaged_index_and_shards_are_rebuilt_quietly(tmp_path, caplog):
    data = tensors()
    cache = tiny_cache(tmp_path)
    reference, _, _ = extraction.cached_features(cache, data, tiny_backbone, SETTINGS)
    caplog.set_level(logging.INFO)
    cache.index_path.write_bytes(cache.index_path.read_bytes()[:40])  # truncated index: shards are intact
    backbone = tiny_backbone()
    features, _, hit = extraction.cached_features(tiny_cache(tmp_path), data, lambda: backbone, SETTINGS)
    assert not hit and backbone.network.images == 0, "the index is rewritten from the shards"
    np.testing.assert_array_equal(features, reference)
    torch.save(
        {"key": cache.key, "start": 20, "features": torch.zeros(2, 7), "labels": torch.zeros(2).long()},
        cache.shard_path(4),
    )  # wrong dimension in the last shard
    features, _, hit = extraction.cached_features(tiny_cache(tmp_path), data, lambda: backbone, SETTINGS)
    assert not hit and backbone.network.images == 2, "only the bad shard is recomputed"
    np.testing.assert_array_equal(features, reference)
    assert "rebuilding it" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a rebuilt cache is a note under -v only"


@pytest.mark.parametrize(
    "entry",
    [
        lambda key: {"key": key, "features": torch.zeros(21, 5), "labels": torch.zeros(21).long()},  # wrong rows
        lambda key: {"key": key, "features": torch.full((22, 5), float("nan")), "labels": torch.zeros(22).long()},
        lambda key: {"key": key, "features": torch.zeros(22, 5), "labels": torch.full((22,), 3)},  # labels ≥ K
        lambda key: {"key": key, "features": torch.zeros(22, 5, dtype=torch.float64), "labels": torch.zeros(22).long()},
        lambda key: {"key": {**key, "split": "test"}, "features": torch.zeros(22, 5), "labels": torch.zeros(22).long()},
        lambda key: [1, 2, 3],
    ],
)
def test_a_cache_file_of_the_wrong_shape_or_content_is_rebuilt(tmp_path, entry):
    cache = tiny_cache(tmp_path)
    cache.index_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(entry(cache.key), cache.index_path)
    backbone = tiny_backbone()
    features, labels, hit = extraction.cached_features(cache, tensors(), lambda: backbone, SETTINGS)
    assert not hit and backbone.network.images == 22 and np.isfinite(features).all() and labels.max() == 2


def test_non_finite_features_are_refused_and_leave_nothing(tmp_path):
    root = tmp_path / "features"
    with pytest.raises(UserError, match=r"tiny with random gave NaN or infinite features for images 0\.\.4"):
        extraction.cached_features(tiny_cache(root), tensors(), lambda: tiny_backbone(nan=True), SETTINGS)
    assert not root.exists(), "the feature root this extraction created is removed again"


def test_one_progress_line_per_shard_when_not_on_a_terminal(tmp_path, capsys):
    settings = extraction.ExtractSettings(torch.device("cpu"), "fp32", 5, 0, progress=True, description="toy train")
    extraction.cached_features(tiny_cache(tmp_path), tensors(), tiny_backbone, settings)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and "5/5 toy train shards: 22/22 images stored" in lines[-1] and "images/s" in lines[-1]


def test_weights_transform_is_rgb_then_the_weights_own_transforms():
    from PIL import Image
    from torchvision import models

    from data.images import image_transform

    gray = Image.fromarray(np.arange(300, dtype=np.uint8).reshape(15, 20), mode="L")
    image = image_transform(backbone_spec(arch="efficientnet_b1", weights="IMAGENET1K_V1"))(gray)
    expected = models.EfficientNet_B1_Weights.IMAGENET1K_V1.transforms()(gray.convert("RGB"))
    assert image.shape == (3, 240, 240)
    torch.testing.assert_close(image, expected, rtol=0, atol=0)
    paper = image_transform(backbone_spec(18))(gray)
    assert paper.shape == (3, 32, 32)  # the paper's Resize((224, 224)), at this file's tiny size


@pytest.mark.slow
def test_weights_transform_path_with_grayscale_images(image_folder, tmp_path):
    """A non-ResNet architecture gets its weights' transforms() (shorter side 256, centre crop 224) after RGB."""
    features = load_feature_set(
        "imagefolder", options(image_folder, tmp_path / "cache", depth=None, arch="mobilenet_v3_small")
    )
    assert features.dim == 1024 and features.backbone == "mobilenet_v3_small"
    assert np.isfinite(features.train_features).all()
    assert "/rgb|resize-shorter-256-bilinear-antialias|center-crop-224|tensor|imagenet-mean-std/fp32/" in (
        features.source
    )


@pytest.mark.slow
def test_identity_needs_no_torch(tmp_path):
    from tests.conftest import run_script

    code = (
        "import sys; from data.registry import DataOptions, feature_identity; "
        "print(feature_identity('cifar100', DataOptions(device='cpu', arch='vit_b_16', weights='none')).source); "
        "print(feature_identity('digits').backbone); assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = run_script("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "cifar100/vit_b_16/random-init-seed0/rgb|resize-shorter-256-bilinear-antialias|center-crop-224|tensor|"
        "imagenet-mean-std/fp32",
        "identity",
    ]


@pytest.mark.slow
def test_a_vision_transformer_at_full_size(image_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "PAPER_SIZE", 224)
    features = load_feature_set(
        "imagefolder", options(image_folder, tmp_path / "cache", depth=None, arch="vit_b_32", workers=2)
    )
    assert features.dim == 768 and features.weights == "random-init-seed0"
    assert np.isfinite(features.train_features).all()
