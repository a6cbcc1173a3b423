"""tinygan.metrics: sample quality of trained generators.

- :func:`mode_coverage`, :func:`moons_coverage`, :func:`toy_metrics` -- modes covered and the
  fraction of high-quality samples on toy 2-D data (thresholds in :mod:`tinygan.metrics.toy`)
- :func:`frechet_distance`, :func:`frechet_distance_features` -- ||mu1 - mu2||^2 +
  Tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians, without scipy
- :class:`DigitsClassifier`, :func:`load_classifier`, :func:`image_metrics` -- the evaluation
  classifier trained with tinygan on the embedded digits; the Fréchet distance of its
  penultimate features and the class histogram of generated images
"""

from tinygan.metrics.classifier import (
    DigitsClassifier,
    features_and_labels,
    image_metrics,
    load_classifier,
)
from tinygan.metrics.frechet import frechet_distance, frechet_distance_features, sqrtm_psd
from tinygan.metrics.toy import mode_coverage, moons_coverage, toy_metrics

__all__ = [
    "DigitsClassifier",
    "features_and_labels",
    "frechet_distance",
    "frechet_distance_features",
    "image_metrics",
    "load_classifier",
    "mode_coverage",
    "moons_coverage",
    "sqrtm_psd",
    "toy_metrics",
]
