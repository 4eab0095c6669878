"""Finding wrong labels with a self-distilled model, shaped like ``cleanlab.filter.find_label_issues``.

cleanlab flags a sample when out-of-sample predicted probabilities (cross-validation) make its given
label unlikely. Here the model is fitted once on all the samples, with their given labels: the
teacher memorises some wrong labels, but the students (or the PLL student) average labels over
correlated features and predict the class the sample's neighbours carry. A sample is flagged when
that final model disagrees with its given label; its prediction is the suggested correction.
"""

from __future__ import annotations

import numpy as np

from selfdistill._estimators import LabelNoiseClassifier, PLLClassifier, SelfDistillationClassifier

# cleanlab.rank.get_label_quality_scores' methods: the lowest score is the most likely issue.
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
# The finders of their own: an estimator each (any other ``method`` is a baseline of the registry).
ESTIMATORS = {"pll": PLLClassifier, "students": SelfDistillationClassifier}
METHODS = tuple(ESTIMATORS)


def find_label_issues(X, labels, *, method="pll", return_indices_ranked_by=None, **params):
    """The samples whose given label the fitted model disagrees with.

    X : (n_samples, n_features) features; labels : (n_samples,) the given labels, any hashable type.
    method : ``"pll"`` (:class:`PLLClassifier`, the teacher then the PLL student), ``"students"``
        (:class:`SelfDistillationClassifier`, the teacher then ``rounds`` students) or a baseline's
        short name (:class:`LabelNoiseClassifier`: ``gce``, ``sce``, ``ls`` …).
    return_indices_ranked_by : None, or one of ``self_confidence``, ``normalized_margin``,
        ``confidence_weighted_entropy`` (cleanlab's label-quality scores of the final model's
        in-sample probabilities).
    params : the estimator's parameters (``lr``, ``wd``, ``epochs``, ``random_state`` …).

    Returns a boolean mask (n_samples,), True for a flagged sample; with ``return_indices_ranked_by``,
    the indices of the flagged samples instead, the most likely issue first (as cleanlab returns them).
    """
    if return_indices_ranked_by is not None and return_indices_ranked_by not in RANKINGS:
        raise ValueError(
            f"return_indices_ranked_by must be None or one of {', '.join(RANKINGS)}, got {return_indices_ranked_by!r}"
        )
    own = ESTIMATORS.get(method)
    estimator = own(**params) if own is not None else LabelNoiseClassifier(method=method, **params)
    estimator.fit(X, labels)
    issues = estimator.label_issues_
    if return_indices_ranked_by is None:
        return issues
    from cleanlab.rank import get_label_quality_scores

    given = np.searchsorted(estimator.classes_, estimator.given_labels_)
    scores = get_label_quality_scores(given, estimator.predict_proba(X), method=return_indices_ranked_by)
    flagged = np.flatnonzero(issues)
    return flagged[np.argsort(scores[flagged], kind="stable")]
