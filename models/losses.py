"""Per-sample losses of the linear heads and their closed-form gradients with respect to the logits.

Shapes: ``logits`` (..., K) and ``targets`` (..., K), where every target row is a probability
vector (one-hot labels, a model's softmax outputs, or uniform weights on a candidate set).
``value`` gives one loss per sample (...,); ``gradient`` gives ∂loss/∂logits (..., K) and can write
it into a preallocated buffer, which the training engine reuses at every step; calling a loss
returns both. A stack of heads (H, B, K) gets (H, B) and (H, B, K). The training engine and the
exact solver both use these closed forms (no autograd); the tests check them against autograd
and float64 formulas.

Besides the paper's two losses, the label-noise baselines: label smoothing (a target transform for
the cross-entropy), soft and hard bootstrapping, generalised and symmetric cross-entropy, and
forward correction with one transition matrix per head.
"""

from __future__ import annotations

import dataclasses

import torch


class Loss:
    def value(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def gradient(self, logits: torch.Tensor, targets: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(logits, targets), self.gradient(logits, targets)

    def head(self, h: int) -> Loss:
        """The loss of head ``h`` alone, for logits without a head axis (a per-head solver): the same
        loss unless it has per-head parameters."""
        return self


@dataclasses.dataclass(frozen=True)
class SoftCrossEntropy(Loss):
    """ℓ(z, t) = −Σ_k t_k log p_k with p = softmax(z);  ∂ℓ/∂z = p − t for a probability vector t.

    With one-hot targets this is the cross-entropy on hard labels (the teacher); with the previous
    model's softmax outputs it is the students' distillation loss.
    """

    def value(self, logits, targets):
        return -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1)

    def gradient(self, logits, targets, out=None):
        out = torch.softmax(logits, dim=-1, out=out) if out is not None else torch.softmax(logits, dim=-1)
        return out.sub_(targets)


@dataclasses.dataclass(frozen=True)
class PartialLabelGCE(Loss):
    """Generalised cross-entropy averaged over a candidate set: ℓ(z, w) = Σ_k w_k (1 − p_k^q) / q.

    ``w`` holds 1/|S| on the candidate classes S and 0 elsewhere (the PLL student's target set:
    the teacher's top-k classes), ``p = softmax(z)`` and ``0 < q ≤ 1`` (the paper uses 0.7).
    ∂ℓ/∂z_m = −w_m p_m^q + p_m Σ_k w_k p_k^q. As q → 0, ℓ tends to the cross-entropy averaged over S.
    """

    q: float

    def value(self, logits, targets):
        powered = torch.exp(self.q * torch.log_softmax(logits, dim=-1))
        return (1.0 - (targets * powered).sum(dim=-1)) / self.q

    def gradient(self, logits, targets, out=None):
        log_p = torch.log_softmax(logits, dim=-1)
        weighted = torch.exp(self.q * log_p).mul_(targets)
        total = weighted.sum(dim=-1, keepdim=True)
        out = torch.exp(log_p, out=out) if out is not None else torch.exp(log_p)
        return out.mul_(total).sub_(weighted)


# -- label-noise baselines ---------------------------------------------------------------------------
# Each takes the noisy labels' one-hot rows as targets (label smoothing transforms them first) and
# keeps the interface above, so the engine and the exact solver train them unchanged.

LABEL_SMOOTHING = 0.1


def label_smoothing_targets(targets: torch.Tensor, epsilon: float = LABEL_SMOOTHING) -> torch.Tensor:
    """(1 − ε)·t + ε/K for targets (..., K): with :class:`SoftCrossEntropy`, label smoothing.

    On one-hot rows this is ``torch.nn.CrossEntropyLoss(label_smoothing=ε)`` (Szegedy et al. 2016,
    "Rethinking the Inception Architecture", §7): −Σ_k ((1 − ε) y_k + ε/K) log p_k.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"label smoothing ε must lie in [0, 1], got {epsilon}")
    return targets * (1.0 - epsilon) + epsilon / targets.shape[-1]


@dataclasses.dataclass(frozen=True)
class SoftBootstrap(Loss):
    """Soft bootstrapping (Reed et al. 2015, "Training deep neural networks on noisy labels with
    bootstrapping", §3.2): the cross-entropy to t = β·y + (1 − β)·p with p = softmax(z), β = 0.95.

    Value: ℓ(z, y) = −Σ_k (β y_k + (1 − β) p_k) log p_k = β·CE(z, y) + (1 − β)·H(p).
    p is recomputed from the logits at every call (every step), so nothing but (logits, y) is needed.

    ``stop_gradient=True`` (the default): t is treated as a constant, so ∂ℓ/∂z = p − t = β (p − y).
    That is β times the cross-entropy's gradient: under SGD this is plain cross-entropy with learning
    rate β·lr and weight decay wd/β — the entropy term contributes nothing. Being no gradient of
    the value, it cannot drive a line search (L-BFGS); its stationary point is the cross-entropy
    minimiser with weight decay wd/β.
    ``stop_gradient=False`` differentiates the value itself (Reed et al.'s reading, "equivalent to
    softmax regression with minimum entropy regularization", and the reference Keras code of Patrini
    et al. 2017 and Wang et al. 2019, which backpropagate through p):
    ∂ℓ/∂z_m = β (p_m − y_m) − (1 − β) p_m (log p_m + H(p)),  H(p) = −Σ_k p_k log p_k.
    """

    beta: float = 0.95
    stop_gradient: bool = True

    def value(self, logits, targets):
        log_p = torch.log_softmax(logits, dim=-1)
        return -(targets * log_p).sum(dim=-1) * self.beta - (log_p.exp() * log_p).sum(dim=-1) * (1.0 - self.beta)

    def gradient(self, logits, targets, out=None):
        out = torch.softmax(logits, dim=-1, out=out) if out is not None else torch.softmax(logits, dim=-1)
        if self.stop_gradient:
            return out.sub_(targets).mul_(self.beta)
        log_p = torch.log_softmax(logits, dim=-1)
        entropy = -(out * log_p).sum(dim=-1, keepdim=True)
        entropy_term = log_p.add_(entropy).mul_(out).mul_(1.0 - self.beta)  # p ⊙ (log p + H), scaled
        return out.sub_(targets).mul_(self.beta).sub_(entropy_term)


@dataclasses.dataclass(frozen=True)
class HardBootstrap(Loss):
    """Hard bootstrapping (Reed et al. 2015, §3.2): the cross-entropy to t = β·y + (1 − β)·e_ĉ with
    ĉ = argmax_k z_k (the first on ties) recomputed from the logits at every call, β = 0.8.

    Value: ℓ(z, y) = −β log p_y − (1 − β) log p_ĉ.  Gradient, t treated as a constant:
    ∂ℓ/∂z = p − β y − (1 − β) e_ĉ. Since ĉ is piecewise constant in z, this is also the value's own
    gradient wherever the argmax is unique, so the stop-gradient changes nothing here. The value
    jumps where ĉ changes: the objective is neither smooth nor convex.
    """

    beta: float = 0.8

    def _mixed(self, logits, targets):
        predicted = torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(targets.dtype)
        return targets * self.beta + predicted * (1.0 - self.beta)

    def value(self, logits, targets):
        return -(self._mixed(logits, targets) * torch.log_softmax(logits, dim=-1)).sum(dim=-1)

    def gradient(self, logits, targets, out=None):
        out = torch.softmax(logits, dim=-1, out=out) if out is not None else torch.softmax(logits, dim=-1)
        return out.sub_(self._mixed(logits, targets))


@dataclasses.dataclass(frozen=True)
class GeneralizedCrossEntropy(PartialLabelGCE):
    """Generalised cross-entropy on the noisy labels (Zhang & Sabuncu 2018, "Generalized Cross Entropy
    Loss for Training Deep Neural Networks with Noisy Labels", Eq. 6): ℓ(z, e_y) = (1 − p_y^q)/q,
    q = 0.7. It is :class:`PartialLabelGCE` with one-hot targets (a candidate set of one class), so
    the teacher trained with the PLL student's loss; value and gradient are the parent's. Not convex.
    """

    q: float = 0.7


@dataclasses.dataclass(frozen=True)
class SymmetricCrossEntropy(Loss):
    """Symmetric cross-entropy (Wang et al. 2019, "Symmetric Cross Entropy for Robust Learning with
    Noisy Labels", Eq. 5–6): ℓ = α·CE + β·RCE with α = 0.1, β = 1.0,

        CE = −Σ_k y_k log p_k,   RCE = −Σ_k p_k L_k,   L_k = max(log y_k, A),  A = −4,

    i.e. log 0 := A; for a one-hot y, RCE = −A (1 − p_y). Gradient, for a probability vector y:
    ∂ℓ/∂z_m = α (p_m − y_m) − β p_m (L_m − Σ_k p_k L_k). RCE makes the objective non-convex.
    (The authors' code clamps y at 1e-4 before the log, i.e. A = ln 1e-4 ≈ −9.21, not −4.)
    """

    alpha: float = 0.1
    beta: float = 1.0
    log_zero: float = -4.0

    def _log_targets(self, targets):
        return torch.log(targets).clamp_(min=self.log_zero)

    def value(self, logits, targets):
        log_p = torch.log_softmax(logits, dim=-1)
        ce = -(targets * log_p).sum(dim=-1)
        rce = -(log_p.exp() * self._log_targets(targets)).sum(dim=-1)
        return ce * self.alpha + rce * self.beta

    def gradient(self, logits, targets, out=None):
        out = torch.softmax(logits, dim=-1, out=out) if out is not None else torch.softmax(logits, dim=-1)
        log_y = self._log_targets(targets)
        centred = log_y.sub_((out * log_y).sum(dim=-1, keepdim=True))  # L − Σ_k p_k L_k
        scale = centred.mul_(-self.beta).add_(self.alpha)  # α − β (L − p·L)
        return out.mul_(scale).sub_(targets, alpha=self.alpha)


@dataclasses.dataclass(frozen=True, eq=False)
class ForwardCorrection(Loss):
    """Forward loss correction (Patrini et al. 2017, "Making Deep Neural Networks Robust to Label
    Noise: a Loss Correction Approach", Theorem 2): the cross-entropy of the noisy labels against the
    model's clean-class probabilities pushed through the noise, q = Tᵀp:

        ℓ(z, y) = −Σ_j y_j log q_j,   q_j = Σ_i p_i T_ij,   p = softmax(z),

    with T[i, j] = P(noisy j | true i) (rows: true class, columns: noisy). Gradient, for a
    probability vector y: ∂ℓ/∂z_m = p_m (1 − Σ_j T_mj y_j / q_j). With T = I it is the cross-entropy.
    Not convex in z unless T is a permutation (−log q_y = logsumexp(z) − logsumexp(z + log T[:, y])).

    ``transition`` is one matrix (K, K) for logits (..., K), or one per head (H, K, K) for logits
    (..., H, B, K) — the engine's stacks, (H, B, K) per step and (blocks, H, B, K) for the epoch's
    loss — so heads with different matrices train as one stack; :meth:`head` gives head h's loss
    alone (for a per-head solver). q is clamped below at the dtype's smallest normal number, so a
    class the matrix makes impossible gives a large finite loss instead of log 0 (the gradient is
    exact wherever no q_j with y_j > 0 is that small).
    """

    transition: torch.Tensor

    def __post_init__(self):
        t = torch.as_tensor(self.transition)
        t = t if t.is_floating_point() else t.double()
        if not (t.ndim in (2, 3) and t.shape[-1] == t.shape[-2]):
            raise ValueError(f"T must be (K, K) or (H, K, K), got {tuple(t.shape)}")
        if not bool((t >= 0).all()):
            raise ValueError("transition probabilities must be non-negative")
        if not torch.allclose(t.sum(dim=-1), torch.ones((), dtype=t.dtype), atol=1e-4):
            raise ValueError("transition rows must sum to 1")
        object.__setattr__(self, "transition", t)

    def head(self, h: int) -> ForwardCorrection:
        return ForwardCorrection(self.transition[h]) if self.transition.ndim == 3 else self

    def _noisy_probabilities(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.transition.to(p)
        if t.ndim == 3:
            if not (p.ndim >= 3 and p.shape[-3] == t.shape[0]):
                raise ValueError(
                    f"a stack of {t.shape[0]} matrices needs logits (..., {t.shape[0]}, B, K), got {tuple(p.shape)}"
                )
        return t, torch.matmul(p, t).clamp_(min=torch.finfo(p.dtype).tiny)

    def value(self, logits, targets):
        _, q = self._noisy_probabilities(torch.softmax(logits, dim=-1))
        return -(targets * torch.log(q)).sum(dim=-1)

    def gradient(self, logits, targets, out=None):
        out = torch.softmax(logits, dim=-1, out=out) if out is not None else torch.softmax(logits, dim=-1)
        t, q = self._noisy_probabilities(out)
        back = torch.matmul(targets / q, t.transpose(-1, -2))  # Σ_j T_mj y_j / q_j
        return out.mul_(back.neg_().add_(1.0))
