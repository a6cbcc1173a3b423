"""Train the evaluation classifier of ``tinygan eval`` with tinygan, on the embedded digits.

    python scripts/train_eval_classifier.py [--epochs 30] [--out PATH]

Trains :class:`tinygan.metrics.classifier.DigitsClassifier` on the train split of
``tinygan.data.Digits`` (32 x 32) with Adam and random shifts of up to 2 pixels (so slightly
off-centre generated digits are still read), measures the accuracy on the held-out test
split, and writes the weights with that accuracy and the training settings into one
pickle-free checkpoint (atomic write). Deterministic for a given --seed on the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tinygan
from tinygan import functions as F
from tinygan import optim
from tinygan.autograd import Tensor, no_grad
from tinygan.checkpoint import save_checkpoint
from tinygan.data import Digits
from tinygan.metrics.classifier import FORMAT, SIZE, WEIGHTS, DigitsClassifier


def shift(x: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Translate each image by up to ``max_shift`` pixels, filling with background (-1)."""
    n, _, h, w = x.shape
    p = max_shift
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-1.0)
    dy, dx = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
    return np.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def accuracy(model: DigitsClassifier, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with no_grad():
        pred = np.concatenate(
            [model(Tensor(x[s : s + 500])).numpy().argmax(1) for s in range(0, len(x), 500)]
        )
    model.train()
    return float((pred == y).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-shift", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=WEIGHTS)
    args = p.parse_args()

    tinygan.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, test = Digits("train", image_size=SIZE), Digits("test", image_size=SIZE)
    model = DigitsClassifier()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(train.labels))
        losses = []
        for s in range(0, len(order), args.batch_size):
            idx = order[s : s + args.batch_size]
            x = shift(np.asarray(train.images[idx]), rng, args.max_shift)
            loss = F.cross_entropy(model(Tensor(x)), Tensor(train.labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(
            f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  "
            f"train acc {accuracy(model, np.asarray(train.images), train.labels):.4f}  "
            f"({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    test_acc = accuracy(model, np.asarray(test.images), test.labels)
    train_acc = accuracy(model, np.asarray(train.images), train.labels)
    model.eval()
    save_checkpoint(
        args.out,
        {
            "format": FORMAT,
            "arch": {"width": model.width, "num_features": model.num_features},
            "state_dict": model.state_dict(),
            "test_accuracy": test_acc,
            "train_accuracy": train_acc,
            "settings": {**vars(args), "out": None, "test_items": len(test.labels)},
        },
    )
    print(
        f"held-out accuracy {test_acc:.4f} on {len(test.labels)} test digits; "
        f"train {train_acc:.4f}; written to {args.out}"
    )


if __name__ == "__main__":
    main()
