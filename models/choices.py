"""Backbone choices, importable without torchvision (the CLI's flags need them at start-up)."""

DEPTHS = (18, 34, 50)
FEATURE_DIMS = {18: 512, 34: 512, 50: 2048}
WEIGHT_CHOICES = ("default", "none")
