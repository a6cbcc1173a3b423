"""conv_transpose2d's stride-phase form (conv._conv_transpose_phases): the same values as the
col2im form and as naive loops wherever the stride divides the kernel, including conv2d's
input gradient (a conv_transpose2d with an output size chosen by the forward's input), and
the DCGAN layer shapes it is chosen for."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conv import naive_conv_transpose2d

import tinygan as tg
from tinygan.functions import conv


@pytest.fixture
def phases_always(monkeypatch):
    """Take the stride-phase form whenever it applies, and count its calls."""
    monkeypatch.setattr(conv, "_PHASE_MIN_ROWS", 1)
    monkeypatch.setattr(conv, "_PHASE_MAX_GROWTH", float("inf"))
    calls = []
    original = conv._conv_transpose_phases

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(conv, "_conv_transpose_phases", counted)
    return calls


@st.composite
def divisible_cases(draw):
    """conv_transpose2d geometries whose stride divides the kernel on both axes."""
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = tuple(s * draw(st.integers(1, 2)) for s in stride)
    size = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    padding = tuple(
        draw(st.integers(0, ((h - 1) * s + k + op - 1) // 2))
        for h, s, k, op in zip(size, stride, kernel, output_padding)
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), cin, *size))
    w = rng.standard_normal((cin, cout // groups, *kernel))
    params = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
    return x, w, params


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=divisible_cases())
def test_phase_form_matches_naive_loops(phases_always, case):
    x, w, params = case
    phases_always.clear()  # the fixture lives across the generated cases
    got = conv.conv_transpose2d(tg.tensor(x), tg.tensor(w), **params).numpy()
    expected = naive_conv_transpose2d(
        x, w, None, params["stride"], params["padding"], params["output_padding"],
        params["groups"], (1, 1),
    )  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # a kernel covering the whole output is a dense layer, taken before the phase form
    dense = conv._covers(got.shape[2:], w.shape[2:], params["padding"], (1, 1), params["groups"])
    if params["stride"] != (1, 1) and not dense:
        assert phases_always, "the stride-phase form was not taken"


@pytest.mark.parametrize("size", [(9, 9), (8, 11), (5, 6)])
def test_conv2d_input_gradient_through_the_phase_form(phases_always, size, monkeypatch):
    """Odd input sizes make the gradient's output size differ from (H − 1)·S − 2P + K."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, *size))
    w = rng.standard_normal((6, 4, 4, 4))
    g = None
    grads = []
    for grid in (conv._phase_grid, lambda *args: None):
        monkeypatch.setattr(conv, "_phase_grid", grid)
        xt = tg.tensor(x, requires_grad=True)
        y = conv.conv2d(xt, tg.tensor(w), stride=2, padding=1)
        g = rng.standard_normal(y.shape) if g is None else g
        y.backward(tg.tensor(g))
        grads.append(xt.grad.numpy())
    assert phases_always
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "cin, cout, size, chosen",
    [(128, 64, 16, True), (256, 128, 8, False), (512, 256, 4, False), (64, 3, 32, False)],
)
def test_dcgan_layers_that_take_the_phase_form(cin, cout, size, chosen):
    """The thresholds pick G4 (16 -> 32 px) only, as measured (conv.py's _PHASE_* notes)."""
    x = np.zeros((64, cin, size, size), np.float32)
    w = np.zeros((cin, cout, 4, 4), np.float32)
    out = (2 * size, 2 * size)
    grid = conv._phase_grid(x, w, (2, 2), (1, 1), (1, 1), 1, out)
    assert (grid is not None) == chosen
