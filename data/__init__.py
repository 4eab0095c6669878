"""Datasets as frozen features: the registry, the embedded sets, image sets, feature files, noise and clusters.

The names below load their module on first use (PEP 562), so that importing a light module of the
package (``data.noise_types``, ``data.paths``) loads neither numpy nor the rest: command lines read
them before their signal handlers are in place.
"""

import importlib

_HOMES = {
    "DATASET_NAMES": "data.registry",
    "DataOptions": "data.registry",
    "FeatureIdentity": "data.registry",
    "FeatureSet": "data.feature_set",
    "feature_identity": "data.registry",
    "load_feature_file": "data.feature_file",
    "load_feature_set": "data.registry",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")
