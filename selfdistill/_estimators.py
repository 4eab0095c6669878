"""scikit-learn estimators over the project's training engine: self-distilled students, the PLL student, baselines.

Each estimator is a linear softmax head without bias on the given features (frozen embeddings,
standardised pixels …), trained as ``train_linear.py`` trains it, then the heads that learn from it.
The work is done by :func:`selfdistill._engine.fit_stages`; this module validates inputs, encodes
labels and turns the trained heads into fitted attributes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from selfdistill import _engine

DEVICES = ("cpu", "cuda", "auto")


@dataclasses.dataclass(frozen=True)
class FittedStage:
    """One trained model of a fitted estimator.

    ``name``: ``teacher``, ``student1`` … ``pll`` or a baseline's short name; ``label``: how tables
    call it (``student 1``, ``PLL``); ``coef``: its weights (n_classes, n_features) float32, the
    columns of ``classes_`` in order (no intercept); ``history``: one dict per epoch with ``epoch``,
    ``lr``, ``train_loss`` (mean batch loss of the epoch against its targets) and ``train_acc``
    (% of the epoch's batch predictions that match the given labels).
    """

    name: str
    label: str
    coef: np.ndarray
    history: list


def _store_parameters(estimator, parameters: dict) -> None:
    """scikit-learn's rule for ``__init__``: every parameter stored unchanged under its own name, nothing else."""
    for name, value in parameters.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


class _Heads(ClassifierMixin, BaseEstimator):
    """What the estimators share: input checks, fitting a list of stages, predicting with one of them."""

    def _stages(self) -> list:
        raise NotImplementedError

    def _settings(self) -> _engine.Settings:
        return _engine.Settings(
            lr=self.lr,
            wd=self.wd,
            epochs=self.epochs,
            train_batch=self.batch_size,
            gamma=self.gamma,
            momentum=self.momentum,
            optimizer=self.optimizer,
            seeding=self.seeding,
            seed=self.random_state,
            **self._method_settings(),
        )

    def _method_settings(self) -> dict:
        return {}

    def _check_parameters(self) -> None:
        _engine.check(self._settings(), self._stages())
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if isinstance(self.n_threads, bool) or not isinstance(self.n_threads, int) or self.n_threads < 1:
            raise ValueError(f"n_threads must be an integer of at least 1, got {self.n_threads!r}")

    def fit(self, X, y):
        """Train the teacher on (X, y), then each model that learns from the one before it.

        X: array-like (n_samples, n_features) of finite reals (computed in float32); y: (n_samples,)
        labels of any hashable, sortable type, at least two classes. Returns self.
        """
        self._check_parameters()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got 1 class")
        features = np.array(X, dtype=np.float32)
        if not np.isfinite(features).all():
            raise ValueError("X holds values too large for float32; rescale the features")
        stages = self._stages()
        trained = _engine.fit_stages(
            features, encoded.astype(np.int64), classes.size, stages, self._settings(), self.device, self.n_threads
        )
        self.classes_ = classes
        self.stages_ = [FittedStage(t.slug, t.label, t.weights, t.history) for t in trained]
        self.given_labels_ = np.asarray(y).copy()
        predicted = self._logits(features, None).argmax(axis=1)
        self.label_issues_ = predicted != encoded
        self.corrected_labels_ = classes[predicted]
        return self

    def _stage(self, stage) -> FittedStage:
        if stage is None:
            return self.stages_[-1]
        try:
            wanted = _engine.parse_stage(stage).slug
        except ValueError:
            wanted = None
        for fitted in self.stages_:
            if fitted.name == wanted:
                return fitted
        names = ", ".join(fitted.name for fitted in self.stages_)
        raise ValueError(f"stage must name one of this estimator's models ({names}), got {stage!r}")

    def _logits(self, X, stage) -> np.ndarray:
        weights = self._stage(stage).coef.astype(np.float64)
        return np.asarray(X, dtype=np.float64) @ weights.T

    def predict_proba(self, X, stage=None):
        """Class probabilities (n_samples, n_classes), columns in ``classes_`` order, of the last model,
        or of ``stage`` (``"teacher"``, ``"student 2"``, ``"pll"``, or a round number: 0 the teacher)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        logits = self._logits(X, stage)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, X, stage=None):
        """Predicted labels (n_samples,) of the last model, or of ``stage`` (as in :meth:`predict_proba`)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.classes_[self._logits(X, stage).argmax(axis=1)]


_COMMON_DOC = """
    The rest as for ``train_linear.py`` (and its defaults for a features file):
    lr : float > 0, the SGD learning rate (``--lr``).
    wd : float ≥ 0, the weight decay λ (``--wd``): the objective is mean loss + (λ/2)‖W‖².
    epochs : int ≥ 1, epochs of every model (``--epochs``).
    batch_size : int ≥ 1, rows per SGD batch (``--train-batch``); the last batch of an epoch is short.
    momentum : float in [0, 1), SGD momentum (``--momentum``).
    gamma : float in (0, 1], lr × gamma after every epoch (``--gamma``).
    optimizer : "sgd", or "lbfgs" (an exact full-batch solve in float64; needs wd > 0).
    seeding : "reference" (every model starts from the teacher's initial weights and the students share
        one batch order, as the authors' code draws them) or "independent" (separate streams per model).
    random_state : int in [0, 2**32), the seed of the initial weights and batch orders (``--seed``). Only
        integers: the same value gives the same numbers on a CPU.
    device : "cpu", "cuda" or "auto".
    n_threads : int ≥ 1, CPU threads while fitting (restored afterwards).

    There is no ``sample_weight``: every model minimises the unweighted mean loss of its batches, and
    weighting it would change the method.

    Attributes
    ----------
    classes_ : (n_classes,) the sorted distinct labels.
    n_features_in_, feature_names_in_ : as in scikit-learn (names only when X has string column names).
    stages_ : list of :class:`FittedStage`, in training order, the teacher first.
    given_labels_ : (n_samples,) the labels ``fit`` was given.
    label_issues_ : (n_samples,) bool, True where the last model's prediction on the training input
        differs from its given label.
    corrected_labels_ : (n_samples,) the last model's predictions on the training inputs.
"""


class SelfDistillationClassifier(_Heads):
    """The teacher on the given labels, then ``rounds`` students, each trained on the previous model's softmax.

    Student t minimises soft-target cross-entropy to softmax(W_{t−1} x) on the training inputs,
    from the teacher's initial weights. Self-distillation averages the labels of samples with
    correlated features, so the students' predictions drift away from isolated wrong labels; the
    effect grows with rounds. ``predict`` uses the last student unless ``stage`` says otherwise.

    Parameters
    ----------
    rounds : int ≥ 0, the number of students (0: the teacher only).
    """

    __doc__ += _COMMON_DOC

    def __init__(
        self,
        rounds=4,
        lr=_engine.DEFAULT_LR,
        wd=_engine.DEFAULT_WD,
        epochs=_engine.default("epochs"),
        batch_size=_engine.default("train_batch"),
        momentum=_engine.default("momentum"),
        gamma=_engine.default("gamma"),
        optimizer=_engine.default("optimizer"),
        seeding=_engine.default("seeding"),
        random_state=0,
        device="cpu",
        n_threads=1,
    ):
        _store_parameters(self, locals())

    def _check_parameters(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 0:
            raise ValueError(f"rounds must be an integer of at least 0, got {self.rounds!r}")
        super()._check_parameters()

    def _stages(self) -> list:
        return _engine.chain(self.rounds)


class PLLClassifier(_Heads):
    """The teacher on the given labels, then the PLL student on the teacher's top-``k`` classes.

    The PLL student starts from the teacher's weights; its target for each training input is the
    candidate set of the teacher's ``k`` highest-scoring classes, each weighted 1/k, under
    generalised cross-entropy (1 − p_j^q)/q. A wrong label whose true class is among the
    candidates gets corrected in this one round (the paper finds it matches several students at
    high noise). ``predict`` uses the PLL student unless ``stage="teacher"``.

    Parameters
    ----------
    k : int in 1..n_classes, the size of the candidate set (``--pll-k``).
    q : float in (0, 1], the generalised cross-entropy exponent (``--q``).
    """

    __doc__ += _COMMON_DOC

    def __init__(
        self,
        k=_engine.default("pll_k"),
        q=_engine.default("q"),
        lr=_engine.DEFAULT_LR,
        wd=_engine.DEFAULT_WD,
        epochs=_engine.default("epochs"),
        batch_size=_engine.default("train_batch"),
        momentum=_engine.default("momentum"),
        gamma=_engine.default("gamma"),
        optimizer=_engine.default("optimizer"),
        seeding=_engine.default("seeding"),
        random_state=0,
        device="cpu",
        n_threads=1,
    ):
        _store_parameters(self, locals())

    def _method_settings(self) -> dict:
        return {"pll_k": self.k, "q": self.q}

    def _stages(self) -> list:
        return _engine.teacher_and("pll")


class LabelNoiseClassifier(_Heads):
    """One of the project's label-noise baselines, trained as ``train_linear.py --baselines`` trains it.

    Parameters
    ----------
    method : one of ``ls`` (label smoothing), ``boot-soft``, ``boot-hard`` (bootstrapping), ``gce``
        (generalised cross-entropy), ``sce`` (symmetric cross-entropy), ``fc-est`` (forward correction
        with T estimated from the teacher: the teacher is trained first) or ``cl`` (confident learning,
        then cross-entropy on the kept rows). ``stages_`` holds the teacher too where the method needs it.
    q : float in (0, 1], the exponent of ``gce``.
    """

    __doc__ += _COMMON_DOC

    def __init__(
        self,
        method="gce",
        q=_engine.default("q"),
        lr=_engine.DEFAULT_LR,
        wd=_engine.DEFAULT_WD,
        epochs=_engine.default("epochs"),
        batch_size=_engine.default("train_batch"),
        momentum=_engine.default("momentum"),
        gamma=_engine.default("gamma"),
        optimizer=_engine.default("optimizer"),
        seeding=_engine.default("seeding"),
        random_state=0,
        device="cpu",
        n_threads=1,
    ):
        _store_parameters(self, locals())

    def _check_parameters(self) -> None:
        if self.method not in _engine.ESTIMATOR_BASELINES:
            raise ValueError(f"method must be one of {', '.join(_engine.ESTIMATOR_BASELINES)}, got {self.method!r}")
        super()._check_parameters()

    def _method_settings(self) -> dict:
        return {"q": self.q}

    def _stages(self) -> list:
        return _engine.baseline(self.method)
