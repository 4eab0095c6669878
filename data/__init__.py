"""Datasets as frozen features: the registry, the embedded sets, image sets, feature files, noise and clusters."""

from data.feature_file import load_feature_file
from data.feature_set import FeatureSet
from data.registry import DATASET_NAMES, DataOptions, FeatureIdentity, feature_identity, load_feature_set

__all__ = [
    "DATASET_NAMES",
    "DataOptions",
    "FeatureIdentity",
    "FeatureSet",
    "feature_identity",
    "load_feature_file",
    "load_feature_set",
]
