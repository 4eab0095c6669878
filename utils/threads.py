"""Thread counts, scoped: set where the work runs and restored afterwards, never changed process-wide.

``cpu_threads(n)`` limits torch's intra-op pool (when torch is loaded) and the BLAS/OpenMP pools
numpy and scipy use (through threadpoolctl) to ``n`` inside the block, then puts back what was
there. The same seed with the same thread count gives the same numbers; runs record the count.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

# Below this many multiply-adds per training step, one CPU thread beats several: the matmuls are
# too small to split, and threads that wait on each other cost more than they save (measured: the
# digits chain ran 6× faster on one thread than on two, with identical numbers).
SMALL_STEP_WORK = 4_000_000


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which schedulers set), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def training_threads(requested: int, work_per_step: int) -> int:
    """``requested`` if positive, else 1 for small steps and every available CPU otherwise."""
    if requested > 0:
        return requested
    return 1 if work_per_step < SMALL_STEP_WORK else available_cpus()


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[int]:
    """Run the block with ``count`` threads in torch (if imported) and in the BLAS pools; restore them after."""
    from threadpoolctl import threadpool_limits

    if count < 1:
        raise ValueError(f"thread count must be at least 1, got {count}")
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=count):
        if torch is not None:
            torch.set_num_threads(count)
        try:
            yield count
        finally:
            if torch is not None:
                torch.set_num_threads(before)
