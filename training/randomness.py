"""Where a head's initial weights and its batch orders come from: the authors' draws, or independent streams.

``reference`` (the default) replays, with an explicit ``torch.Generator``, exactly what the authors'
``train_linear.py`` draws from torch's global generator after ``torch.manual_seed(seed)`` — one
process per stage, as their ``train.sh`` runs it (checked against torch 2.14.1):

1. K·D float32 uniforms for the head, ``nn.Linear(D, K, bias=False)`` (kaiming-uniform with a = √5,
   i.e. U(−1/√D, 1/√D)): :func:`models.heads.init_head` draws them identically;
2. students and the PLL student only: another K·D uniforms for the frozen teacher module, whose
   values ``load_state_dict`` then overwrites (the PLL head starts from the teacher's weights);
3. every epoch, three int64 ``random_()`` draws: the training DataLoader iterator's base seed, the
   RandomSampler's seed — the epoch's order is ``randperm(N)`` from a fresh generator seeded with
   it — and the test DataLoader iterator's base seed (drawn although the test loader does not
   shuffle). The sampler permutes all N training rows; the last batch is short.

So every stage starts from the teacher's initial weights, and the students and the PLL student
share one batch order (the teacher's differs: it drew one block of uniforms fewer). With ``--select
val`` the sampler permutes the rows left after the validation split; ``--optimizer lbfgs`` uses
the initial weights only.

``independent`` gives every (seed, ctype, η, stage) its own initialisation and batch-order stream,
derived with ``SeedSequence`` tags: for variance studies, where stages should not share draws.

Nothing here touches torch's global generator.
"""

from __future__ import annotations

import dataclasses

import torch

from models.heads import init_head
from training.settings import SEEDING_MODES
from utils.seeding import derived_seed


def _draw_int64(generator: torch.Generator) -> int:
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator))


class _Order:
    generator: torch.Generator

    def fresh(self):
        """A copy at the same point of the stream, so that training a problem twice draws the same orders."""
        return type(self)(torch.Generator().set_state(self.generator.get_state()))


@dataclasses.dataclass
class ReferenceOrder(_Order):
    """The authors' per-epoch draws: base seed, sampler seed (→ the epoch's randperm), test base seed."""

    generator: torch.Generator

    def permutation(self, n: int) -> torch.Tensor:
        _draw_int64(self.generator)  # the training DataLoader iterator's base seed
        sampler_seed = _draw_int64(self.generator)  # RandomSampler: seeds a fresh generator for randperm
        _draw_int64(self.generator)  # the test DataLoader iterator's base seed
        return torch.randperm(n, generator=torch.Generator().manual_seed(sampler_seed))


@dataclasses.dataclass
class IndependentOrder(_Order):
    """One ``randperm`` per epoch from the head's own generator."""

    generator: torch.Generator

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)


BatchOrder = ReferenceOrder | IndependentOrder


def head_draws(
    mode: str, seed: int, tags: tuple[object, ...], learns_from_a_model: bool, num_classes: int, dim: int
) -> tuple[torch.Tensor, BatchOrder]:
    """(initial weights (K, D), batch order) of one head.

    ``tags`` name the run for independent streams (ctype, η, the stage's ``Distill`` label, as runs
    written before reference seeding drew them); ``learns_from_a_model`` is
    True for students and the PLL student, whose authors' process builds a frozen teacher module.
    """
    if mode == "reference":
        generator = torch.Generator().manual_seed(seed)
        init = init_head(num_classes, dim, generator)
        if learns_from_a_model:
            init_head(num_classes, dim, generator)  # the frozen teacher module, overwritten by its checkpoint
        return init, ReferenceOrder(generator)
    if mode == "independent":
        init = init_head(num_classes, dim, torch.Generator().manual_seed(derived_seed(seed, "init", *tags)))
        return init, IndependentOrder(torch.Generator().manual_seed(derived_seed(seed, "batches", *tags)))
    raise ValueError(f"seeding must be one of {', '.join(SEEDING_MODES)}, got {mode!r}")
