"""Self-distillation and the PLL student as scikit-learn estimators, and a label-issue finder beside cleanlab.

- :class:`SelfDistillationClassifier`: the teacher, then ``rounds`` self-distilled students;
- :class:`PLLClassifier`: the teacher, then the partial-label (top-k) student;
- :class:`LabelNoiseClassifier`: one of the label-noise baselines (``gce``, ``sce``, ``ls`` …);
- :func:`find_label_issues`: the training samples whose given label the fitted model disagrees with,
  shaped like ``cleanlab.filter.find_label_issues``.

Each model is a linear softmax head (no intercept) trained by the project's engine, the same code
path as ``train_linear.py``'s runs. Importing this package loads scikit-learn, not torch: torch
loads on the first ``fit``.
"""

from selfdistill._estimators import FittedStage, LabelNoiseClassifier, PLLClassifier, SelfDistillationClassifier
from selfdistill._label_issues import RANKINGS, find_label_issues

__all__ = [
    "RANKINGS",
    "FittedStage",
    "LabelNoiseClassifier",
    "PLLClassifier",
    "SelfDistillationClassifier",
    "find_label_issues",
]
