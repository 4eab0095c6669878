"""Checks for settings, used by every config's own validation: each failure is a :class:`UsageError`
naming the flag, what it must be and what it got."""

from __future__ import annotations

import math
import os

from utils.errors import UsageError

INT64_MAX = 2**63 - 1
SEED_LIMIT = 2**32


def number(flag: str, value: object) -> float:
    """A finite real number (not bool, NaN or ±inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{flag} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {value}")
    return float(value)


def interval(
    flag: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite number in the interval given by ``low``/``high`` (closed unless ``*_open``)."""
    x = number(flag, value)
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if too_low or too_high:
        left = "−∞" if low is None else f"{low:g}"
        right = "∞" if high is None else f"{high:g}"
        brackets = (
            ("(" if low_open or low is None else "[") + f"{left}, {right}" + (")" if high_open or high is None else "]")
        )
        raise UsageError(f"{flag} must lie in {brackets}, got {x:g}")
    return x


FLOAT32_MAX = 3.4028234663852886e38


def float32(flag: str, value: float) -> float:
    """A value that float32 tensors (the training arithmetic) can hold: |x| ≤ 3.4e38."""
    if abs(value) > FLOAT32_MAX:
        raise UsageError(f"{flag} {value:g} is beyond what float32 training arithmetic can hold (|x| ≤ 3.4e38)")
    return value


def positive(flag: str, value: object) -> float:
    x = number(flag, value)
    if x <= 0:
        raise UsageError(f"{flag} must be positive, got {x:g}")
    return x


def non_negative(flag: str, value: object) -> float:
    x = number(flag, value)
    if x < 0:
        raise UsageError(f"{flag} must be 0 or more, got {x:g}")
    return x


def integer(flag: str, value: object, low: int | None = None, high: int | None = INT64_MAX) -> int:
    """An integer in [low, high] (by default it must fit int64)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{flag} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise UsageError(f"{flag} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise UsageError(f"{flag} must be at most {high}, got {value}")
    return value


def seed(flag: str, value: object) -> int:
    return integer(flag, value, 0, SEED_LIMIT - 1)


def choice(flag: str, value: object, choices) -> object:
    if value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def memory(what: str, estimate_bytes: float, fix: str) -> None:
    """Refuse work whose arrays would not fit in the memory available now, with the estimate."""
    available = available_memory()
    if available is not None and estimate_bytes > available:
        raise UsageError(
            f"{what} needs about {_size(estimate_bytes)} of memory but {_size(available)} is available; {fix}"
        )


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB"
