"""The one stage vocabulary: every model of a chain is a :class:`Stage`, named the same way everywhere.

For people the stages are ``teacher``, ``student t`` (t ≥ 1) and ``PLL``; the comparison methods
of a chain (``--baselines``) are stages too, named by their short names. What each stage's model
learns and how is its method's entry in :mod:`utils.methods` (``Stage.method``). Every other
numbering is a translation of a ``Stage``, defined only here:

========================  =============  ===============  ==========  =======================
what                      teacher        student t        PLL         where it is used
========================  =============  ===============  ==========  =======================
people, tables            teacher        student t        PLL         every table and figure
folders, JSON, CLI        teacher        student<t>       pll         run folders, run.json
CSV ``Distill``, --dist   0              t                p           the authors' code too
paper, Appendix G.3       1 (Teacher)    t + 1            PLL         the G.3 table export
solver ``outputs[r]``     r = 1          r = t + 1        —           numerical_solving.py
GMM stage                 1 (0-SD)       t + 1 (t-SD)     —           gmm_distill.py
========================  =============  ===============  ==========  =======================

Standard library only: the solver and the GMM tool import it without torch or the training code.
"""

from __future__ import annotations

import dataclasses
import re

from utils.methods import BASELINES, METHODS, PREVIOUS_MODEL, TEACHER_MODEL, Method, baseline_names

__all__ = ["BASELINES", "PLL_NAME", "STUDENT", "TEACHER", "Stage", "stage_order"]

TEACHER, STUDENT, PLL_NAME = "teacher", "student", "pll"  # the stages the numbering table above names


@dataclasses.dataclass(frozen=True)
class Stage:
    """One model of a chain: the teacher, student ``round`` (≥ 1), the PLL student or a baseline."""

    name: str
    round: int = 0

    def __post_init__(self) -> None:
        if self.name == STUDENT:
            if self.round < 1:
                raise ValueError(f"a student's round is at least 1, got {self.round}")
        elif self.round != 0:
            raise ValueError(f"only students have a round, got {self.name} round {self.round}")
        elif self.name not in METHODS:
            raise ValueError(f"unknown stage {self.name!r}")

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def teacher(cls) -> "Stage":
        return cls(TEACHER)

    @classmethod
    def student(cls, t: int) -> "Stage":
        return cls(STUDENT, t)

    @classmethod
    def pll(cls) -> "Stage":
        return cls(PLL_NAME)

    @classmethod
    def from_round(cls, t: int) -> "Stage":
        """The authors' ``--dist t``: 0 the teacher, t ≥ 1 student t."""
        return cls.teacher() if t == 0 else cls.student(t)

    @classmethod
    def from_solver_round(cls, r: int) -> "Stage":
        """The solver's ``outputs[r]``, r ≥ 1 (``outputs[0]`` holds the given labels, not a model)."""
        if r < 1:
            raise ValueError(f"solver round {r} is the given labels, not a model")
        return cls.from_round(r - 1)

    @classmethod
    def from_gmm_stage(cls, t: int) -> "Stage":
        """The GMM tool's stage t ≥ 1: stage 1 is the teacher (0-SD), stage t student t − 1."""
        if t < 1:
            raise ValueError(f"GMM stages count from 1, got {t}")
        return cls.from_round(t - 1)

    @classmethod
    def parse(cls, text: object) -> "Stage":
        """Any spelling used in this project's files: ``teacher``, ``student3``, ``student 3``, ``pll``,
        ``PLL``, the CSV's ``0``/``3``/``p``, a baseline's short name; ``ValueError`` otherwise."""
        if isinstance(text, int) and not isinstance(text, bool):
            return cls.from_round(text)
        value = str(text).strip()
        lowered = value.lower()
        if lowered in (PLL_NAME, "p"):
            return cls.pll()
        if lowered == TEACHER or lowered == "0":
            return cls.teacher()
        match = re.fullmatch(r"(student ?)?(\d+)", lowered)
        if match and not (match.group(1) and int(match.group(2)) == 0):
            return cls.from_round(int(match.group(2)))
        if lowered in BASELINES:
            return cls(lowered)
        raise ValueError(f"not a stage: {value!r} (teacher, student<t>, pll or one of {', '.join(baseline_names())})")

    # -- properties -----------------------------------------------------------------------------
    @property
    def is_teacher(self) -> bool:
        return self.name == TEACHER

    @property
    def is_student(self) -> bool:
        return self.name == STUDENT

    @property
    def is_pll(self) -> bool:
        return self.name == PLL_NAME

    @property
    def method(self) -> Method:
        """The registry entry of what this stage trains: its targets, loss and properties."""
        return METHODS[self.name]

    @property
    def is_baseline(self) -> bool:
        return self.method.baseline

    @property
    def slug(self) -> str:
        """Folders, JSON and CLI values: ``teacher``, ``student3``, ``pll``, ``ls``."""
        return f"{STUDENT}{self.round}" if self.is_student else self.name

    @property
    def label(self) -> str:
        """Tables and figures: ``teacher``, ``student 3``, ``PLL``, ``label smoothing``."""
        if self.is_student:
            return f"{self.method.label} {self.round}"
        return self.method.label

    @property
    def distill(self) -> str:
        """The results CSV's ``Distill`` column (the authors' ``--dist``): ``0``, ``3``, ``p``, ``ls``."""
        if self.is_pll:
            return "p"
        return str(self.round) if self.is_student or self.is_teacher else self.name

    @property
    def paper_row(self) -> str:
        """The paper's Appendix G.3 row: ``1 (Teacher)``, ``t + 1`` for student t, ``PLL``."""
        if self.is_teacher:
            return "1 (Teacher)"
        return str(self.round + 1) if self.is_student else self.label

    @property
    def solver_round(self) -> int:
        """The solver's ``outputs`` index of this stage's model."""
        if not (self.is_teacher or self.is_student):
            raise ValueError(f"the solver has no {self.label}")
        return self.round + 1

    @property
    def dist(self) -> int | None:
        """The authors' ``--dist`` value (None for PLL and baselines, which have none)."""
        return self.round if self.is_teacher or self.is_student else None

    @property
    def sort_key(self) -> tuple[int, int]:
        """Teacher, students by round, then PLL and the baselines in the registry's (table) order."""
        if self.is_teacher or self.is_student:
            return (0, self.round)
        return (1, list(METHODS).index(self.name))

    @property
    def learns_from(self) -> "Stage | None":
        """The stage whose checkpoint this one's targets come from (None for stages trained on labels)."""
        source = self.method.learns_from
        if source == PREVIOUS_MODEL:
            return Stage.from_round(self.round - 1)
        return Stage.teacher() if source == TEACHER_MODEL else None

    @property
    def checkpoint_source(self) -> "Stage | None":
        """The stage whose checkpoint this one reads: the one it learns from, or the teacher for a method that
        needs the teacher's checkpoint although it trains on labels (forward correction with estimated T)."""
        if self.learns_from is not None:
            return self.learns_from
        return Stage.teacher() if self.method.reads_checkpoint else None

    def __str__(self) -> str:
        return self.slug


def stage_order(stages) -> list[Stage]:
    return sorted(set(stages), key=lambda stage: stage.sort_key)
