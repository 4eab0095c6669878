"""Multi-stage self-distillation of a linear classifier on a noisy two-cluster Gaussian mixture.

Settings and their validation (:mod:`gmm.config`, no numerics: the command line checks them
before numpy loads), replica-symmetric theory (:mod:`gmm.theory`), finite-N simulations
(:mod:`gmm.simulate`), per-model hyperparameter tuning (:mod:`gmm.tune`), the same comparison on
real features (:mod:`gmm.real`), what each subcommand computes (:mod:`gmm.runs`), tables and the
JSON document (:mod:`gmm.report`) and figures (:mod:`gmm.plots`). The command line is
``gmm_distill.py``.
"""
