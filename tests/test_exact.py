"""The exact solver against scikit-learn's optimum, and SGD at the default digits settings against the exact solver."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from data import load_feature_set
from data.noise import make_noisy_labels
from models.heads import init_head
from models.losses import PartialLabelGCE, SoftCrossEntropy
from training.engine import HeadProblem, SGDSettings, train_sgd
from training.exact import objective, solve_head
from training.randomness import IndependentOrder
from training.settings import default_lr_wd


def digits_problem(eta=0.3, seed=0):
    features = load_feature_set("digits")
    noisy = make_noisy_labels(features.train_labels, "sym", eta, seed, 10).labels
    return features, torch.from_numpy(features.train_features), torch.from_numpy(noisy)


def test_lbfgs_teacher_matches_scikit_learn_logistic_regression():
    features, x, noisy = digits_problem()
    wd = 1e-2
    n = x.shape[0]
    targets = torch.nn.functional.one_hot(noisy, 10).double()
    weights, iterations, gradient = solve_head(x, targets, SoftCrossEntropy(), wd, torch.zeros(10, 64))
    reference = LogisticRegression(fit_intercept=False, C=1.0 / (wd * n), tol=1e-12, max_iter=100_000)
    reference.fit(x.double().numpy(), noisy.numpy())
    sk = torch.from_numpy(reference.coef_)
    assert gradient < 1e-7 and iterations > 10
    assert float((weights - sk).norm() / sk.norm()) < 1e-5
    ours = objective(weights.numpy().ravel(), x.double(), targets, SoftCrossEntropy(), wd)[0]
    theirs = objective(sk.numpy().ravel(), x.double(), targets, SoftCrossEntropy(), wd)[0]
    assert ours <= theirs + 1e-12


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(30, 4)))
    targets = torch.zeros(30, 3, dtype=torch.float64).scatter_(1, torch.from_numpy(rng.integers(0, 3, (30, 1))), 0.5)
    gce = PartialLabelGCE(q=0.7)
    w0 = rng.normal(size=12)
    _, grad = objective(w0, x, targets, gce, 0.1)
    step = 1e-6
    numeric = [
        (objective(w0 + step * e, x, targets, gce, 0.1)[0] - objective(w0 - step * e, x, targets, gce, 0.1)[0])
        / (2 * step)
        for e in np.eye(12)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_sgd_at_the_digits_defaults_reaches_the_regularised_optimum():
    features, x, noisy = digits_problem(eta=0.5)
    lr, wd = default_lr_wd("digits")
    n = x.shape[0]
    targets = torch.nn.functional.one_hot(noisy, 10).float()
    problem = HeadProblem(
        features=x,
        test_features=torch.from_numpy(features.test_features),
        test_labels=torch.from_numpy(features.test_labels),
        train_index=torch.arange(n)[None],
        targets=targets[None],
        true_labels=torch.from_numpy(features.train_labels)[None],
        noisy_labels=noisy[None],
        init=init_head(10, 64, torch.Generator().manual_seed(0))[None],
        orders=[IndependentOrder(torch.Generator().manual_seed(0))],
        loss=SoftCrossEntropy(),
    )
    sgd = train_sgd(
        problem, SGDSettings(lr=lr, wd=wd, epochs=200, batch_size=128, gamma=0.98, momentum=0.9, select="test")
    )[0]
    exact, _, _ = solve_head(x, targets, SoftCrossEntropy(), wd, torch.zeros(10, 64))
    f_sgd = objective(sgd.last_weights.double().numpy().ravel(), x.double(), targets.double(), SoftCrossEntropy(), wd)[
        0
    ]
    f_opt = objective(exact.numpy().ravel(), x.double(), targets.double(), SoftCrossEntropy(), wd)[0]
    assert 0 <= f_sgd - f_opt < 2e-4 * f_opt
    assert float((sgd.last_weights.double() - exact).norm() / exact.norm()) < 0.05
    agree = (x @ sgd.last_weights.T).argmax(1) == (x.double() @ exact.T).argmax(1)
    assert agree.float().mean() > 0.98
