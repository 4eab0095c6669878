"""The one registry of training methods: the teacher, the students, PLL and every label-noise baseline.

Each method is one :class:`Method` entry: its name and table label, how its targets are computed
and which loss it minimises (as ``module:attribute`` paths, resolved by :mod:`training.methods`
where torch is loaded), what it learns from, and the properties the rest of the code asks about
(convex, an oracle, depends on η, what it needs). Stages, chains, run identity, reports, figures,
the CSV and sweep files read these entries; no other module compares a method's name. Adding a
method is one :func:`register` call (an entry below, or one made by a test).

Standard library only, like :mod:`utils.stages`: the solver and the GMM tool import the stage
vocabulary without torch.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterator, Mapping

# What a method's targets come from.
NOISY_LABELS = "the noisy labels"
TRUE_LABELS = "the true labels"
PREVIOUS_MODEL = "the previous round's model"
TEACHER_MODEL = "the teacher's model"
SOURCES = (NOISY_LABELS, TRUE_LABELS, PREVIOUS_MODEL, TEACHER_MODEL)

# What a method needs besides its targets.
CLUSTERS = "the noise clusters"  # the true transition matrix of cc noise
TRANSITION = "a transition matrix"  # its loss takes one per head
TEACHER_CHECKPOINT = "the teacher's checkpoint"  # read although the targets are labels (T estimated from it)
CONFIDENT_FOLDS = "confident-learning folds"  # out-of-fold predictions decide which rows it keeps
NEEDS = (CLUSTERS, TRANSITION, TEACHER_CHECKPOINT, CONFIDENT_FOLDS)


@dataclasses.dataclass(frozen=True)
class Method:
    """One training method. ``targets`` names a function of :class:`training.methods.Given` returning the
    (rows × K) targets or a :class:`training.methods.Learned`; ``loss`` names a
    :class:`models.losses.Loss` class, built with the run settings named in ``loss_settings`` (and, when
    the method needs :data:`TRANSITION`, ``transition=`` one matrix per head)."""

    name: str  # folders, run.json, the CSV's Distill column, --baselines
    label: str  # tables and figures
    targets: str  # "module:function"
    loss: str = "models.losses:SoftCrossEntropy"  # "module:Class"
    learns_from: str = NOISY_LABELS
    loss_settings: tuple[str, ...] = ()  # run settings passed to the loss as keywords
    settings: tuple[str, ...] = ()  # run settings of its own, part of its runs' identity
    convex: bool = True  # an exact solve (--optimizer lbfgs) finds the optimum, not only a stationary point
    no_objective: str = ""  # why an exact solve cannot train it at all (empty: it can)
    oracle: bool = False  # sees what no method can (true labels, the true noise): shown, not ranked
    depends_on_eta: bool = True  # False: one run per seed, at η = 0, filling every η column
    needs: frozenset[str] = frozenset()
    starts_from_source: bool = False  # starts from the weights of the model it learns from
    candidates: bool = False  # its targets are candidate sets (their coverage of the true class is measured)
    baseline: bool = True  # offered by --baselines and sweep files' baselines key
    about: str = ""  # one line for people

    def __post_init__(self) -> None:
        if self.learns_from not in SOURCES:
            raise ValueError(f"method {self.name}: learns_from must be one of {SOURCES}, got {self.learns_from!r}")
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"method {self.name}: unknown needs {sorted(unknown)} (known: {', '.join(NEEDS)})")
        for path in (self.targets, self.loss):
            module, _, attribute = path.partition(":")
            if not (module and attribute):
                raise ValueError(f"method {self.name}: {path!r} is not a 'module:attribute' path")

    def run_eta(self, eta: float) -> float:
        """The η of the run that stands for noise rate ``eta``: itself, or 0 for a method that does not depend
        on η (trained once per seed, at η = 0, filling every column)."""
        return eta if self.depends_on_eta else 0.0

    @property
    def learns_from_a_model(self) -> bool:
        """Its targets are a model's outputs: it reads that model's run (labels, checkpoint)."""
        return self.learns_from in (PREVIOUS_MODEL, TEACHER_MODEL)

    @property
    def reads_checkpoint(self) -> bool:
        """It reads another run's checkpoint (the one it learns from, or the teacher's)."""
        return self.learns_from_a_model or TEACHER_CHECKPOINT in self.needs


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (after every method already there, in table order); returns it."""
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} is already registered")
    # Run names and the CSV's Distill column hold the name; "p" and digits mean PLL and rounds there.
    if not re.fullmatch(r"[a-z][a-z0-9-]*", method.name) or method.name == "p":
        raise ValueError(f"a method's name is a lower-case slug (a-z, 0-9, -), not 'p', got {method.name!r}")
    METHODS[method.name] = method
    return method


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (one of {', '.join(METHODS)})") from None


