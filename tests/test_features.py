"""Frozen-feature extraction and its cache, on tiny generated images with a randomly initialised ResNet."""

from __future__ import annotations

import logging
import urllib.error

import numpy as np
import pytest

import models.backbone as backbone_module
from data import DataOptions, load_feature_set
from data.features import cache_path
from models.backbone import build_backbone
from utils.errors import UserError


def options(root, feature_root, depth=18):
    return DataOptions(data_root=root, feature_root=feature_root, download="never", depth=depth, weights="none",
                       device="cpu", workers=0, batch_size=4)


@pytest.fixture
def count_builds(monkeypatch):
    calls = []

    def counting(depth, weights="default"):
        calls.append(depth)
        return build_backbone(depth, weights)

    monkeypatch.setattr(backbone_module, "build_backbone", counting)
    return calls


def test_extraction_shapes_and_grayscale_conversion(image_folder, tmp_path, count_builds):
    features = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert features.train_features.shape == (6, 512) and features.test_features.shape == (4, 512)
    assert features.class_names == ("cat", "dog")  # "cat" images are grayscale: converted to RGB
    np.testing.assert_array_equal(features.train_labels, [0, 0, 0, 1, 1, 1])
    assert np.isfinite(features.train_features).all()
    assert count_builds == [18]


def test_cache_is_reused_and_rebuilt_after_depth_change(image_folder, tmp_path, count_builds, caplog):
    caplog.set_level(logging.INFO)
    first = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    second = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert count_builds == [18], "the second call must not run the backbone"
    assert "cache hit" in caplog.text
    np.testing.assert_array_equal(first.train_features, second.train_features)
    deeper = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache", depth=34))
    assert count_builds == [18, 34], "a new depth must not reuse depth-18 features"
    assert deeper.source != first.source
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 4


def test_truncated_cache_is_rebuilt(image_folder, tmp_path, count_builds):
    first = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    files = sorted((tmp_path / "cache").glob("*train*.pt"))
    assert len(files) == 1
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    again = load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert count_builds == [18, 18], "a truncated file is rebuilt, not loaded"
    np.testing.assert_allclose(again.train_features, first.train_features, rtol=1e-5, atol=1e-5)
    assert files[0].read_bytes() != data[: len(data) // 2]


def test_changed_images_change_the_cache_key(image_folder, tmp_path, count_builds):
    load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    (image_folder / "train" / "dog" / "0.png").write_bytes((image_folder / "train" / "dog" / "1.png").read_bytes())
    load_feature_set("imagefolder", options(image_folder, tmp_path / "cache"))
    assert count_builds == [18, 18], "new image content must not hit the old cache"


def test_cache_key_names_dataset_split_depth_and_precision(tmp_path):
    key = {"dataset": "cifar10", "split": "train", "depth": 50, "weights": "w", "transform": "t",
           "precision": "fp32", "content": ""}
    name = cache_path(tmp_path, key).name
    assert name.startswith("cifar10-train-resnet50-fp32-")
    assert cache_path(tmp_path, {**key, "weights": "other"}) != cache_path(tmp_path, key)


def test_missing_pretrained_weights_name_the_file_and_folder(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(backbone_module.models._api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(UserError, match=r"resnet18-f37072fd\.pth.*hub/checkpoints.*--weights none"):
        build_backbone(18, "default")


def test_imagefolder_without_splits_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="train/<class>"):
        load_feature_set("imagefolder", options(tmp_path, tmp_path / "cache"))
