"""The paper's synthetic Gram-matrix theory of multi-round self-distillation, solved exactly.

For outputs Y_t (N x K, samples as rows), a Gram matrix Phi (N x N) and regularisation lambda, round t
of self-distillation with a linear softmax head is the fixed point

    Y_t = softmax(Phi (Y_{t-1} - Y_t) / (N lambda)),    Y_0 = the given one-hot labels.

Modules: ``config`` (the settings, their validation and the run's file names; standard library
only), ``data`` (synthetic Gram matrices and noisy labels), ``fixed_point`` (the map and its
residual), ``spectrum`` (eigendecompositions), ``newton`` (the exact solver), ``approx`` (the
closed form of the linearised map), ``adam`` (the reference-style baseline), ``stats`` (per-solve
statistics), ``experiment`` (solves and sweeps), ``storage`` (files: runs, Phi stored once,
residuals recomputed from them), ``report`` (tables in stage names) and ``plots``.
"""
