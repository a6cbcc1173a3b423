"""The evaluation classifier: a small CNN trained with tinygan on the embedded digits.

Its penultimate layer (64 ReLU features) plays the role Inception-v3's pool features play in
the FID (Heusel et al. 2017): the Fréchet distance between features of held-out real digits
and of generated ones measures sample quality and diversity together, and its predicted
labels give the class histogram of generated samples (every class should appear).

Architecture (x: (N, 1, 32, 32) in [-1, 1])::

    [Conv 3x3 (w) ReLU MaxPool 2] [Conv 3x3 (2w) ReLU MaxPool 2] [Conv 3x3 (4w) ReLU MaxPool 2]
    Flatten -> Linear(16 * 4w, 64) -> ReLU  = features (N, 64) -> Linear(64, 10) = logits

The weights, ``digits_classifier.npz`` beside this file, are produced by
``scripts/train_eval_classifier.py``, which also records the held-out accuracy in the file
(``load_classifier().test_accuracy``). Images of other sizes are resized to 32 x 32
(bilinear) and RGB images are averaged to grey before classification.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tinygan import nn
from tinygan.autograd import Tensor, no_grad
from tinygan.backend import to_device
from tinygan.checkpoint import load_checkpoint
from tinygan.metrics.frechet import frechet_distance_features

__all__ = ["DigitsClassifier", "WEIGHTS", "load_classifier", "prepare", "image_metrics"]

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits_classifier.npz")
FORMAT = "tinygan-digits-classifier"
SIZE = 32


class DigitsClassifier(nn.Module):
    """x (N, 1, 32, 32) -> logits (N, 10); ``features(x)`` -> (N, num_features)."""

    def __init__(self, width: int = 16, num_features: int = 64) -> None:
        super().__init__()
        self.width, self.num_features = width, num_features
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 4 * w, num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(num_features, 10)
        self.test_accuracy: float | None = None

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def prepare(images: Any) -> np.ndarray:
    """Any images (N, C, H, W) in [-1, 1] -> float32 (N, 1, 32, 32): grey, resized."""
    x = np.asarray(to_device(images.data if isinstance(images, Tensor) else images, "cpu"))
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"classifier: expected images (N, 1 or 3, H, W), got shape {x.shape}")
    x = x.astype(np.float32).mean(1, keepdims=True)
    if x.shape[2:] != (SIZE, SIZE):
        from PIL import Image

        x = np.stack(
            [np.asarray(Image.fromarray(im[0]).resize((SIZE, SIZE), Image.BILINEAR)) for im in x]
        )[:, None]
    return np.ascontiguousarray(np.nan_to_num(x, nan=0.0), dtype=np.float32)


def load_classifier(path: str = WEIGHTS, device: str = "cpu") -> DigitsClassifier:
    """The trained classifier (eval mode) from ``path`` (default: the committed weights)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: evaluation classifier weights not found; "
            "run `python scripts/train_eval_classifier.py` to produce them"
        )
    state = load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tinygan digits classifier file")
    model = DigitsClassifier(**state["arch"])
    model.load_state_dict(state["state_dict"])
    model.test_accuracy = float(state["test_accuracy"])
    return model.to(device).eval()


def _run(model: DigitsClassifier, images: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    x = prepare(images)
    feats, preds = [], []
    device = next(model.parameters()).device
    with no_grad():
        for s in range(0, len(x), batch_size):
            f = model.features(Tensor(to_device(x[s : s + batch_size], device)))
            feats.append(f.numpy())
            preds.append(model.head(f).numpy().argmax(1))
    return np.concatenate(feats), np.concatenate(preds)


def features_and_labels(
    images: Any, model: DigitsClassifier | None = None, batch_size: int = 250
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, 64) and predicted classes (N,) of ``images``."""
    return _run(model or load_classifier(), images, batch_size)


def image_metrics(
    generated: Any, real: Any, model: DigitsClassifier | None = None
) -> dict[str, Any]:
    """Fréchet distance (classifier features) between ``real`` and ``generated`` images, the
    class histogram of the generated ones, and how many classes appear."""
    model = model or load_classifier()
    f_gen, y_gen = features_and_labels(generated, model)
    f_real, _ = features_and_labels(real, model)
    hist = np.bincount(y_gen, minlength=10)
    return {
        "frechet_distance": frechet_distance_features(f_real, f_gen),
        "class_histogram": hist.tolist(),
        "classes_present": int((hist > 0).sum()),
        "num_generated": int(len(f_gen)),
        "num_real": int(len(f_real)),
    }
