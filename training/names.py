"""Run names that are safe as file names in the store: one rule for building them and for accepting them.

A run's name becomes a symlink, a folder, a lock file and a command-line argument, so it is built
from ``[A-Za-z0-9._-]`` only, starts with a letter or digit, holds no ``..`` and is at most
``MAX_LENGTH`` characters. A name that already obeys the rule is kept as it is (runs already in a
store keep their names); anything else — a features file called ``.hidden.pt`` or ``my data.pt`` —
is cleaned to the alphabet and suffixed with a hash of the original, so two different names never
clean to the same one. Standard library only: parsers import it.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 200
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def is_safe(name: str) -> bool:
    """True if ``name`` can be a run's name as it is."""
    return isinstance(name, str) and len(name) <= MAX_LENGTH and _SAFE.fullmatch(name) is not None and ".." not in name


def safe_name(name: str) -> str:
    """``name`` itself when it is safe, else a cleaned, readable form of it plus a hash of the original."""
    if is_safe(name):
        return name
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    cleaned = re.sub(r"\.{2,}", ".", _UNSAFE_RUN.sub("_", name)).lstrip("._-")
    return f"{cleaned[: MAX_LENGTH - len(digest) - 1] or 'run'}-{digest}"
