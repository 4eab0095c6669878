"""Eigendecompositions of the Gram matrix, computed once per run and shared by every round and point.

The exact solver needs only the few outlying eigenpairs (one per class: the block structure) and the
mean of the rest; ``--approx`` and the spectrum plot need all of them. For a non-symmetric matrix
(``--gram reference``) these are the eigenpairs of its symmetric part (Phi + Phi^T) / 2.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

# Below this size a full eigendecomposition costs less than setting up Lanczos.
_DENSE_BELOW = 400


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """Eigenpairs of the symmetric part of Phi, ascending.

    values (m,) and vectors (N, m); ``complete`` when m = N. ``trace`` is trace(Phi), which gives the
    mean of the eigenvalues that a partial decomposition leaves out.
    """

    values: np.ndarray
    vectors: np.ndarray
    trace: float

    @property
    def size(self) -> int:
        return self.vectors.shape[0]

    @property
    def complete(self) -> bool:
        return self.values.size == self.size

    def top(self, count: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The ``count`` largest eigenpairs (values (T,), vectors (N, T)) and the mean of all others."""
        count = min(count, self.values.size)
        values = self.values[-count:]
        vectors = self.vectors[:, -count:]
        rest = self.size - count
        bulk = (self.trace - float(values.sum())) / rest if rest else float(values.min())
        return values, vectors, bulk


def _symmetric_part(gram: np.ndarray) -> np.ndarray:
    return gram if np.array_equal(gram, gram.T) else 0.5 * (gram + gram.T)


def full_spectrum(gram: np.ndarray) -> Spectrum:
    """All N eigenpairs (divide and conquer, LAPACK ``syevd``): O(N^3), about a second at N = 2000."""
    values, vectors = scipy.linalg.eigh(_symmetric_part(gram), driver="evd", check_finite=False)
    return Spectrum(values, vectors, float(np.trace(gram)))


def top_spectrum(gram: np.ndarray, count: int, rng: np.random.Generator) -> Spectrum:
    """The ``count`` largest eigenpairs by Lanczos (ARPACK), started from a seeded random vector."""
    size = gram.shape[0]
    if size < _DENSE_BELOW or count >= size // 4:
        return full_spectrum(gram)
    start = rng.standard_normal(size)
    values, vectors = scipy.sparse.linalg.eigsh(_symmetric_part(gram), k=count, which="LA", v0=start)
    order = np.argsort(values)
    return Spectrum(values[order], vectors[:, order], float(np.trace(gram)))
