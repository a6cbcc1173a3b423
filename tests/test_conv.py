"""conv2d, conv_transpose2d, im2col and col2im: values against naive loops (and PyTorch where
installed), the adjoint identity, first and second derivatives against finite differences
over random geometries, and the argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_grad, check_second_order
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygan as tg
from tinygan.functions.conv import col2im, conv2d, conv_transpose2d, im2col

# ---------------------------------------------------------------- naive references


def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """Direct sum over every output position and tap."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    out = np.zeros((N, OC, OH, OW))
    for o in range(OC):
        g = o // (OC // groups)
        for i in range(OH):
            for j in range(OW):
                patch = xp[
                    :,
                    g * Cg : (g + 1) * Cg,
                    i * sh : i * sh + dh * (KH - 1) + 1 : dh,
                    j * sw : j * sw + dw * (KW - 1) + 1 : dw,
                ]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def naive_conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation):
    """Scatter every input pixel times the kernel onto the output."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    N, C, H, W = x.shape
    _, OCg, KH, KW = w.shape
    Cg = C // groups
    full = np.zeros(
        (
            N,
            OCg * groups,
            (H - 1) * sh + dh * (KH - 1) + 1 + oph,
            (W - 1) * sw + dw * (KW - 1) + 1 + opw,
        )
    )
    for c in range(C):
        g = c // Cg
        for i in range(H):
            for j in range(W):
                for kh in range(KH):
                    for kw in range(KW):
                        full[:, g * OCg : (g + 1) * OCg, i * sh + kh * dh, j * sw + kw * dw] += (
                            x[:, c, i, j, None] * w[c, :, kh, kw]
                        )
    OH, OW = full.shape[2] - 2 * ph, full.shape[3] - 2 * pw
    out = full[:, :, ph : ph + OH, pw : pw + OW]
    return out if b is None else out + b.reshape(1, -1, 1, 1)


# ---------------------------------------------------------------- random geometries


@st.composite
def conv_cases(draw, transpose=False, max_size=5):
    """A consistent (x, w, b, params) for conv2d or conv_transpose2d, sizes kept small."""
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    size, padding, output_padding = [], [], []
    for k, s, d in zip(kernel, stride, dilation):
        span = d * (k - 1) + 1
        if transpose:
            h = draw(st.integers(1, max_size - 1))
            op = draw(st.integers(0, max(s, d) - 1))
            full = (h - 1) * s + span + op
            p = draw(st.integers(0, min(2, (full - 1) // 2)))
        else:
            p = draw(st.integers(0, min(2, (span - 1) // 2 + 1)))
            h = draw(st.integers(max(1, span - 2 * p), max(1, span - 2 * p) + max_size - 2))
            op = 0
        size.append(h)
        padding.append(p)
        output_padding.append(op)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, *size))
    wshape = (cin, cout // groups, *kernel) if transpose else (cout, cin // groups, *kernel)
    w = rng.standard_normal(wshape)
    b = rng.standard_normal(cout)
    params = dict(stride=stride, padding=tuple(padding), dilation=dilation, groups=groups)
    if transpose:
        params["output_padding"] = tuple(output_padding)
    return x, w, b, params


def _conv(params):
    return lambda x, w, b: conv2d(x, w, b, **params)


def _conv_t(params):
    return lambda x, w, b: conv_transpose2d(x, w, b, **params)


# ---------------------------------------------------------------- forward values


@given(case=conv_cases())
def test_conv2d_matches_naive_loops(case):
    x, w, b, params = case
    got = conv2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
    expected = naive_conv2d(
        x, w, b, params["stride"], params["padding"], params["dilation"], params["groups"]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@given(case=conv_cases(transpose=True))
def test_conv_transpose2d_matches_naive_loops(case):
    x, w, b, params = case
    got = conv_transpose2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
    expected = naive_conv_transpose2d(
        x,
        w,
        b,
        params["stride"],
        params["padding"],
        params["output_padding"],
        params["groups"],
        params["dilation"],
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def _against_pytorch(case, transpose):
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torch.nn.functional")
    x, w, b, params = case
    fn, ref = (conv_transpose2d, F.conv_transpose2d) if transpose else (conv2d, F.conv2d)
    tensors = [tg.tensor(a, requires_grad=True) for a in (x, w, b)]
    refs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y, y_ref = fn(*tensors, **params), ref(*refs, **params)
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(tg.tensor(g))
    y_ref.backward(torch.tensor(g))
    for t, r in zip(tensors, refs):
        np.testing.assert_allclose(t.grad.numpy(), r.grad.numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(case=conv_cases(max_size=8))
def test_conv2d_against_pytorch(case):
    _against_pytorch(case, transpose=False)


@settings(max_examples=15)
@given(case=conv_cases(transpose=True, max_size=8))
def test_conv_transpose2d_against_pytorch(case):
    _against_pytorch(case, transpose=True)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [((12, 13), (4, 4), 2, 1, 1), ((10, 17), (3, 5), (1, 2), (1, 2), (2, 1)), ((9, 9), 3, 3, 0, 2)],
)
def test_large_maps_take_the_fast_paths(size, kernel, stride, padding, dilation):
    """Maps of >= 64 pixels (one GEMM per sample) and rows wide enough for the flat col2im."""
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 3, *size)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((4, 3, *np.broadcast_to(kernel, 2))), requires_grad=True)
    params = dict(
        stride=np.broadcast_to(stride, 2).tolist(),
        padding=np.broadcast_to(padding, 2).tolist(),
        dilation=np.broadcast_to(dilation, 2).tolist(),
        groups=1,
    )
    y = conv2d(x, w, **params)
    expected = naive_conv2d(x.numpy(), w.numpy(), None, *params.values())
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(y.shape)
    y.backward(tg.tensor(g))
    op = [0, 0]
    back = naive_conv_transpose2d(
        g, w.numpy(), None, params["stride"], params["padding"], op, 1, params["dilation"]
    )
    np.testing.assert_allclose(
        x.grad.numpy()[:, :, : back.shape[2], : back.shape[3]], back, rtol=1e-10, atol=1e-10
    )
    z = conv_transpose2d(x, w.detach().transpose(1, 0, 2, 3), **params)
    expected = naive_conv_transpose2d(
        x.numpy(),
        w.numpy().transpose(1, 0, 2, 3),
        None,
        params["stride"],
        params["padding"],
        op,
        1,
        params["dilation"],
    )
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_float32_and_padding_modes():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 3, 7, 6)).astype(np.float32))
    w = tg.tensor(rng.standard_normal((4, 3, 3, 5)).astype(np.float32))
    same = conv2d(x, w, padding="same", dilation=(2, 1))
    assert same.shape == (2, 4, 7, 6) and same.dtype == np.float32
    assert conv2d(x, w, padding="valid").shape == (2, 4, 5, 2)
    expected = naive_conv2d(
        x.numpy().astype(np.float64), w.numpy().astype(np.float64), None, (1, 1), (2, 2), (2, 1), 1
    )
    np.testing.assert_allclose(same.numpy(), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- adjoint identity


@given(case=conv_cases())
def test_conv_transpose_is_the_adjoint_of_conv(case):
    """<conv2d(x, w), y> = <x, conv_transpose2d(y, w)> with the output_padding that restores
    x's size."""
    x, w, _, params = case
    y_shape = naive_conv2d(
        x, w, None, params["stride"], params["padding"], params["dilation"], params["groups"]
    ).shape
    y = np.random.default_rng(3).standard_normal(y_shape)
    op = tuple(
        h - ((o - 1) * s - 2 * p + d * (k - 1) + 1)
        for h, o, s, p, d, k in zip(
            x.shape[2:],
            y_shape[2:],
            params["stride"],
            params["padding"],
            params["dilation"],
            w.shape[2:],
        )
    )
    if any(o >= max(s, d) for o, s, d in zip(op, params["stride"], params["dilation"])):
        return  # x's extra rows are out of convT's reach: no output_padding restores them
    lhs = (conv2d(tg.tensor(x), tg.tensor(w), **params).numpy() * y).sum()
    back = conv_transpose2d(tg.tensor(y), tg.tensor(w), output_padding=op, **params).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose(lhs, (x * back).sum(), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- gradients


@settings(max_examples=25)
@given(case=conv_cases(max_size=4))
def test_conv2d_gradients(case):
    x, w, b, params = case
    check_grad(_conv(params), [x, w, b])


@settings(max_examples=25)
@given(case=conv_cases(transpose=True, max_size=4))
def test_conv_transpose2d_gradients(case):
    x, w, b, params = case
    check_grad(_conv_t(params), [x, w, b])


@settings(max_examples=10)
@given(case=conv_cases(max_size=3))
def test_conv2d_second_order(case):
    x, w, b, params = case
    check_second_order(_conv(params), [x, w, b])


@settings(max_examples=10)
@given(case=conv_cases(transpose=True, max_size=3))
def test_conv_transpose2d_second_order(case):
    x, w, b, params = case
    check_second_order(_conv_t(params), [x, w, b])


def test_gradient_penalty_through_two_convs():
    """R1/WGAN-GP shape: ||d D(x) / dx||² backpropagated to D's weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 6, 6))
    w1, w2 = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((1, 3, 3, 3))

    def penalty(w1, w2):
        xt = tg.tensor(x, requires_grad=True)
        with tg.enable_grad():  # also when the finite differences evaluate under no_grad
            h = conv2d(xt, w1, stride=2, padding=1)
            (gx,) = tg.grad(conv2d(h * h, w2).sum(), [xt], create_graph=True)
        return (gx * gx).sum()

    check_grad(penalty, [w1, w2])


# ---------------------------------------------------------------- im2col / col2im


@given(case=conv_cases())
def test_im2col_layout_and_col2im_adjoint(case):
    x, w, _, params = case
    kernel, stride, padding, dilation = (
        w.shape[2:],
        params["stride"],
        params["padding"],
        params["dilation"],
    )
    cols = im2col(tg.tensor(x), kernel, stride, padding, dilation).numpy()
    N, C, KH, KW, OH, OW = cols.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    for kh in range(KH):
        for kw in range(KW):
            for oh in range(OH):
                for ow in range(OW):
                    np.testing.assert_array_equal(
                        cols[:, :, kh, kw, oh, ow],
                        xp[
                            :,
                            :,
                            oh * stride[0] + kh * dilation[0],
                            ow * stride[1] + kw * dilation[1],
                        ],
                    )
    c = np.random.default_rng(5).standard_normal(cols.shape)
    folded = col2im(tg.tensor(c), x.shape[2:], stride, padding, dilation).numpy()
    np.testing.assert_allclose((cols * c).sum(), (x * folded).sum(), rtol=1e-10)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases(), batch_first=st.booleans(), crop=st.integers(0, 1))
def test_compiled_im2col_col2im_equal_the_numpy_forms(case, batch_first, crop, monkeypatch):
    """im2col_kernels (Numba, the CPU path) against conv.py's NumPy forms: the same columns
    and the same folds bit for bit, in both layouts and with the columns past ``width``
    zero padding (as the GEMMs that feed col2im such rows leave them)."""
    from tinygan.functions import conv, im2col_kernels

    x, w, _, params = case
    geometry = w.shape[2:], params["stride"], params["padding"], params["dilation"]
    out_size = conv._windows(x.shape[2:], *geometry)
    width = max(1, out_size[1] - crop)

    def both():
        cols = conv.im2col_array(x, *geometry, out_size, batch_first=batch_first)
        padded = cols.copy()
        padded[..., width:] = 0
        folded = conv.col2im_array(padded, x.shape[2:], *geometry[1:], width, batch_first)
        return cols, folded

    got = both()
    with monkeypatch.context() as m:
        m.setattr(im2col_kernels, "usable", lambda a: False)
        expected = both()
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.flags.c_contiguous
        np.testing.assert_array_equal(g, e)


@settings(max_examples=8)
@given(case=conv_cases(max_size=4))
def test_im2col_col2im_gradients(case):
    x, w, _, params = case
    geometry = (w.shape[2:], params["stride"], params["padding"], params["dilation"])
    check_grad(lambda x: im2col(x, *geometry), [x])
    check_second_order(lambda x: im2col(x, *geometry) ** 2, [x])
    cols = im2col(tg.tensor(x), *geometry).numpy()
    check_grad(lambda c: col2im(c, x.shape[2:], *geometry[1:]), [cols])


# ---------------------------------------------------------------- errors


def _t(*shape):
    return tg.zeros(*shape)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 2, 3, 3)), "input channels"),
        (lambda: conv2d(_t(1, 4, 8, 8), _t(4, 2, 3, 3), groups=3), "groups=3"),
        (lambda: conv2d(_t(1, 3, 2, 2), _t(4, 3, 3, 3)), "not positive"),
        (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 3, 3, 3), padding=-1), "padding"),
        (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 3, 3, 3), padding="same", stride=2), "stride 1"),
        (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 3, 3, 3), padding="full"), "padding"),
        (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 3, 3, 3), stride=0), "stride"),
        (lambda: conv2d(_t(1, 3, 8, 8), _t(4, 3, 3, 3), _t(3)), "bias"),
        (lambda: conv2d(_t(3, 8, 8), _t(4, 3, 3, 3)), "(N, C, H, W)"),
        (lambda: conv_transpose2d(_t(1, 3, 4, 4), _t(2, 4, 3, 3)), "input channels"),
        (
            lambda: conv_transpose2d(_t(1, 3, 4, 4), _t(3, 4, 3, 3), stride=2, output_padding=2),
            "output_padding",
        ),
        (lambda: conv_transpose2d(_t(1, 3, 1, 1), _t(3, 4, 1, 1), padding=1), "not positive"),
        (lambda: conv_transpose2d(_t(1, 4, 4, 4), _t(4, 1, 3, 3), groups=3), "groups=3"),
        (lambda: im2col(_t(1, 1, 2, 2), 3), "not positive"),
        (lambda: col2im(_t(1, 1, 3, 3, 4, 4), (4, 4)), "room"),
    ],
)
def test_errors_name_the_op_and_sizes(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize("transpose", [False, True])
def test_a_kernel_covering_the_map_is_a_dense_layer(monkeypatch, transpose):
    """DCGAN's D5 (4×4 kernel on a 4×4 map) and G1 (1×1 -> 4×4) build no columns: their
    values and gradients (to second order) match naive loops with im2col switched off."""
    from tinygan.functions import conv

    def no_columns(*args, **kwargs):
        raise AssertionError("im2col called for a kernel covering the whole map")

    monkeypatch.setattr(conv, "im2col_array", no_columns)
    monkeypatch.setattr(conv, "col2im_array", no_columns)
    rng = np.random.default_rng(0)
    if transpose:
        x, w = rng.standard_normal((3, 5, 1, 1)), rng.standard_normal((5, 2, 4, 3))
        got = conv_transpose2d(tg.tensor(x), tg.tensor(w)).numpy()
        expected = naive_conv_transpose2d(x, w, None, (1, 1), (0, 0), (0, 0), 1, (1, 1))
        fn = _conv_t({})
    else:
        x, w = rng.standard_normal((3, 5, 4, 3)), rng.standard_normal((2, 5, 4, 3))
        got = conv2d(tg.tensor(x), tg.tensor(w), stride=2).numpy()
        expected = naive_conv2d(x, w, None, (2, 2), (0, 0), (1, 1), 1)
        fn = _conv({"stride": 2})
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    b = rng.standard_normal(2)
    check_grad(fn, [x, w, b])
    check_second_order(fn, [x, w, b])


@pytest.mark.parametrize("min_contraction", [0, 10**9])
@pytest.mark.parametrize("groups", [1, 2])
def test_both_product_layouts(monkeypatch, min_contraction, groups):
    """conv2d's forward product and weight gradient each have two layouts, the product or
    its transpose (conv._transposed_is_faster picks by shape): forced either way, values
    match naive loops and gradients match finite differences."""
    from tinygan.functions import conv, winograd

    monkeypatch.setattr(conv, "_TRANSPOSED_MIN_K", min_contraction)
    monkeypatch.setattr(winograd, "ENABLED", False)
    rng = np.random.default_rng(1)
    # 2 output channels per group against 4·3·3 = 36 columns: fewer rows than columns
    x, w, b = (
        rng.standard_normal((2, 4 * groups, 7, 6)),
        rng.standard_normal((2 * groups, 4, 3, 3)),
        rng.standard_normal(2 * groups),
    )
    params = {"stride": 2, "padding": (1, 1), "dilation": 1, "groups": groups}
    got = conv2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
    expected = naive_conv2d(x, w, b, (2, 2), (1, 1), (1, 1), groups)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    check_grad(_conv(params), [x, w, b])


@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("transpose", [False, True])
def test_per_sample_and_whole_batch_products(monkeypatch, per_sample, transpose):
    """The im2col path's products run per sample (batch-first) or over the whole batch
    (conv._per_sample picks by shape): forced either way, conv2d and conv_transpose2d match
    naive loops, their gradients finite differences, and the forced form is the one taken."""
    from tinygan.functions import conv, winograd

    monkeypatch.setattr(winograd, "ENABLED", False)
    monkeypatch.setattr(conv, "_PER_SAMPLE_MIN_POSITIONS", 1 if per_sample else 10**9)
    layouts = []  # batch_first of each im2col / col2im of the forward

    def spy(original):
        def wrapped(*args, batch_first=True, **kwargs):
            layouts.append(batch_first)
            return original(*args, batch_first=batch_first, **kwargs)

        return wrapped

    for name in ("im2col_array", "col2im_array"):
        monkeypatch.setattr(conv, name, spy(getattr(conv, name)))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 6, 5))
    w = rng.standard_normal((2, 3, 3, 3) if transpose else (3, 2, 3, 3))
    b = rng.standard_normal(3)
    params = {"stride": 2, "padding": (1, 1), "dilation": 1, "groups": 1}
    if transpose:
        got = conv_transpose2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
        expected = naive_conv_transpose2d(x, w, b, (2, 2), (1, 1), (0, 0), 1, (1, 1))
    else:
        got = conv2d(tg.tensor(x), tg.tensor(w), tg.tensor(b), **params).numpy()
        expected = naive_conv2d(x, w, b, (2, 2), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert layouts == [per_sample]
    check_grad(_conv_t(params) if transpose else _conv(params), [x, w, b])


def test_per_sample_products_follow_the_measurements():
    """The shapes quoted in conv._per_sample's docstring take the faster form."""
    from tinygan.functions.conv import _per_sample

    batch, single = np.empty((64, 1, 1, 1)), np.empty((1, 1, 1, 1))
    assert _per_sample(batch, 1, 48, 32 * 32)  # DCGAN D1, forward and both gradients
    assert not _per_sample(batch, 1, 576, 32 * 32)  # a 64->64 3x3 layer
    assert not _per_sample(batch, 1, 48, 8 * 8)  # small maps
    assert not _per_sample(single, 1, 48, 32 * 32)  # batch 1: both forms are the same
    assert not _per_sample(batch, 2, 48, 32 * 32)  # grouped: one GEMM per group instead


def test_the_product_layout_follows_the_measurements():
    """The shapes quoted in conv._transposed_is_faster's docstring take the faster layout."""
    from tinygan.functions.conv import _transposed_is_faster

    assert _transposed_is_faster(512, 1024, 4096)  # DCGAN 256->512 forward, im2col path
    assert _transposed_is_faster(64, 147, 16384)  # CycleGAN 7x7 stem weight gradient
    assert not _transposed_is_faster(512, 4096, 225)  # PatchGAN 256->512 weight gradient
    assert not _transposed_is_faster(128, 4096, 576)  # 3x3 stride-2 64->128 forward
    assert not _transposed_is_faster(256, 1024, 1152)  # 3x3 stride-2 128->256 forward
    assert not _transposed_is_faster(64, 65536, 48)  # DCGAN D1 forward
    assert not _transposed_is_faster(1024, 512, 8192)  # more rows than columns: never


@pytest.mark.parametrize(
    "transpose, x_shape, w_shape, geometry",
    [
        (False, (6, 3, 64, 64), (64, 3, 4, 4), {"stride": 2, "padding": 1}),  # D1, per sample
        (True, (6, 64, 32, 32), (64, 3, 4, 4), {"stride": 2, "padding": 1}),  # G5, per sample
        (False, (1, 64, 16, 16), (64, 64, 3, 3), {"padding": 1}),  # 3x3: 16 Winograd planes
        (False, (2, 16, 16, 16), (32, 16, 4, 4), {"stride": 2, "padding": 1}),  # 9 planes
        (True, (2, 32, 8, 8), (32, 16, 4, 4), {"stride": 2, "padding": 1}),  # 9, transposed
    ],
)
def test_products_on_two_cores_equal_one_thread(monkeypatch, transpose, x_shape, w_shape, geometry):
    """With two BLAS threads the products (D1's and G5's per-sample ones, a 3×3 layer's 16
    Winograd planes, a 4×4 stride-2 layer's 9, the ninth cut in two bands of rows) run one
    per core (backend/batched_matmul.py); output and both gradients equal, bit for bit,
    those of a one-thread run, and the split path is the one taken (at every size here:
    the size threshold is tested in test_batched_matmul.py)."""
    from threadpoolctl import threadpool_limits

    from tinygan.backend import batched_matmul

    if not batched_matmul._numpy_openblas():
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (0.05 * rng.standard_normal(w_shape)).astype(np.float32)
    op = conv_transpose2d if transpose else conv2d
    g = rng.standard_normal(op(tg.tensor(x), tg.tensor(w), None, **geometry).shape)

    def run(threads):
        xt, wt = tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)
        with threadpool_limits(threads, user_api="blas"):
            y = op(xt, wt, None, **geometry)
            y.backward(tg.tensor(g.astype(np.float32)))
        return y.numpy(), xt.grad.numpy(), wt.grad.numpy()

    one = run(1)
    monkeypatch.setattr(batched_matmul, "MIN_BATCH_MACS", 0)
    splits = []
    real_split = batched_matmul._split
    monkeypatch.setattr(
        batched_matmul, "_split", lambda *args: splits.append(args[-1]) or real_split(*args)
    )
    for got, expected in zip(run(2), one):
        np.testing.assert_array_equal(got, expected)
    assert len(splits) >= 2 and set(splits) == {2}  # the forward and a gradient, in two
