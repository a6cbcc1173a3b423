"""Gradient reversal, stop-gradient, straight-through, dropout and embedding."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygan as tg
from tinygan.functions.special import (
    dropout,
    embedding,
    gradient_reversal,
    stop_gradient,
    straight_through,
)

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**31 - 1)


@given(shape=shapes, lam=st.floats(-3, 3), seed=seeds)
def test_gradient_reversal(shape, lam, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    t = tg.tensor(x, requires_grad=True)
    y = gradient_reversal(t, lam)
    np.testing.assert_array_equal(y.numpy(), x)
    (y * y).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), -lam * 2 * x)
    # twice differentiable: d/dx of (v · grad) is −lam · d²/dx² of the loss
    check_second_order(lambda x: gradient_reversal(x * x * x, lam), [x])


def test_stop_gradient_blocks_the_gradient():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * stop_gradient(x * 3.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0])


@given(shape=shapes, seed=seeds)
def test_straight_through(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    t = tg.tensor(x, requires_grad=True)
    q = tg.tensor(np.round(x))  # e.g. a quantised x
    y = straight_through(t, q)
    np.testing.assert_array_equal(y.numpy(), np.round(x))
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.full(shape, 2.0))  # not d round / dx = 0


def test_dropout_is_seedable_and_unbiased():
    x = tg.ones(20000)
    a = dropout(x, 0.3, generator=tg.Generator(5)).numpy()
    b = dropout(x, 0.3, generator=tg.Generator(5)).numpy()
    np.testing.assert_array_equal(a, b)
    assert abs((a == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(a[a != 0], 1 / 0.7, rtol=1e-6)
    assert abs(a.mean() - 1.0) < 0.03
    assert dropout(x, 0.3, training=False) is x
    np.testing.assert_array_equal(dropout(x, 1.0).numpy(), 0.0)
    tg.manual_seed(3)
    c = dropout(x, 0.5).numpy()
    tg.manual_seed(3)
    np.testing.assert_array_equal(dropout(x, 0.5).numpy(), c)


def test_dropout_gradient_uses_the_same_mask():
    x = tg.tensor(np.arange(1.0, 101.0), requires_grad=True)
    y = dropout(x, 0.4, generator=tg.Generator(0))
    y.sum().backward()
    mask = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask / 0.6)


@given(num=st.integers(1, 5), dim=st.integers(1, 3), idx_shape=shapes, seed=seeds)
def test_embedding(num, dim, idx_shape, seed):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((num, dim))
    idx = rng.integers(0, num, idx_shape)
    y = embedding(tg.tensor(idx), tg.tensor(weight))
    np.testing.assert_array_equal(y.numpy(), weight[idx])
    check_grad(lambda w: embedding(idx, w), [weight])  # repeated indices accumulate
    check_second_order(lambda w: embedding(idx, w) ** 2, [weight])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dropout(tg.ones(3), 1.5), "dropout"),
        (lambda: embedding(np.array([0, 3]), tg.zeros(3, 2)), "out of range"),
        (lambda: embedding(np.array([0.5]), tg.zeros(3, 2)), "integers"),
        (lambda: embedding(np.array([0]), tg.zeros(3)), "num_embeddings"),
        (lambda: straight_through(tg.zeros(2), tg.zeros(3)), "differ"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
