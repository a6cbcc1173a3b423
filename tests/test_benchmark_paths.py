"""benchmarks/paths.py's switches: each names a real module attribute, changes it inside the
context and restores it after (a renamed switch would otherwise time the same path twice)."""

from __future__ import annotations

from benchmarks.paths import CASES, _switched_off
from tinygan.backend import batched_matmul
from tinygan.functions import (
    activation_kernels,
    conv,
    conv_narrow,
    im2col_kernels,
    norm_kernels,
    winograd,
)
from tinygan.nn import container
from tinygan.optim import adam_kernels

SWITCHES = {
    "winograd": (winograd, "ENABLED"),
    "narrow": (conv_narrow, "ENABLED"),
    "dense": (conv, "_covers"),
    "fused norm": (norm_kernels, "usable"),
    "fused activation": (activation_kernels, "usable"),
    "product layout": (conv, "_TRANSPOSED_MIN_K"),
    "per sample": (conv, "_PER_SAMPLE_MAX_ROWS"),
    "compiled im2col": (im2col_kernels, "usable"),
    "fused adam": (adam_kernels, "usable"),
    "one core per product": (batched_matmul, "ENABLED"),
    "norm + activation": (container, "FUSE_NORM_ACTIVATION"),
    "per-core chains": (winograd, "CHAINS"),
}


def test_every_switch_turns_its_path_off_and_back():
    assert {path for path, _ in CASES.values()} == set(SWITCHES)
    for path, (module, name) in SWITCHES.items():
        before = getattr(module, name)
        with _switched_off(path):
            assert getattr(module, name) is not before, path
        assert getattr(module, name) is before, path
