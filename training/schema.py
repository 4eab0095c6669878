"""The results CSV's fixed columns (importable without torch, for reports)."""

COLUMNS = ("Dataset", "Depth", "CType", "Corruption", "Seed", "LR", "WD", "Distill", "Train Acc.", "Test Acc.",
           "Final Acc.", "Realized Corruption", "Epochs", "Optimizer", "Last", "Selection", "Run")
