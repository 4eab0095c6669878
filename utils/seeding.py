"""Explicit randomness: every generator is derived from a run's seed plus named tags."""

from __future__ import annotations

import hashlib

import numpy as np


def tag_to_int(tag: object) -> int:
    """A stable 32-bit integer for a tag (``str``, ``int`` or ``float``), the same on every machine.

    Floats enter through ``repr`` so that 0.5 and 0.50000001 give different streams.
    """
    if isinstance(tag, bool) or not isinstance(tag, (int, float, str)):
        raise TypeError(f"seed tags are str, int or float, got {type(tag).__name__}")
    if isinstance(tag, int) and 0 <= tag < 2**32:
        return tag
    digest = hashlib.blake2b(repr(tag).encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def numpy_rng(seed: int, *tags: object) -> np.random.Generator:
    """``numpy.random.Generator`` seeded by ``SeedSequence([seed, tag_to_int(t) for t in tags])``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(tag_to_int, tags)]))


def derived_seed(seed: int, *tags: object) -> int:
    """A 63-bit integer seed derived the same way, for ``torch.Generator().manual_seed``."""
    state = np.random.SeedSequence([int(seed), *map(tag_to_int, tags)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])
