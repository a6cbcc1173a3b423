"""The Fréchet distance between two Gaussians fitted to feature sets (FID's formula).

For feature sets with means mu1, mu2 and covariances S1, S2 (Dowson & Landau 1982; used
as the FID by Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule")::

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

The trace of the square root is computed without scipy: with A = S1^(1/2) (symmetric, from
an eigendecomposition), A S2 A is symmetric positive semi-definite and similar to S1 S2
(S1 S2 = A (A S2 A) A^-1), so Tr((S1 S2)^(1/2)) = sum of the square roots of the
eigenvalues of A S2 A. Everything runs in float64 on the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["sqrtm_psd", "gaussian_stats", "frechet_distance", "frechet_distance_features"]


def sqrtm_psd(s: Any) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigh;
    eigenvalues below zero from rounding are clipped to 0)."""
    s = np.asarray(s, dtype=np.float64)
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of ``features`` (n, d), n >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_stats: need features of shape (n >= 2, d), got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("gaussian_stats: features contain NaN or infinity")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (see the module docstring)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(
            f"frechet_distance: shapes mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
            f"sigma2 {s2.shape} do not fit (d,), (d, d)"
        )
    a = sqrtm_psd(s1)
    eig = np.linalg.eigvalsh(a @ s2 @ a)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    d2 = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    return max(d2, 0.0)


def frechet_distance_features(f1: Any, f2: Any) -> float:
    """The Fréchet distance of Gaussians fitted to two feature sets (n1, d) and (n2, d)."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
