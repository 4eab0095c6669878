"""Multi-stage self-distillation of a linear classifier on a noisy two-cluster Gaussian mixture.

Replica-symmetric theory (:mod:`gmm.theory`), finite-N simulations (:mod:`gmm.simulate`),
per-stage hyperparameter tuning (:mod:`gmm.tune`), the same comparison on real features
(:mod:`gmm.real`) and figures (:mod:`gmm.plots`). The command line is ``gmm_distill.py``.
"""
