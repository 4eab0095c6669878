"""Exact full-batch solves of a head's objective: mean loss + (λ/2)‖W‖², float64 on the CPU, by L-BFGS.

For the teacher and the students the objective is strictly convex (cross-entropy with hard or soft
targets plus a ridge), so L-BFGS reaches the unique minimiser; the tests compare it with
scikit-learn's ``LogisticRegression(fit_intercept=False, C=1/(λN))``. For the PLL student the
generalised cross-entropy is not convex: started from the teacher's weights, L-BFGS finds a
stationary point near them.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import torch

from training.engine import HeadProblem, HeadResult, evaluate
from utils.errors import UserError

GRADIENT_TOL = 1e-9  # max-norm of the objective's gradient at the solution
MAX_ITERATIONS = 20_000


class ExactSolveError(UserError):
    """L-BFGS stopped before the gradient norm reached its tolerance."""


def objective(
    weights: np.ndarray, features: torch.Tensor, targets: torch.Tensor, loss, wd: float
) -> tuple[float, np.ndarray]:
    """Value and gradient of mean loss + (wd/2)‖W‖² at flat float64 ``weights`` (features (N, D), targets (N, K))."""
    num_classes, dim = targets.shape[1], features.shape[1]
    w = torch.from_numpy(weights.reshape(num_classes, dim))
    values, dlogits = loss(features @ w.T, targets)
    n = features.shape[0]
    value = values.sum() / n + 0.5 * wd * (w * w).sum()
    grad = dlogits.T @ features / n + wd * w
    return float(value), grad.numpy().ravel()


def solve_head(
    features: torch.Tensor, targets: torch.Tensor, loss, wd: float, init: torch.Tensor
) -> tuple[torch.Tensor, int, float]:
    """Minimise from ``init`` (K, D); returns (weights float64, iterations, final gradient max-norm)."""
    x = features.detach().cpu().double()
    t = targets.detach().cpu().double()
    start = init.detach().cpu().double().numpy().ravel()
    result = scipy.optimize.minimize(
        objective,
        start,
        args=(x, t, loss, wd),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": MAX_ITERATIONS, "maxcor": 30, "gtol": GRADIENT_TOL, "ftol": 0.0},
    )
    gradient = np.abs(objective(result.x, x, t, loss, wd)[1]).max()
    if gradient > 100 * GRADIENT_TOL:
        raise ExactSolveError(
            f"L-BFGS stopped after {result.nit} iterations ({result.message}) with gradient "
            f"max-norm {gradient:.2e} > {100 * GRADIENT_TOL:.0e}; a larger --wd makes the problem "
            f"better conditioned, or use --optimizer sgd"
        )
    weights = torch.from_numpy(result.x.reshape(init.shape))
    return weights, int(result.nit), float(gradient)


def train_exact(problem: HeadProblem, wd: float, eval_batch: int = 4096) -> list[HeadResult]:
    """Solve every head exactly; its history is one row with the same metrics as an SGD epoch."""
    results = []
    for h in range(problem.num_heads):
        rows = problem.train_index[h]
        features = problem.features[rows]
        loss = problem.loss.head(h)  # a loss with per-head parameters (forward correction) gives this head's
        weights, iterations, gradient = solve_head(features, problem.targets[h], loss, wd, problem.init[h])
        stack = weights.float().to(problem.features.device)[None]
        train_loss = float(
            loss(features.double() @ weights.to(features.device).T, problem.targets[h].double())[0].mean()
        )
        logits = features @ stack[0].T
        predicted = logits.argmax(dim=-1)
        row = {
            "epoch": 1,
            "lr": float("nan"),
            "train_loss": train_loss,
            "train_acc_true": 100.0 * float((predicted == problem.true_labels[h]).double().mean()),
            "train_acc_noisy": 100.0 * float((predicted == problem.noisy_labels[h]).double().mean()),
        }
        test_loss, test_acc = evaluate(stack, problem.test_features, problem.test_labels, eval_batch)
        row.update(test_loss=float(test_loss[0]), test_acc=float(test_acc[0]), gradient_max_norm=gradient)
        if problem.val_index is not None:
            val_loss, val_acc = evaluate(
                stack, problem.features[problem.val_index[h]][None], problem.val_labels[h][None], eval_batch
            )
            row.update(val_loss=float(val_loss[0]), val_acc=float(val_acc[0]))
        final = weights.float()
        results.append(HeadResult(final, final.clone(), 1, [row], iterations=iterations))
    return results
