"""Finite-difference checks of first and second derivatives, shared by the op tests.

``check_grad(fn, inputs)``: for a random projection w, compares the analytic gradient of
L = Σ w ⊙ fn(inputs) with respect to every float input against central differences
(L(x + εe) − L(x − εe)) / 2ε, in float64.

``check_second_order(fn, inputs)``: the same check applied to the function
H = Σ v ⊙ ∂L/∂inputs computed with ``create_graph=True`` — i.e. grad of grad.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import tinygan as tg
from tinygan import Tensor


def _as_tensors(arrays: Sequence[np.ndarray]) -> list[Tensor]:
    return [tg.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]


def _scalar(fn: Callable, tensors: list[Tensor], weights: list[np.ndarray]) -> Tensor:
    out = fn(*tensors)
    outs = out if isinstance(out, (tuple, list)) else [out]
    total = None
    for o, w in zip(outs, weights):
        term = (o * tg.tensor(w)).sum()
        total = term if total is None else total + term
    return total


def _output_weights(fn: Callable, arrays: list[np.ndarray], rng: np.random.Generator) -> list:
    out = fn(*_as_tensors(arrays))
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [rng.standard_normal(o.shape) for o in outs]


def numeric_grad(
    f: Callable[[list[np.ndarray]], float], arrays: list[np.ndarray], i: int, eps: float
) -> np.ndarray:
    x = arrays[i]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(arrays)
        x[idx] = old - eps
        minus = f(arrays)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def _float64_copies(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Float inputs as float64 copies (finite differences need the precision); others as is."""
    return [
        np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
        for a in arrays
    ]


def _compare(
    analytic: Sequence, f: Callable, arrays: list, float_idx: list[int], eps: float,
    rtol: float, atol: float, what: str,
) -> None:  # fmt: skip
    """Each analytic gradient (None: zero) against central differences of ``f``."""
    for i, g in zip(float_idx, analytic):
        expected = numeric_grad(f, arrays, i, eps)
        got = np.zeros_like(arrays[i]) if g is None else g.numpy()
        np.testing.assert_allclose(
            got, expected, rtol=rtol, atol=atol, err_msg=f"{what}, input {i}"
        )


def check_grad(
    fn: Callable,
    arrays: Sequence[np.ndarray],
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Assert that tinygan's gradient of fn matches central finite differences."""
    arrays = _float64_copies(arrays)
    rng = np.random.default_rng(seed)
    weights = _output_weights(fn, arrays, rng)

    def loss(values: list[np.ndarray]) -> float:
        with tg.no_grad():
            return float(_scalar(fn, _as_tensors(values), weights).item())

    tensors = _as_tensors(arrays)
    float_idx = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    analytic = tg.grad(
        _scalar(fn, tensors, weights), [tensors[i] for i in float_idx], allow_unused=True
    )
    _compare(analytic, loss, arrays, float_idx, eps, rtol, atol, "gradient")


def check_second_order(
    fn: Callable,
    arrays: Sequence[np.ndarray],
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Assert that the gradient of (v · ∂L/∂x) — a grad of a grad — matches finite differences."""
    arrays = _float64_copies(arrays)
    rng = np.random.default_rng(seed)
    weights = _output_weights(fn, arrays, rng)
    float_idx = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    directions = {i: rng.standard_normal(arrays[i].shape) for i in float_idx}

    def first_order(tensors: list[Tensor], create_graph: bool) -> Tensor:
        inputs = [tensors[i] for i in float_idx]
        grads = tg.grad(
            _scalar(fn, tensors, weights), inputs, create_graph=create_graph, allow_unused=True
        )
        total = None
        for i, g in zip(float_idx, grads):
            if g is None:
                continue
            term = (g * tg.tensor(directions[i])).sum()
            total = term if total is None else total + term
        return total

    def h(values: list[np.ndarray]) -> float:
        total = first_order(_as_tensors(values), create_graph=False)
        return 0.0 if total is None else float(total.item())

    tensors = _as_tensors(arrays)
    total = first_order(tensors, create_graph=True)
    if total is None or not total.requires_grad:  # a gradient constant in the inputs
        second = [None] * len(float_idx)
    else:
        second = tg.grad(total, [tensors[i] for i in float_idx], allow_unused=True)
    _compare(second, h, arrays, float_idx, eps, rtol, atol, "second derivative")
