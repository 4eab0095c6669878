"""The names of the label-noise models, declared once (their matrices are in :mod:`data.noise`).

Standard library only: flag parsers and the settings table read it before numpy loads.
"""

NOISE_TYPES = ("sym", "asym", "cc")
