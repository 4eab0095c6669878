"""Synthetic data of the paper's theory: block-correlated Gram matrices and noisy labels.

Samples are ordered by class: sample i of N = K n has true class i // n. All matrices use the row
convention of this package: the logits of round t are ``gram @ (Y_{t-1} - Y_t) / (N lambda)``.
"""

from __future__ import annotations

import numpy as np

from gram_theory.config import GRAMS


def class_labels(k: int, n: int) -> np.ndarray:
    """True classes, shape (N,) with N = k n: ``[0]*n + [1]*n + ... + [k-1]*n``."""
    return np.repeat(np.arange(k), n)


def block_gram(labels: np.ndarray, c: float, d: float) -> np.ndarray:
    """The noiseless matrix (N, N): 1 on the diagonal, ``c`` within a class, ``d`` between classes.

    Its eigenvalues are 1 - c (N - K times), 1 - c + n (c - d) (K - 1 times) and
    1 - c + n (c - d) + N d (once), so it is positive definite when 0 <= d < c < 1.
    """
    gram = np.where(labels[:, None] == labels[None, :], np.float64(c), np.float64(d))
    np.fill_diagonal(gram, 1.0)
    return gram


def feature_gram(
    labels: np.ndarray, k: int, c: float, d: float, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """A true Gram matrix (N, N) of explicit features: symmetric, positive semidefinite, unit diagonal.

    Features live in R^D, D = N + K + 1, with orthonormal e_1..e_N, a_1..a_K, b:

        phi_i = sqrt(1 - c) e_i + sqrt(c - d) a_{y_i} + sqrt(d) b + epsilon g_i,   g_i ~ N(0, I_D / D),

    then each phi_i is scaled to unit norm. The clean part has norm 1 and inner products c (same
    class) and d (other class); the noise has E|g_i|^2 = 1, so epsilon is the noise-to-signal ratio
    of every feature vector. The Gram matrix is assembled as

        B + epsilon (X + X^T) + epsilon^2 G G^T,   X = F0 G^T,

    (B the block matrix, F0 the clean features) so that at epsilon = 0 it equals ``block_gram``
    exactly, not only up to rounding.
    """
    if epsilon == 0:
        return block_gram(labels, c, d)
    n_samples = labels.size
    noise = rng.standard_normal((n_samples, n_samples + k + 1))
    noise *= 1.0 / np.sqrt(n_samples + k + 1)
    # Few N x N temporaries: allocating (page-faulting) each one costs as much as the arithmetic.
    gram = noise @ noise.T  # numpy computes A A^T with syrk: exactly symmetric
    gram *= epsilon**2
    gram += block_gram(labels, c, d)
    # X^T[j, i] = <g_j, clean phi_i>: the coordinates of g_j along e_i, a_{y_i} and b.
    cross_t = noise[:, n_samples : n_samples + k][:, labels]
    cross_t *= np.sqrt(c - d)
    cross_t += np.sqrt(1.0 - c) * noise[:, :n_samples]
    cross_t += np.sqrt(d) * noise[:, n_samples + k :]
    cross_t += cross_t.T  # x_ij + x_ji is exactly symmetric; adding the two to gram in turn is not
    cross_t *= epsilon
    gram += cross_t
    scale = 1.0 / np.sqrt(np.diag(gram).copy())
    gram *= np.outer(scale, scale)  # s_i s_j == s_j s_i, so the result stays exactly symmetric
    np.fill_diagonal(gram, 1.0)
    return gram


def reference_gram(labels: np.ndarray, c: float, d: float, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """The reference construction, in this package's row convention (N, N).

    The reference builds R = block + U with U_ij ~ Uniform[-epsilon, epsilon] drawn independently
    for every (i, j) (not symmetrised), resets the diagonal to 1, and forms its logits as
    (Y_{t-1} - Y) R with Y as K x N. With samples as rows that is R^T (Y_{t-1} - Y), so the matrix
    returned here is R^T. It is neither symmetric nor, at the defaults, positive semidefinite.
    """
    gram = block_gram(labels, c, d)
    gram += rng.uniform(-epsilon, epsilon, size=gram.shape)
    np.fill_diagonal(gram, 1.0)
    return np.ascontiguousarray(gram.T)


def make_gram(
    kind: str, labels: np.ndarray, k: int, c: float, d: float, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """Dispatch on ``kind`` in :data:`GRAMS`; an unknown name lists the valid ones."""
    if kind == "features":
        return feature_gram(labels, k, c, d, epsilon, rng)
    if kind == "reference":
        return reference_gram(labels, c, d, epsilon, rng)
    raise ValueError(f"unknown gram {kind!r}; choose one of {', '.join(GRAMS)}")


def label_noise(labels: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample draws that decide the corruption at every rate: (uniforms (N,), other classes (N,)).

    ``other[i]`` is uniform over the K - 1 classes different from ``labels[i]``. Drawing them once
    and flipping sample i when ``uniforms[i] < eta`` couples the noise across a sweep: the samples
    corrupted at a rate are also corrupted at every higher rate, with the same wrong class.
    """
    uniforms = rng.random(labels.size)
    other = rng.integers(0, k - 1, size=labels.size)
    other += other >= labels
    return uniforms, other


def corrupt(labels: np.ndarray, eta: float, uniforms: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Given (noisy) labels (N,): each label flipped with probability ``eta`` to another class."""
    return np.where(uniforms < eta, other, labels)


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) integer labels -> (N, K) float64 one-hot rows."""
    return np.eye(k)[labels]
