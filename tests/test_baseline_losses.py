"""The label-noise baselines' losses: values against float64 formulas written out here and against
numbers worked out by hand from each paper's equation, closed-form gradients against autograd, and
the engine's calling convention (a preallocated buffer, a stack of heads, blocks of batches)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data.noise import make_noisy_labels, transition_matrix
from models.heads import init_head
from models.losses import (
    ForwardCorrection,
    GeneralizedCrossEntropy,
    HardBootstrap,
    PartialLabelGCE,
    SoftBootstrap,
    SoftCrossEntropy,
    SymmetricCrossEntropy,
    label_smoothing_targets,
)
from training.engine import HeadProblem, SGDSettings, train_sgd
from training.exact import solve_head
from training.randomness import IndependentOrder
from training.transition import estimate_transition, true_transition
from utils.threads import cpu_threads

H, B, K = 2, 6, 4


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):  # tiny matmuls: one thread is faster and the numbers do not depend on the machine
        yield


def symmetric_transition(eta: float, k: int) -> torch.Tensor:
    t = torch.full((k, k), eta / (k - 1), dtype=torch.float64)
    return t.fill_diagonal_(1.0 - eta)


TRANSITIONS = torch.stack(
    [
        symmetric_transition(0.3, K),  # heads with different matrices, one asymmetric
        torch.tensor(
            [[0.6, 0.4, 0.0, 0.0], [0.0, 0.7, 0.3, 0.0], [0.0, 0.0, 0.9, 0.1], [0.2, 0.0, 0.0, 0.8]],
            dtype=torch.float64,
        ),
    ]
)


# Independent float64 formulas of each loss, written from the papers' equations (autograd follows
# through them where the method differentiates; ``detach`` where it treats a term as a constant).
def _log_p(z):
    return torch.log_softmax(z, dim=-1)


def ref_soft_bootstrap(z, y, stop_gradient=True, beta=0.95):
    p = torch.softmax(z, dim=-1)
    mixed = beta * y + (1 - beta) * (p.detach() if stop_gradient else p)
    return -(mixed * _log_p(z)).sum(-1)


def ref_hard_bootstrap(z, y, beta=0.8):
    predicted = torch.nn.functional.one_hot(z.detach().argmax(-1), z.shape[-1]).double()
    return -((beta * y + (1 - beta) * predicted) * _log_p(z)).sum(-1)


def ref_gce(z, y, q=0.7):
    p = torch.softmax(z, dim=-1)
    return (y * (1 - p**q) / q).sum(-1)  # one-hot y: (1 − p_y^q)/q; soft y: the PLL student's average


def ref_sce(z, y, alpha=0.1, beta=1.0, a=-4.0):
    p = torch.softmax(z, dim=-1)
    log_y = torch.where(y > 0, torch.log(torch.where(y > 0, y, 1.0)), torch.tensor(a, dtype=y.dtype))
    return alpha * -(y * torch.log(p)).sum(-1) + beta * -(p * torch.maximum(log_y, torch.tensor(a))).sum(-1)


def ref_forward(z, y, transition=TRANSITIONS):
    p = torch.softmax(z, dim=-1)
    q = torch.einsum("hbi,hij->hbj", p, transition)  # q_j = Σ_i p_i T_ij, per head
    return -(y * torch.log(q)).sum(-1)


CASES = {
    "boot-soft": (SoftBootstrap(), ref_soft_bootstrap),
    "boot-soft-through-p": (SoftBootstrap(stop_gradient=False), lambda z, y: ref_soft_bootstrap(z, y, False)),
    "boot-hard": (HardBootstrap(), ref_hard_bootstrap),
    "gce": (GeneralizedCrossEntropy(), ref_gce),
    "sce": (SymmetricCrossEntropy(), ref_sce),
    "fc": (ForwardCorrection(TRANSITIONS), ref_forward),
}


def batch(seed=0, soft=False):
    g = torch.Generator().manual_seed(seed)
    z = 3.0 * torch.randn(H, B, K, generator=g, dtype=torch.float64)
    if soft:
        y = torch.softmax(2.0 * torch.randn(H, B, K, generator=g, dtype=torch.float64), -1)
    else:
        y = torch.nn.functional.one_hot(torch.randint(0, K, (H, B), generator=g), K).double()
    return z, y


def autograd_gradient(reference, z, y):
    z = z.clone().requires_grad_(True)
    reference(z, y).sum().backward()
    return z.grad


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("soft", [False, True], ids=["one-hot", "soft"])
def test_value_and_gradient_against_float64_formula_and_autograd(name, soft):
    loss, reference = CASES[name]
    z, y = batch(1, soft)
    value, grad = loss(z, y)
    torch.testing.assert_close(value, reference(z, y).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, autograd_gradient(reference, z, y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_engine_calling_convention(name):
    """float32 stacks as the engine passes them: the buffer is written and returned, the inputs are not
    touched, and the value of a block of batches (count, H, B, K) is that of each batch."""
    loss, _ = CASES[name]
    z64, y64 = batch(2)
    z, y = z64.float(), y64.float()
    z_before, y_before = z.clone(), y.clone()
    buffer = torch.full_like(z, float("nan"))
    returned = loss.gradient(z, y, out=buffer)
    assert returned.data_ptr() == buffer.data_ptr()
    assert torch.equal(buffer, loss.gradient(z, y))
    torch.testing.assert_close(buffer.double(), loss.gradient(z64, y64), rtol=1e-4, atol=1e-5)
    assert torch.equal(z, z_before) and torch.equal(y, y_before)
    z2, y2 = batch(3)
    block = loss.value(torch.stack([z, z2.float()]), torch.stack([y, y2.float()]))
    assert block.shape == (2, H, B)
    torch.testing.assert_close(block[0], loss.value(z, y))
    torch.testing.assert_close(block[1], loss.value(z2.float(), y2.float()))


# -- one point worked out by hand: z = (ln 2, 0, 0), so p = softmax(z) = (1/2, 1/4, 1/4); noisy label 1 --

HAND_Z = torch.tensor([math.log(2.0), 0.0, 0.0], dtype=torch.float64)
HAND_Y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
LN2 = 0.6931471805599453


def test_label_smoothing_by_hand_and_against_torch():
    # t = 0.9·e_1 + 0.1/3 = (1/30, 14/15, 1/30); −Σ t log p = (1/30)·ln 2 + (14/15)·ln 4 + (1/30)·ln 4 = (59/30)·ln 2
    value = SoftCrossEntropy().value(HAND_Z, label_smoothing_targets(HAND_Y))
    assert value.item() == pytest.approx(59 / 30 * LN2, rel=1e-14)
    assert value.item() == pytest.approx(1.3631894551012256, rel=1e-14)
    z, y = batch(4)
    labels = y.argmax(-1)
    torch_loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="none")(z.reshape(-1, K), labels.reshape(-1))
    ours, grad = SoftCrossEntropy()(z, label_smoothing_targets(y))
    torch.testing.assert_close(ours.reshape(-1), torch_loss, rtol=1e-12, atol=1e-12)
    autograd = autograd_gradient(
        lambda w, _: torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="none")(
            w.reshape(-1, K), labels.reshape(-1)
        ),
        z,
        y,
    )
    torch.testing.assert_close(grad, autograd, rtol=1e-10, atol=1e-12)
    assert torch.allclose(label_smoothing_targets(y).sum(-1), torch.ones(H, B, dtype=torch.float64))


def test_soft_bootstrap_by_hand():
    # Reed et al. Eq. (soft): −Σ_k (β t_k + (1 − β) q_k) log q_k, β = 0.95:
    # 0.95·ln 4 + 0.05·(½ ln 2 + ¼ ln 4 + ¼ ln 4) = (1.9 + 0.075)·ln 2 = 1.975·ln 2
    assert SoftBootstrap().value(HAND_Z, HAND_Y).item() == pytest.approx(1.368965681605892, rel=1e-14)
    # stop-gradient: p − t = p − 0.95·e_1 − 0.05·p = 0.95·(p − e_1) = 0.95·(½, −¾, ¼)
    torch.testing.assert_close(
        SoftBootstrap().gradient(HAND_Z, HAND_Y),
        torch.tensor([0.475, -0.7125, 0.2375], dtype=torch.float64),
        rtol=1e-14,
        atol=1e-15,
    )


def test_hard_bootstrap_by_hand():
    # Reed et al. Eq. (hard): −Σ_k (β t_k + (1 − β) z_k) log q_k, z = e_argmax = e_0, β = 0.8:
    # 0.8·ln 4 + 0.2·ln 2 = 1.8·ln 2; gradient p − 0.8·e_1 − 0.2·e_0 = (0.3, −0.55, 0.25)
    assert HardBootstrap().value(HAND_Z, HAND_Y).item() == pytest.approx(1.2476649250079015, rel=1e-14)
    torch.testing.assert_close(
        HardBootstrap().gradient(HAND_Z, HAND_Y),
        torch.tensor([0.3, -0.55, 0.25], dtype=torch.float64),
        rtol=1e-14,
        atol=1e-15,
    )


def test_gce_by_hand_and_as_the_pll_loss_on_one_hot_targets():
    # Zhang & Sabuncu Eq. 6: (1 − f_y^q)/q = (1 − (1/4)^0.7)/0.7 = (1 − 2^−1.4)/0.7, 2^−1.4 = 0.3789291416275995
    assert GeneralizedCrossEntropy().value(HAND_Z, HAND_Y).item() == pytest.approx(0.8872440833891436, rel=1e-14)
    z, y = batch(5)
    ours, pll = GeneralizedCrossEntropy()(z, y), PartialLabelGCE(q=0.7)(z, y)
    assert torch.equal(ours[0], pll[0]) and torch.equal(ours[1], pll[1])
    p_y = (torch.softmax(z, -1) * y).sum(-1)
    torch.testing.assert_close(ours[0], (1 - p_y**0.7) / 0.7, rtol=1e-12, atol=1e-12)


def test_symmetric_cross_entropy_by_hand():
    # Wang et al. Eq. 5–6: α·CE + β·RCE, CE = −log p_1 = ln 4, RCE = −Σ_k p_k log y_k = −A·(p_0 + p_2) = 4·¾ = 3:
    # 0.1·ln 4 + 1.0·3 = 3.138629436111989
    assert SymmetricCrossEntropy().value(HAND_Z, HAND_Y).item() == pytest.approx(3.138629436111989, rel=1e-14)


def test_forward_correction_by_hand():
    # Patrini et al. Thm 2: −log (Tᵀ p)_y with symmetric T, η = 0.2, K = 3 (0.8 on the diagonal, 0.1 off it):
    # (Tᵀ p)_1 = 0.1·½ + 0.8·¼ + 0.1·¼ = 0.275; −ln 0.275 = 1.2909841813155656
    loss = ForwardCorrection(torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64))
    assert loss.value(HAND_Z, HAND_Y).item() == pytest.approx(1.2909841813155656, rel=1e-14)


def test_soft_bootstrap_stop_gradient_is_a_scaled_cross_entropy_gradient():
    """What 'treated as a constant' implies: β·(p − y), so SGD on it is cross-entropy with lr·β, wd/β."""
    z, y = batch(6)
    torch.testing.assert_close(
        SoftBootstrap().gradient(z, y), 0.95 * SoftCrossEntropy().gradient(z, y), rtol=1e-14, atol=1e-15
    )


def test_forward_correction_with_the_identity_is_cross_entropy():
    z, y = batch(7, soft=True)
    identity = ForwardCorrection(torch.eye(K).expand(H, K, K))
    for a, b in zip(identity(z, y), SoftCrossEntropy()(z, y)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_forward_correction_checks_its_matrix_and_its_head_axis():
    with pytest.raises(ValueError, match="sum to 1"):
        ForwardCorrection(torch.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        ForwardCorrection(torch.tensor([[1.5, -0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(K, K\) or \(H, K, K\)"):
        ForwardCorrection(torch.eye(3)[:2])
    z, y = batch(8)
    with pytest.raises(ValueError, match="stack of 2 matrices"):
        ForwardCorrection(TRANSITIONS).value(z[0], y[0])  # no head axis
    alone = ForwardCorrection(TRANSITIONS).head(1)  # (K, K): for a per-head solver's (N, K) logits
    torch.testing.assert_close(alone.value(z[1], y[1]), ForwardCorrection(TRANSITIONS).value(z, y)[1])
    assert SoftCrossEntropy().head(1) == SoftCrossEntropy()


def test_forward_correction_heads_with_different_matrices_train_as_one_stack():
    """Two heads with their own T, trained as one stack, follow the trajectories they follow alone."""
    g = torch.Generator().manual_seed(0)
    n, d = 120, 5
    x = torch.randn(n, d, generator=g)
    noisy = torch.randint(0, K, (n,), generator=g)
    rows = torch.stack([torch.randperm(n, generator=g)[:100] for _ in range(H)])
    init = torch.stack([init_head(K, d, torch.Generator().manual_seed(h)) for h in range(H)])
    settings = SGDSettings(lr=0.2, wd=1e-3, epochs=2, batch_size=16, gamma=0.9, momentum=0.9, select="test")

    def problem(heads, loss):
        return HeadProblem(
            features=x,
            test_features=x[:10],
            test_labels=noisy[:10],
            train_index=rows[heads],
            targets=torch.nn.functional.one_hot(noisy[rows[heads]], K).float(),
            true_labels=noisy[rows[heads]],
            noisy_labels=noisy[rows[heads]],
            init=init[heads],
            orders=[IndependentOrder(torch.Generator().manual_seed(h)) for h in heads],
            loss=loss,
        )

    stacked = train_sgd(problem([0, 1], ForwardCorrection(TRANSITIONS.float())), settings)
    for h in range(H):
        alone = train_sgd(problem([h], ForwardCorrection(TRANSITIONS[h : h + 1].float())), settings)[0]
        torch.testing.assert_close(stacked[h].last_weights, alone.last_weights, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(stacked[0].last_weights, stacked[1].last_weights, atol=1e-2)


# -- the transition matrix of forward correction -----------------------------------------------------


def test_anchor_is_the_largest_probability_below_the_97th_percentile():
    """101 rows with p_0 = 0.00, 0.01, …, 1.00 (shuffled): the 97th percentile ('higher') is the value at
    position ⌈0.97·100⌉ = 97 of the sorted column, 0.97; the anchor is the largest below it, 0.96."""
    p0 = np.random.default_rng(0).permutation(np.arange(101)) / 100
    probabilities = np.stack([p0, 1 - p0], axis=1)
    original = probabilities.copy()
    np.testing.assert_allclose(estimate_transition(probabilities), [[0.96, 0.04], [0.04, 0.96]], atol=1e-12)
    np.testing.assert_allclose(estimate_transition(probabilities, percentile=None), [[1.0, 0.0], [0.0, 1.0]])
    assert np.array_equal(probabilities, original)  # the input is not modified
    # ten rows: position ⌈0.97·9⌉ = 9, the largest value itself, so the anchor is the second largest
    small = np.array(
        [
            [0.1, 0.9],
            [0.8, 0.2],
            [0.95, 0.05],
            [0.3, 0.7],
            [0.6, 0.4],
            [0.2, 0.8],
            [0.7, 0.3],
            [0.4, 0.6],
            [0.5, 0.5],
            [0.05, 0.95],
        ]
    )
    np.testing.assert_allclose(estimate_transition(torch.tensor(small)), [[0.8, 0.2], [0.1, 0.9]], atol=1e-12)


def test_estimated_transition_is_near_the_planted_one():
    """A head trained (exactly) on symmetrically corrupted labels of three tight, separated clusters
    estimates T within 0.05 of the matrix the labels were drawn from."""
    k, per_class, eta = 3, 3000, 0.3
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(k), per_class)
    x = torch.tensor(np.eye(k)[true] + rng.normal(scale=1 / 40, size=(true.size, k)))
    noisy = make_noisy_labels(true, "sym", eta, 0, k).labels
    weights, _, _ = solve_head(
        x,
        torch.nn.functional.one_hot(torch.tensor(noisy), k).double(),
        SoftCrossEntropy(),
        1e-5,
        torch.zeros(k, k, dtype=torch.float64),
    )
    estimate = estimate_transition(torch.softmax(x @ weights.T, dim=-1))
    planted = true_transition("sym", eta, k)
    np.testing.assert_array_equal(planted, transition_matrix("sym", eta, k))
    assert np.abs(estimate - planted).max() < 0.05
    np.testing.assert_allclose(estimate.sum(axis=1), 1.0, atol=1e-12)
    assert np.abs(estimate - np.eye(k)).max() > 0.25  # the noise is really seen