def baseline_names() -> list[str]:
    """The methods --baselines offers, in table order."""
    return [name for name, entry in METHODS.items() if entry.baseline]


class _Baselines(Mapping[str, str]):
    """The baselines as ``name → label``, read from the registry when asked (methods registered later too)."""

    def __getitem__(self, name: str) -> str:
        entry = METHODS.get(name)
        if entry is None or not entry.baseline:
            raise KeyError(name)
        return entry.label

    def __iter__(self) -> Iterator[str]:
        return iter(baseline_names())

    def __len__(self) -> int:
        return len(baseline_names())


BASELINES: Mapping[str, str] = _Baselines()

# -- the entries, in table order ------------------------------------------------------------------------
_ONE_HOT = "training.methods:noisy_one_hot"

register(
    Method(
        "teacher",
        "teacher",
        _ONE_HOT,
        baseline=False,
        about="cross-entropy on the noisy one-hot labels (round 0, --dist 0)",
    )
)
register(
    Method(
        "student",
        "student",
        "training.methods:previous_softmax",
        learns_from=PREVIOUS_MODEL,
        baseline=False,
        about="soft-target cross-entropy on the previous round's softmax (--dist t)",
    )
)
register(
    Method(
        "pll",
        "PLL",
        "training.methods:top_k_candidates",
        loss="models.losses:PartialLabelGCE",
        learns_from=TEACHER_MODEL,
        loss_settings=("q",),
        settings=("q", "pll_k"),
        convex=False,
        starts_from_source=True,  # the authors' PLL head loads the teacher's checkpoint
        candidates=True,
        baseline=False,
        about="generalised cross-entropy (q) averaged over the teacher's top-k classes (--partial)",
    )
)
register(
    Method(
        "ls",
        "label smoothing",
        "training.methods:smoothed_noisy",
        about="cross-entropy on the noisy labels smoothed with ε = 0.1",
    )
)
register(
    Method(
        "boot-soft",
        "bootstrap (soft)",
        _ONE_HOT,
        loss="models.losses:SoftBootstrap",
        convex=False,
        no_objective="its target holds the model's own softmax as a constant",
        about="soft bootstrapping, β = 0.95: the model's own softmax in the target",
    )
)
register(
    Method(
        "boot-hard",
        "bootstrap (hard)",
        _ONE_HOT,
        loss="models.losses:HardBootstrap",
        convex=False,
        about="hard bootstrapping, β = 0.8: the model's own prediction in the target",
    )
)
register(
    Method(
        "gce",
        "GCE",
        _ONE_HOT,
        loss="models.losses:GeneralizedCrossEntropy",
        loss_settings=("q",),
        settings=("q",),
        convex=False,
        about="generalised cross-entropy (q, as PLL) on the noisy labels",
    )
)
register(
    Method(
        "sce",
        "SCE",
        _ONE_HOT,
        loss="models.losses:SymmetricCrossEntropy",
        convex=False,
        about="symmetric cross-entropy (α 0.1, β 1, A −4) on the noisy labels",
    )
)
register(
    Method(
        "fc-est",
        "forward (est. T)",
        "training.methods:estimated_transition",
        loss="models.losses:ForwardCorrection",
        convex=False,
        needs=frozenset({TRANSITION, TEACHER_CHECKPOINT}),
        about="forward correction with T estimated from the teacher's checkpoint (anchor points)",
    )
)
register(
    Method(
        "fc-true",
        "forward (true T)",
        "training.methods:true_transition",
        loss="models.losses:ForwardCorrection",
        convex=False,
        oracle=True,
        needs=frozenset({TRANSITION, CLUSTERS}),
        about="forward correction with the transition matrix the noise was drawn from",
    )
)
register(
    Method(
        "cl",
        "confident learning",
        "training.methods:confident_rows",
        needs=frozenset({CONFIDENT_FOLDS}),
        about="cleanlab on 5-fold out-of-fold predictions, then cross-entropy on the rows it keeps",
    )
)
register(
    Method(
        "clean",
        "clean labels",
        "training.methods:true_one_hot",
        learns_from=TRUE_LABELS,
        oracle=True,
        depends_on_eta=False,
        about="cross-entropy on the true labels (the upper bound)",
    )
)
