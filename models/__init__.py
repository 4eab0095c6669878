"""Models: the frozen ResNet feature extractor, linear heads and their losses."""
