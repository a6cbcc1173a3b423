"""tinygan.metrics: sample quality of trained generators.

- :func:`mode_coverage`, :func:`toy_metrics` -- modes covered and high-quality samples on toy
  2-D mixtures
- :func:`frechet_distance` -- ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians
- :class:`DigitsClassifier`, :func:`load_classifier` -- the evaluation classifier trained with
  tinygan on the embedded digits; its penultimate features give the Frechet distance
"""

from tinygan.metrics.toy import mode_coverage, moons_coverage, toy_metrics

__all__ = ["mode_coverage", "moons_coverage", "toy_metrics"]
