"""Metrics: toy mode coverage, the Fréchet distance, the committed evaluation classifier."""

from __future__ import annotations

import numpy as np
import pytest

from tinygan.data import Digits, Grid25Gaussians, Ring8Gaussians, TwoMoons
from tinygan.metrics.classifier import (
    WEIGHTS,
    features_and_labels,
    image_metrics,
    load_classifier,
    prepare,
)
from tinygan.metrics.frechet import frechet_distance, frechet_distance_features, sqrtm_psd
from tinygan.metrics.toy import mode_coverage, toy_metrics


# ---------------------------------------------------------------------------- toy
@pytest.mark.parametrize("cls", [Ring8Gaussians, Grid25Gaussians, TwoMoons])
def test_real_samples_cover_every_mode_with_high_quality(cls):
    ds = cls(size=10, seed=0)
    m = toy_metrics(ds.sample(5000, 1), ds)
    assert m["modes_covered"] == m["num_modes"] == (2 if cls is TwoMoons else len(ds.modes))
    assert m["high_quality"] > 0.97  # 1 - exp(-9/2) = 0.989 for an isotropic 2-D Gaussian


def test_collapsed_and_off_target_samples():
    ring = Ring8Gaussians(size=10)
    one_mode = ring.modes[3] + ring.std * np.random.default_rng(0).standard_normal((1000, 2))
    m = mode_coverage(one_mode, ring.modes, ring.std)
    assert m["modes_covered"] == 1 and m["per_mode"][3] == m["high_quality"] * 1000
    centre = np.zeros((1000, 2))
    assert mode_coverage(centre, ring.modes, ring.std)["high_quality"] == 0.0
    # 3 sigma is the boundary of "high quality"
    near = ring.modes[:1] + [[2.9 * ring.std, 0]]
    far = ring.modes[:1] + [[3.1 * ring.std, 0]]
    assert mode_coverage(near, ring.modes, ring.std)["high_quality"] == 1.0
    assert mode_coverage(far, ring.modes, ring.std)["high_quality"] == 0.0


def test_coverage_needs_a_fifth_of_the_fair_share():
    modes, std = np.array([[0.0, 0.0], [10.0, 0.0]]), 0.1
    x = np.concatenate([np.tile(modes[0], (90, 1)), np.tile(modes[1], (10, 1))])
    m = mode_coverage(x, modes, std)  # fair share 50, so 10 >= 0.2 * 50 covers mode 1
    assert m["modes_covered"] == 2 and m["min_count"] == 10
    m = mode_coverage(x[:-1], modes, std)
    assert m["modes_covered"] == 1
    nan = np.full((5, 2), np.nan)
    assert mode_coverage(nan, modes, std)["high_quality"] == 0.0


# ---------------------------------------------------------------------------- Fréchet
def _random_cov(rng, d):
    a = rng.standard_normal((d, d + 3))
    return a @ a.T / d


def test_frechet_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")  # test oracle only; tinygan stays scipy-free
    rng = np.random.default_rng(0)
    for d in (1, 3, 16):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
        covmean = linalg.sqrtm(s1 @ s2).real
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6, abs=1e-8)
        np.testing.assert_allclose(sqrtm_psd(s1) @ sqrtm_psd(s1), s1, atol=1e-10)


def test_frechet_closed_forms():
    rng = np.random.default_rng(1)
    s = _random_cov(rng, 5)
    mu = rng.standard_normal(5)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, s, mu + 2.0, s) == pytest.approx(4.0 * 5, rel=1e-9)
    # 1-D: (mu1 - mu2)^2 + (sigma1 - sigma2)^2
    assert frechet_distance([0.0], [[4.0]], [1.0], [[9.0]]) == pytest.approx(1.0 + 1.0)
    # from samples: a shift of the features moves only the mean term
    f = rng.standard_normal((400, 4))
    assert frechet_distance_features(f, f + 1.0) == pytest.approx(4.0, rel=1e-9)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(mu, s, mu[:3], s)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_features(np.full((3, 2), np.nan), f[:, :2])


# ---------------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def test_digits():
    return Digits("test", image_size=32)


def test_committed_classifier_has_its_recorded_accuracy(classifier, test_digits):
    assert classifier.test_accuracy >= 0.97
    _, pred = features_and_labels(test_digits.images, classifier)
    assert (pred == test_digits.labels).mean() == pytest.approx(classifier.test_accuracy)


def test_frechet_distance_separates_real_from_noise(classifier, test_digits):
    train = Digits("train", image_size=32).images[:600]
    real = image_metrics(train, test_digits.images, classifier)
    assert real["classes_present"] == 10 and sum(real["class_histogram"]) == 600
    noise = np.random.default_rng(0).uniform(-1, 1, (600, 1, 32, 32)).astype(np.float32)
    fake = image_metrics(noise, test_digits.images, classifier)
    assert fake["frechet_distance"] > 50 * real["frechet_distance"]


def test_prepare_handles_rgb_and_other_sizes(classifier, test_digits):
    x32 = test_digits.images[:50]
    x64 = Digits("test", image_size=64, channels=3).images[:50]
    assert prepare(x64).shape == (50, 1, 32, 32)
    _, p32 = features_and_labels(x32, classifier)
    _, p64 = features_and_labels(x64, classifier)
    assert (p32 == p64).mean() > 0.9
    with pytest.raises(ValueError, match="expected images"):
        prepare(np.zeros((2, 2)))


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_eval_classifier.py"):
        load_classifier(str(tmp_path / "none.npz"))
    assert WEIGHTS.endswith("digits_classifier.npz")
