"""Training the linear heads: configs, stage targets, the SGD engine, the exact solver, run folders and results."""
