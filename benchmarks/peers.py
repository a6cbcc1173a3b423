"""From-scratch peers (tinygrad, DeZero, MyGrad, Chainer, HIPS autograd) for the benchmark cases.

``implementations(group, case)`` returns one setup per peer for a case of ``run.collect``; as in
cases.py, a setup builds the models and inputs (untimed) and returns the callable to time. Each
peer is imported inside its setup, so a peer that is not installed raises ``ImportError`` there
(reported as "not installed") and a peer that lacks an op raises ``Unsupported`` before timing.
How to install the peers, their versions and what each supports: PEERS.md.

Same work as the tinygan/PyTorch setups: the networks of models.py written once (``_mlp``,
``_dcgan``) against a small per-peer table of ops (``_Peer`` subclasses), float32 throughout,
weights drawn with the same schemes (PyTorch's default Linear init for the MLP, N(0, 0.02) convs
and N(1, 0.02) BN scales for DCGAN), one D update on real + fake and one G update with the
non-saturating loss per step, each peer's own Adam where it has one. Peers without an optimizer
(MyGrad, autograd: autodiff only, autograd's own GAN example hand-writes its Adam) get
``_NumpyAdam``, PyTorch's Adam update in NumPy. The losses use each peer's own sigmoid
cross-entropy where it has one, else softplus(x) - t*x.

Compatibility and threads (details and the one Chainer bug worked around: PEERS.md):

- DeZero 0.0.13 evaluates ``np.int`` and Chainer 7.8.1 ``np.sctypes`` at import; both were
  removed in NumPy 2. ``_numpy_aliases`` puts them back only while the peer is imported and then
  removes them, so NumPy stays as it was for everything else in the process.
- DeZero and MyGrad turn Python scalars into 0-d float64/int64 arrays, which NumPy 2 promotes
  float32 with; DeZero's scalars are made float32 (``_dezero_float32_scalars``) and MyGrad's
  ops here get float32 constants, so both stay float32 as they did under NumPy 1.
- The harness limits BLAS threads with threadpoolctl, which covers the NumPy-based peers.
  tinygrad compiles its own CPU kernels (clang); its CPU device is forced and its thread count,
  ``tinygrad.helpers.NUM_CPU_THREADS``, is set to the BLAS limit in force (see ``_Tinygrad``).
  The GAN steps also get a ``tinygrad-jit`` row, the same step under ``TinyJit``.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from collections.abc import Callable, Iterator

import numpy as np

from benchmarks import models
from benchmarks.harness import Unsupported

Setup = Callable[[], Callable[[], object]]

PEERS = ("tinygrad", "dezero", "mygrad", "chainer", "autograd")
LAYER_BATCH = 64  # run.collect builds the layer cases with batch 64
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # PyTorch's defaults, used by tinygan's BatchNorm2d too
ADAM_EPS = 1e-8


def implementations(group: str, case: str) -> dict[str, Setup]:
    """Setups of every peer for one case of ``run.collect(group)``."""
    if group in ("mlp_gan_step", "dcgan_step"):
        batch = int(re.search(r"batch (\d+)", case).group(1))
        kind = "mlp" if group == "mlp_gan_step" else "dcgan"
        setups = {p: functools.partial(_gan_step_setup, p, kind, batch) for p in PEERS}
        setups["tinygrad-jit"] = functools.partial(_tinygrad_jit_step, kind, batch)
        return setups
    if group == "layers":
        spec = _layer_spec(case)
        return {p: functools.partial(_layer_setup, p, *spec) for p in PEERS}
    if group == "norms":
        from benchmarks.cases import NORM_SHAPES

        kind, shape = NORM_SHAPES[case]
        return {p: functools.partial(_norm_setup, p, kind, shape) for p in PEERS}
    return {}


# ---------------------------------------------------------------- the peers' op tables
@contextlib.contextmanager
def _numpy_aliases(**aliases: object) -> Iterator[None]:
    """Names removed in NumPy 2 that an old peer reads at import: present only meanwhile."""
    added = [name for name in aliases if name not in np.__dict__]
    for name in added:
        setattr(np, name, aliases[name])
    try:
        yield
    finally:
        for name in added:
            delattr(np, name)


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return min(counts) if counts else 1


class _NumpyAdam:
    """PyTorch's Adam update (bias-corrected, eps outside the square root), in place on float32
    arrays, for the peers that compute gradients but ship no optimizer."""

    def __init__(self, arrays: list[np.ndarray], lr: float, betas: tuple[float, float]):
        self.arrays, self.lr, (self.b1, self.b2) = arrays, lr, betas
        self.m = [np.zeros_like(a) for a in arrays]
        self.v = [np.zeros_like(a) for a in arrays]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for a, g, m, v in zip(self.arrays, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            denom = np.sqrt(v / c2) + ADAM_EPS
            a -= (self.lr / c1) * m / denom


class _Peer:
    """The ops the benchmark networks need, for one peer. ``missing`` maps an op this peer
    lacks to the reason reported in the table."""

    missing: dict[str, str] = {}
    linear_out_in = False  # weight layout the peer's linear op takes: (out, in) or (in, out)

    def require(self, *ops: str) -> None:
        for op in ops:
            if op in self.missing:
                raise Unsupported(self.missing[op])

    def linear_weight(self, w_out_in: np.ndarray):
        return self.param(w_out_in if self.linear_out_in else np.ascontiguousarray(w_out_in.T))

    def no_grad(self):
        return contextlib.nullcontext()

    def realize(self, *tensors) -> None:
        """Wait for the results of a lazy peer; eager peers have them already."""


class _Tinygrad(_Peer):
    """Lazy: nothing runs until realized. The optimizer's step realizes the updated weights;
    BN uses batch statistics without running ones (``track_running_stats=False``, which also
    keeps tinygrad's BN from growing a lazy ``num_batches_tracked`` graph across steps)."""

    def __init__(self) -> None:
        import tinygrad
        from tinygrad.helpers import DEV, NUM_CPU_THREADS

        self.tg = tinygrad
        DEV.value = "CPU"  # the default device for tensors made inside tinygrad, too
        NUM_CPU_THREADS.value = _blas_threads()

    def param(self, a):
        return self.tg.Tensor(a, device="CPU").realize()

    const = param

    def linear(self, x, w, b):
        return x.linear(w, b)

    def conv(self, x, w, stride, pad):
        return x.conv2d(w, stride=stride, padding=pad)

    def conv_t(self, x, w, stride, pad):
        return x.conv_transpose2d(w, stride=stride, padding=pad)

    def batch_norm(self, gamma, beta):
        bn = self.tg.nn.BatchNorm(gamma.shape[0], eps=BN_EPS, track_running_stats=False)
        bn.weight, bn.bias = gamma, beta
        return bn

    def instance_norm(self, gamma, beta):
        norm = self.tg.nn.InstanceNorm(gamma.shape[0], eps=BN_EPS)
        norm.weight, norm.bias = gamma, beta
        return norm

    def relu(self, x):
        return x.relu()

    def leaky_relu(self, x, slope):
        return x.leaky_relu(slope)

    def tanh(self, x):
        return x.tanh()

    def bce_logits(self, x, target):
        return x.binary_crossentropy_logits(x.full_like(target))

    def detach(self, x):
        return x.detach()

    def noise(self, rng, shape):
        return self.tg.Tensor.randn(*shape, device="CPU")

    def adam(self, params, lr, betas):
        from tinygrad.helpers import Context

        opt = self.tg.nn.optim.Adam(params, lr=lr, b1=betas[0], b2=betas[1], eps=ADAM_EPS)

        def minimize(loss) -> None:
            opt.zero_grad()
            loss.backward()
            # the loss is realized with the update, from the same weights, as the eager peers
            # compute it; realized later it would be recomputed from the updated weights
            with Context(TRAINING=1):
                self.tg.Tensor.realize(loss, *opt.schedule_step())

        return minimize

    def backward_ones(self, y) -> None:
        y.backward(y.ones_like())

    def realize(self, *tensors) -> None:
        self.tg.Tensor.realize(*tensors)

    def clear_grads(self, *tensors) -> None:
        for t in tensors:
            t.grad = None


class _DeZero(_Peer):
    missing = {"instance_norm": "no instance norm"}

    def __init__(self) -> None:
        with _numpy_aliases(int=int):
            import dezero
            import dezero.functions
            import dezero.functions_conv
            import dezero.optimizers
        self.dz, self.F, self.conv_F = dezero, dezero.functions, dezero.functions_conv
        _dezero_float32_scalars(dezero.core)

    def param(self, a):
        return self.dz.Parameter(a)

    def const(self, a):
        return self.dz.Variable(a)

    def no_grad(self):
        return self.dz.no_grad()

    def linear(self, x, w, b):
        return self.F.linear(x, w, b)

    def conv(self, x, w, stride, pad):
        return self.conv_F.conv2d(x, w, None, stride, pad)

    def conv_t(self, x, w, stride, pad):
        return self.conv_F.deconv2d(x, w, None, stride, pad)

    def batch_norm(self, gamma, beta):
        c = gamma.shape[0]
        mean, var = np.zeros(c, np.float32), np.ones(c, np.float32)
        # (sic) DeZero spells it batch_nrom; decay is 1 - momentum
        return lambda x: self.F.batch_nrom(x, gamma, beta, mean, var, 1 - BN_MOMENTUM, BN_EPS)

    def relu(self, x):
        return self.F.relu(x)

    def leaky_relu(self, x, slope):
        return self.F.leaky_relu(x, slope)

    def tanh(self, x):
        return self.F.tanh(x)

    def bce_logits(self, x, target):
        return self.F.sigmoid_cross_entropy(x, np.full(x.shape, target, np.float32))

    def detach(self, x):
        return self.dz.Variable(x.data)

    def noise(self, rng, shape):
        return self.const(rng.standard_normal(shape, dtype=np.float32))

    def adam(self, params, lr, betas):
        holder = _ParamList(params)
        opt = self.dz.optimizers.Adam(alpha=lr, beta1=betas[0], beta2=betas[1], eps=ADAM_EPS)
        opt.setup(holder)

        def minimize(loss) -> None:
            for p in params:
                p.cleargrad()
            loss.backward()
            opt.update()

        return minimize

    def backward_ones(self, y) -> None:
        y.grad = self.dz.Variable(np.ones_like(y.data))
        y.backward()

    def clear_grads(self, *tensors) -> None:
        for t in tensors:
            t.cleargrad()


def _dezero_float32_scalars(core) -> None:
    """DeZero turns a Python scalar operand (``1 - y`` in Tanh's and Sigmoid's backward, the
    constants of sigmoid_cross_entropy) into a 0-d int64/float64 array with ``as_array``. NumPy 1
    cast such 0-d arrays by value, so float32 stayed float32; NumPy 2 (NEP 50) promotes, and
    DeZero's backward would run in float64. Making those scalars float32 0-d arrays restores
    DeZero's float32 behaviour for these float32-only benchmarks."""
    if getattr(core.as_array, "float32_scalars", False):
        return
    original = core.as_array

    def as_array(x, array_module=np):
        if isinstance(x, (int, float)):
            return array_module.array(x, dtype=np.float32)
        return original(x, array_module)

    as_array.float32_scalars = True
    core.as_array = as_array


class _ParamList:
    """What DeZero's optimizers need of a model: ``params()``."""

    def __init__(self, params: list) -> None:
        self._params = params

    def params(self):
        yield from self._params


class _MyGrad(_Peer):
    missing = {
        "conv_t": "no transposed convolution",
        "instance_norm": "no instance norm",
    }

    def __init__(self) -> None:
        import mygrad
        import mygrad.nnet

        self.mg, self.nnet = mygrad, mygrad.nnet

    def param(self, a):
        return self.mg.Tensor(a)

    def const(self, a):
        return self.mg.Tensor(a, constant=True)

    def no_grad(self):
        return self.mg.no_autodiff

    def linear(self, x, w, b):
        return self.mg.matmul(x, w) + b

    def conv(self, x, w, stride, pad):
        return self.nnet.conv_nd(x, w, stride=stride, padding=pad)

    def batch_norm(self, gamma, beta):  # batch statistics only: MyGrad keeps no running ones
        return lambda x: self.nnet.batchnorm(x, gamma=gamma, beta=beta, eps=BN_EPS)

    def relu(self, x):
        return self.nnet.relu(x)

    def leaky_relu(self, x, slope):
        # MyGrad's own leaky_relu, max(x, 0) + slope * min(x, 0), with float32 constants: its
        # integer 0 becomes a 0-d int64 array that NumPy 2 promotes float32 with, to float64
        zero = np.float32(0)
        return self.mg.maximum(x, zero) + np.float32(slope) * self.mg.minimum(x, zero)

    def tanh(self, x):
        return self.mg.tanh(x)

    def bce_logits(self, x, target):
        # softplus(x) - t*x, averaged; float32 constants (MyGrad makes Python scalars 0-d
        # float64 arrays, which NumPy 2 promotes float32 with)
        return self.mg.mean(self.mg.logaddexp(np.float32(0), x) - np.float32(target) * x)

    def detach(self, x):
        return self.mg.Tensor(x.data, constant=True)

    def noise(self, rng, shape):
        return self.const(rng.standard_normal(shape, dtype=np.float32))

    def adam(self, params, lr, betas):
        opt = _NumpyAdam([p.data for p in params], lr, betas)

        def minimize(loss) -> None:
            loss.backward()
            opt.step([p.grad for p in params])

        return minimize

    def backward_ones(self, y) -> None:
        y.backward(np.ones_like(y.data))

    def clear_grads(self, *tensors) -> None:
        for t in tensors:
            t.null_grad()


class _Chainer(_Peer):
    """Chainer's NumPy (CPU) path; instance norm is its group normalization with one group
    per channel, which is instance norm by definition."""

    linear_out_in = True

    def __init__(self) -> None:
        sctypes = {
            "int": [np.int8, np.int16, np.int32, np.int64],
            "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
            "float": [np.float16, np.float32, np.float64, np.longdouble],
            "complex": [np.complex64, np.complex128, np.clongdouble],
            "others": [bool, object, bytes, str, np.void],
        }
        with _numpy_aliases(sctypes=sctypes), warnings.catch_warnings():
            # Chainer's import-time environment check uses the deprecated pkg_resources
            warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
            import chainer
            import chainer.functions
            import chainer.optimizers
        self.ch, self.F = chainer, chainer.functions

    def param(self, a):
        return self.ch.Parameter(a)

    def const(self, a):
        return self.ch.Variable(a, requires_grad=False)

    def no_grad(self):
        return self.ch.no_backprop_mode()

    def linear(self, x, w, b):
        return self.F.linear(x, w, b)

    def conv(self, x, w, stride, pad):
        return self.F.convolution_2d(x, w, stride=stride, pad=pad)

    def conv_t(self, x, w, stride, pad):
        return self.F.deconvolution_2d(x, w, stride=stride, pad=pad)

    def batch_norm(self, gamma, beta):
        c = gamma.shape[0]
        mean, var = np.zeros(c, np.float32), np.ones(c, np.float32)
        return lambda x: self.F.batch_normalization(
            x, gamma, beta, eps=BN_EPS, running_mean=mean, running_var=var, decay=1 - BN_MOMENTUM
        )

    def instance_norm(self, gamma, beta):
        return lambda x: self.F.group_normalization(x, x.shape[1], gamma, beta, eps=BN_EPS)

    def relu(self, x):
        return self.F.relu(x)

    def leaky_relu(self, x, slope):
        return self.F.leaky_relu(x, slope)

    def tanh(self, x):
        return self.F.tanh(x)

    def bce_logits(self, x, target):
        return self.F.sigmoid_cross_entropy(x, np.full(x.shape, int(target), np.int32))

    def detach(self, x):
        return self.ch.Variable(x.array, requires_grad=False)

    def noise(self, rng, shape):
        # requires_grad: Chainer 7.8.1's deconvolution backward on the CPU crashes when only
        # the weight gradient is wanted (``_set_cover_all(x, W)`` is given arrays, not shapes).
        # The extra gradient, for G's 100-channel 1x1 input, is ~0.1% of the step's FLOPs.
        return self.ch.Variable(rng.standard_normal(shape, dtype=np.float32))

    def adam(self, params, lr, betas):
        link = self.ch.Link()
        with link.init_scope():
            for i, p in enumerate(params):
                setattr(link, f"p{i}", p)
        opt = self.ch.optimizers.Adam(alpha=lr, beta1=betas[0], beta2=betas[1], eps=ADAM_EPS)
        opt.setup(link)

        def minimize(loss) -> None:
            link.cleargrads()
            loss.backward()
            opt.update()

        return minimize

    def backward_ones(self, y) -> None:
        y.grad = np.ones_like(y.array)
        y.backward()

    def clear_grads(self, *tensors) -> None:
        for t in tensors:
            t.cleargrad()


class _Autograd(_Peer):
    """HIPS autograd differentiates NumPy functions; it has no NN layers. Only the MLP GAN step
    runs (``_autograd_mlp_step``)."""

    missing = {
        "conv": "no convolution",
        "conv_t": "no transposed convolution",
        "batch_norm": "no batch norm",
        "instance_norm": "no instance norm",
    }

    def __init__(self) -> None:
        import autograd  # noqa: F401


_PEER_CLASSES = {
    "tinygrad": _Tinygrad,
    "dezero": _DeZero,
    "mygrad": _MyGrad,
    "chainer": _Chainer,
    "autograd": _Autograd,
}


# ---------------------------------------------------------------- networks (models.py)
def _mlp(peer: _Peer, sizes: list[int], rng: np.random.Generator) -> tuple[list, Callable]:
    """Linear/ReLU stack with PyTorch's default init: weight and bias ~ U(±1/sqrt(fan_in))."""
    params, layers = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        w = peer.linear_weight(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        b = peer.param(rng.uniform(-bound, bound, fan_out).astype(np.float32))
        params += [w, b]
        layers.append((w, b))

    def forward(x):
        for i, (w, b) in enumerate(layers):
            x = peer.linear(x, w, b)
            if i < len(layers) - 1:
                x = peer.relu(x)
        return x

    return params, forward


def _dcgan(peer: _Peer, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """models.tinygan_dcgan/torch_dcgan: bias-free (transposed) convs with N(0, 0.02) weights,
    BN with N(1, 0.02) scales and zero shifts; G: BN+ReLU then Tanh; D: BN after its first
    layer, LeakyReLU(0.2), a linear 1x1 output (the logits)."""

    def build(layer_defs, transposed):
        params, layers = [], []
        last = len(layer_defs) - 1
        for i, (cin, cout, stride, pad) in enumerate(layer_defs):
            w_shape = (cin, cout, 4, 4) if transposed else (cout, cin, 4, 4)
            w = peer.param((0.02 * rng.standard_normal(w_shape)).astype(np.float32))
            params.append(w)
            norm = None
            if (transposed and i < last) or (not transposed and 0 < i < last):
                gamma = peer.param((1 + 0.02 * rng.standard_normal(cout)).astype(np.float32))
                beta = peer.param(np.zeros(cout, np.float32))
                params += [gamma, beta]
                norm = peer.batch_norm(gamma, beta)
            layers.append((w, stride, pad, norm))
        return params, layers

    g_params, g_layers = build(models.DCGAN_G_LAYERS, transposed=True)
    d_params, d_layers = build(models.DCGAN_D_LAYERS, transposed=False)

    def generator(x):
        for i, (w, stride, pad, norm) in enumerate(g_layers):
            x = peer.conv_t(x, w, stride, pad)
            x = peer.relu(norm(x)) if i < len(g_layers) - 1 else peer.tanh(x)
        return x

    def discriminator(x):
        for i, (w, stride, pad, norm) in enumerate(d_layers):
            x = peer.conv(x, w, stride, pad)
            if norm is not None:
                x = norm(x)
            if i < len(d_layers) - 1:
                x = peer.leaky_relu(x, 0.2)
        return x

    return (g_params, generator), (d_params, discriminator)


# ---------------------------------------------------------------- GAN steps
def _gan_step_setup(name: str, kind: str, batch: int) -> Callable[[], tuple]:
    peer = _PEER_CLASSES[name]()
    rng = np.random.default_rng(0)
    if kind == "mlp":
        if name == "autograd":
            return _autograd_mlp_step(batch, rng)
        hidden = models.MLP_HIDDEN
        G = _mlp(peer, [models.MLP_NZ, hidden, hidden, 2], rng)
        D = _mlp(peer, [2, hidden, hidden, 1], rng)
        nz_shape, real_shape, lr = (batch, models.MLP_NZ), (batch, 2), 1e-3
    else:
        peer.require("conv", "conv_t", "batch_norm")
        G, D = _dcgan(peer, rng)
        nz_shape, real_shape, lr = (batch, models.NZ, 1, 1), (batch, models.NC, 64, 64), 2e-4
    (g_params, generator), (d_params, discriminator) = G, D
    betas = (0.5, 0.999)  # as cases.py passes for both GAN steps
    minimize_g, minimize_d = peer.adam(g_params, lr, betas), peer.adam(d_params, lr, betas)
    real = peer.const(rng.standard_normal(real_shape, dtype=np.float32))

    def step() -> tuple:
        fake = generator(peer.noise(rng, nz_shape))
        loss_d = peer.bce_logits(discriminator(real), 1.0) + peer.bce_logits(
            discriminator(peer.detach(fake)), 0.0
        )
        minimize_d(loss_d)
        loss_g = peer.bce_logits(discriminator(fake), 1.0)
        minimize_g(loss_g)
        return loss_d, loss_g

    return step


def _tinygrad_jit_step(kind: str, batch: int) -> Callable[[], tuple]:
    """The tinygrad step under TinyJit, tinygrad's usual way to train: the first two calls
    (the harness's warm-up) trace and capture the kernels, later calls replay them without
    rebuilding and rescheduling the graph, which dominates tinygrad's eager MLP step."""
    from tinygrad import TinyJit

    step = _gan_step_setup("tinygrad", kind, batch)

    @TinyJit
    def jitted() -> tuple:
        return step()  # the losses come back realized with the updates (_Tinygrad.adam)

    return jitted


def _autograd_mlp_step(batch: int, rng: np.random.Generator) -> Callable[[], tuple]:
    """The MLP GAN step in autograd's functional style. G's forward is recorded once with
    ``make_vjp`` and reused for G's update (as the imperative peers reuse ``fake``); G's loss is
    differentiated with respect to D's weights too, as the imperative peers do."""
    import autograd
    import autograd.numpy as anp

    def init(sizes):
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / np.sqrt(fan_in)
            w = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)  # as _mlp
            params.append(np.ascontiguousarray(w.T))
            params.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
        return params

    def mlp(params, x):
        for i in range(0, len(params), 2):
            x = anp.dot(x, params[i]) + params[i + 1]
            if i < len(params) - 2:
                x = anp.maximum(x, 0.0)
        return x

    def bce_logits(x, target):
        return anp.mean(anp.logaddexp(0.0, x) - target * x)

    def loss_d(params_d, fake, real):
        return bce_logits(mlp(params_d, real), 1.0) + bce_logits(mlp(params_d, fake), 0.0)

    def loss_g(params_d, fake):
        return bce_logits(mlp(params_d, fake), 1.0)

    hidden = models.MLP_HIDDEN
    params_g = init([models.MLP_NZ, hidden, hidden, 2])
    params_d = init([2, hidden, hidden, 1])
    adam_g = _NumpyAdam(params_g, 1e-3, (0.5, 0.999))
    adam_d = _NumpyAdam(params_d, 1e-3, (0.5, 0.999))
    real = rng.standard_normal((batch, 2), dtype=np.float32)
    grad_d = autograd.value_and_grad(loss_d)
    grad_g = autograd.value_and_grad(loss_g, argnum=(0, 1))

    def step() -> tuple:
        z = rng.standard_normal((batch, models.MLP_NZ), dtype=np.float32)
        g_vjp, fake = autograd.make_vjp(mlp)(params_g, z)
        value_d, grads = grad_d(params_d, fake, real)
        adam_d.step(grads)
        value_g, (_, grad_fake) = grad_g(params_d, fake)
        adam_g.step(g_vjp(grad_fake))
        return value_d, value_g

    return step


# ---------------------------------------------------------------- single layers
def _layer_spec(case: str) -> tuple[bool, int, int, int, int, int, bool]:
    """Parse a cases.layer_cases name ("G2 convT 512->256 4->8 fwd+bwd") back to its layer."""
    m = re.fullmatch(r"([GD])(\d) conv(T?) (\d+)->(\d+) (\d+)->(\d+) (fwd\+bwd|fwd)", case)
    if m is None:
        raise ValueError(f"unrecognised layer case {case!r}")
    transposed = m[1] == "G"
    defs, sizes = (
        (models.DCGAN_G_LAYERS, models.DCGAN_G_SIZES)
        if transposed
        else (models.DCGAN_D_LAYERS, models.DCGAN_D_SIZES)
    )
    i = int(m[2]) - 1
    cin, cout, stride, pad = defs[i]
    assert (cin, cout, sizes[i]) == (int(m[4]), int(m[5]), int(m[6])), case
    return transposed, cin, cout, sizes[i], stride, pad, m[8] == "fwd+bwd"


def _layer_setup(
    name: str,
    transposed: bool,
    cin: int,
    cout: int,
    size: int,
    stride: int,
    pad: int,
    backward: bool,
) -> Callable[[], None]:
    peer = _PEER_CLASSES[name]()
    peer.require("conv_t" if transposed else "conv")
    # the same inputs as cases._layer_impls
    rng = np.random.default_rng(0)
    x = rng.standard_normal((LAYER_BATCH, cin, size, size), dtype=np.float32)
    w_shape = (cin, cout, 4, 4) if transposed else (cout, cin, 4, 4)
    w = (0.02 * rng.standard_normal(w_shape)).astype(np.float32)
    make = peer.param if backward else peer.const
    xt, wt = make(x), make(w)
    op = peer.conv_t if transposed else peer.conv

    def run() -> object:
        if not backward:
            with peer.no_grad():
                y = op(xt, wt, stride, pad)
            peer.realize(y)
            return y
        y = op(xt, wt, stride, pad)
        peer.backward_ones(y)
        peer.realize(xt.grad, wt.grad)
        grads = xt.grad, wt.grad
        peer.clear_grads(xt, wt)
        return y, grads

    return run


# ---------------------------------------------------------------- norms
def _norm_setup(name: str, kind: str, shape: tuple) -> Callable[[], None]:
    peer = _PEER_CLASSES[name]()
    op = "batch_norm" if kind == "batch" else "instance_norm"
    peer.require(op)
    # the same input as cases._norm_impls: weight ones, bias zeros
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    c = shape[1]
    xt = peer.param(x)
    weight, bias = peer.param(np.ones(c, np.float32)), peer.param(np.zeros(c, np.float32))
    norm = getattr(peer, op)(weight, bias)

    def run() -> object:
        y = norm(xt)
        peer.backward_ones(y)
        peer.realize(xt.grad, weight.grad, bias.grad)
        grads = xt.grad, weight.grad, bias.grad
        peer.clear_grads(xt, weight, bias)
        return y, grads

    return run
