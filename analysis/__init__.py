"""Reports and figures from results, features and checkpoints."""
