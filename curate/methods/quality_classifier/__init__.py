"""A trainable quality classifier (the DCLM / FineWeb-Edu recipe): the `quality_classifier` stage scores each
row with P(label) under a fastText model; `train.train` (`curate train-classifier`) trains one. Its cut is a
`threshold` (min) or `keep_fraction` policy on `<stage>.score`."""
from curate.methods.quality_classifier.stage import QualityClassifier

__all__ = ["QualityClassifier"]
