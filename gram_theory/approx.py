"""The paper's linearised rounds in closed form: label averaging along Phi's eigenvectors.

With softmax(z) ~ (1 + z) / K the round-t fixed point Y = (1 + Phi (Y_{t-1} - Y) / (N lambda)) / K is
linear. For the centred outputs C_t = Y_t - 1/K (rows sum to 0) it reads

    (Phi + K N lambda I) C_t = Phi C_{t-1},

so with Phi = sum_j mu_j u_j u_j^T every round multiplies the component of C along u_j by the shrink
factor s_j = mu_j / (mu_j + K N lambda): C_t = U diag(s^t) U^T C_0. Directions with small mu_j (within
a class) are averaged away first; the K outlying ones (the class means) survive longest.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import scipy.linalg

from gram_theory.spectrum import Spectrum

_REFINEMENTS = 2


def shrink_factors(values: np.ndarray, k: int, n_samples: int, lbd: float) -> np.ndarray:
    """s_j = mu_j / (mu_j + K N lambda), one per eigenvalue."""
    return values / (values + k * n_samples * lbd)


def closed_form(spectrum: Spectrum, given: np.ndarray, lbd: float) -> Iterator[np.ndarray]:
    """Y_1, Y_2, ... (each (N, K)) of the linearised rounds for a symmetric Phi, from Y_0 = ``given``.

    One eigendecomposition serves every round: Y_t = 1/K + U diag(s^t) U^T (Y_0 - 1/K).
    """
    if not spectrum.complete:
        raise ValueError("the closed form needs the full eigendecomposition")
    n_samples, k = given.shape
    shrink = shrink_factors(spectrum.values, k, n_samples, lbd)
    coefficients = spectrum.vectors.T @ (given - 1.0 / k)
    factor = np.ones_like(shrink)
    while True:
        factor = factor * shrink
        yield 1.0 / k + spectrum.vectors @ (factor[:, None] * coefficients)


def direct(gram: np.ndarray, given: np.ndarray, lbd: float) -> Iterator[np.ndarray]:
    """The same rounds by one LU of Phi + K N lambda I, for a Phi without orthogonal eigenvectors.

    Each solve gets iterative refinement: when Phi has eigenvalues near -K N lambda (the reference
    construction does) the system is ill-conditioned and the outputs grow from round to round.
    """
    n_samples, k = given.shape
    shifted = gram + k * n_samples * lbd * np.eye(n_samples)
    factor = scipy.linalg.lu_factor(shifted)
    previous = given - 1.0 / k
    while True:
        target = gram @ previous
        centred = scipy.linalg.lu_solve(factor, target)
        for _ in range(_REFINEMENTS):
            centred += scipy.linalg.lu_solve(factor, target - shifted @ centred)
        yield 1.0 / k + centred
        previous = centred
