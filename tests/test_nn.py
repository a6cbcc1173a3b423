"""tinygan.nn: Module machinery, state dicts, repr, layers against torch.nn (oracle),
default initialisation, spectral norm and equalised layers."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

import tinygan
from tinygan import nn

TNN = torch.nn


def to_torch(t: tinygan.Tensor) -> torch.Tensor:
    return torch.tensor(t.numpy().copy())


def copy_into_torch(ours: nn.Module, theirs: TNN.Module) -> None:
    """Load our state dict into the torch module: this also checks the key names agree."""
    theirs.load_state_dict({k: to_torch(v) for k, v in ours.state_dict().items()}, strict=True)


def randomise(module: nn.Module, seed: int = 0) -> None:
    """Random parameters (so ones/zeros defaults do not hide mistakes)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.copy_(rng.uniform(0.5, 1.5, p.shape).astype(p.dtype) * rng.choice([-1, 1], p.shape))


# ---------------------------------------------------------------- Parameter and Module
def test_parameter_basics():
    p = nn.Parameter(np.zeros(3, np.float32))
    assert isinstance(p, tinygan.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter(tinygan.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="floating-point.*int64"):
        nn.Parameter(np.arange(3))
    assert repr(p).startswith("Parameter containing:\ntensor(")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2)
        )
        self.heads = nn.ModuleDict({"adv": nn.Linear(4, 1), "cls": nn.Linear(4, 10)})
        self.blocks = nn.ModuleList([nn.Identity(), nn.Tanh()])
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.register_buffer("step", tinygan.zeros(1))
        self.register_buffer("cache", tinygan.zeros(2), persistent=False)

    def forward(self, x):
        h = self.body(x).mean(axis=(2, 3))
        for block in self.blocks:
            h = block(h)
        return self.heads["adv"](h) * self.scale, self.heads["cls"](h)


class TorchNet(TNN.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = TNN.Sequential(
            TNN.Conv2d(1, 4, 3, padding=1), TNN.BatchNorm2d(4), TNN.LeakyReLU(0.2)
        )
        self.heads = TNN.ModuleDict({"adv": TNN.Linear(4, 1), "cls": TNN.Linear(4, 10)})
        self.blocks = TNN.ModuleList([TNN.Identity(), TNN.Tanh()])
        self.scale = TNN.Parameter(torch.ones(1))
        self.register_buffer("step", torch.zeros(1))
        self.register_buffer("cache", torch.zeros(2), persistent=False)


TorchNet.__name__ = "Net"  # the same class name, for the repr comparison


def test_registration_and_traversal_match_torch():
    ours, theirs = Net(), TorchNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())  # cache is not persistent
    assert len(list(ours.parameters())) == 9 and len(list(ours.children())) == 3
    assert ours.body[1].num_batches_tracked.dtype == np.int64


def test_repr_matches_torch():
    assert repr(Net()) == repr(TorchNet())
    layers = [
        (nn.Conv2d(3, 64, 4, 2, 1, bias=False), TNN.Conv2d(3, 64, 4, 2, 1, bias=False)),
        (
            nn.Conv2d(3, 8, 3, dilation=2, groups=1, padding_mode="reflect", padding=1),
            TNN.Conv2d(3, 8, 3, dilation=2, padding_mode="reflect", padding=1),
        ),
        (
            nn.ConvTranspose2d(8, 4, 3, 2, 1, 1, groups=2),
            TNN.ConvTranspose2d(8, 4, 3, 2, 1, 1, groups=2),
        ),
        (nn.BatchNorm1d(7, momentum=None), TNN.BatchNorm1d(7, momentum=None)),
        (nn.InstanceNorm2d(64), TNN.InstanceNorm2d(64)),
        (nn.LayerNorm((4, 5)), TNN.LayerNorm((4, 5))),
        (nn.ReLU(), TNN.ReLU()),
        (nn.ReLU(inplace=True), TNN.ReLU(inplace=True)),
        (nn.LeakyReLU(0.2, True), TNN.LeakyReLU(0.2, True)),
        (nn.PReLU(3), TNN.PReLU(3)),
        (nn.ELU(), TNN.ELU()),
        (nn.Sigmoid(), TNN.Sigmoid()),
        (nn.Tanh(), TNN.Tanh()),
        (nn.Softplus(), TNN.Softplus()),
        (nn.Dropout(), TNN.Dropout()),
        (nn.Embedding(10, 4), TNN.Embedding(10, 4)),
        (nn.Embedding(10, 4, 0), TNN.Embedding(10, 4, 0)),
        (nn.Upsample(scale_factor=2), TNN.Upsample(scale_factor=2)),
        (nn.Upsample(size=(8, 8), mode="bilinear"), TNN.Upsample(size=(8, 8), mode="bilinear")),
        (nn.PixelShuffle(2), TNN.PixelShuffle(2)),
        (nn.ReflectionPad2d(3), TNN.ReflectionPad2d(3)),
        (nn.ReplicationPad2d((1, 2, 3, 4)), TNN.ReplicationPad2d((1, 2, 3, 4))),
        (nn.ZeroPad2d(1), TNN.ZeroPad2d(1)),
        (nn.Flatten(), TNN.Flatten()),
        (nn.Unflatten(1, (2, 3)), TNN.Unflatten(1, (2, 3))),
        (nn.Identity(), TNN.Identity()),
    ]
    for ours, theirs in layers:
        assert repr(ours) == repr(theirs)
    assert repr(nn.Sequential(*[a for a, _ in layers])) == repr(
        TNN.Sequential(*[b for _, b in layers])
    )


def test_repr_snapshot_of_tinygan_only_layers():
    model = nn.Sequential(
        OrderedDict(
            mapping=nn.EqualizedLinear(8, 8, lr_multiplier=0.01),
            conv=nn.spectral_norm(nn.Conv2d(2, 4, 3)),
            style=nn.AdaIN(4, style_dim=8),
            grl=nn.GradientReversal(0.5),
        )
    )
    assert repr(model) == (
        "Sequential(\n"
        "  (mapping): EqualizedLinear(in_features=8, out_features=8, bias=True, gain=1.0, "
        "lr_multiplier=0.01)\n"
        "  (conv): Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (style): AdaIN(\n"
        "    4, style_dim=8, eps=1e-05\n"
        "    (affine): Linear(in_features=8, out_features=8, bias=True)\n"
        "  )\n"
        "  (grl): GradientReversal(lam=0.5)\n"
        ")"
    )


def test_attribute_rules():
    net = Net()
    net.plain = tinygan.zeros(2)  # a plain tensor is not registered (as in PyTorch)
    assert "plain" not in dict(net.named_buffers()) and "plain" not in net.state_dict()
    with pytest.raises(TypeError, match="scale is a parameter"):
        net.scale = tinygan.zeros(1)
    with pytest.raises(TypeError, match="step is a buffer"):
        net.step = np.zeros(1)
    net.scale = None
    assert "scale" not in net.state_dict()
    del net.heads["cls"]
    assert "heads.cls.weight" not in net.state_dict()
    del net.blocks
    assert "blocks" not in dict(net.named_children())

    class Forgot(nn.Module):
        def __init__(self) -> None:
            self.layer = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgot()


def test_shared_modules_are_counted_once_but_saved_under_each_name():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_train_eval_requires_grad_zero_grad_apply():
    net = Net()
    assert net.training and net.body[1].training
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_(True)
    adv, cls = net(tinygan.randn(2, 1, 5, 5))
    (adv.sum() + cls.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    names = []
    assert net.apply(lambda m: names.append(type(m).__name__)) is net
    assert names[-1] == "Net" and names.count("Linear") == 2


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    seq.append(nn.Sigmoid())
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert seq(tinygan.randn(5, 2)).shape == (5, 1)
    with pytest.raises(IndexError, match="Sequential: index 7"):
        seq[7]
    layers = nn.ModuleList([nn.Linear(1, 1)])
    layers.append(nn.Linear(1, 2)).extend([nn.Linear(2, 2)])
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "Linear", "Linear"]
    assert list(layers.state_dict())[0] == "1.weight"
    del layers[0]
    assert list(layers.state_dict())[0] == "0.weight"
    heads = nn.ModuleDict({"a": nn.Linear(1, 1)})
    heads["b"] = nn.Linear(1, 2)
    assert list(heads) == ["a", "b"] and "b" in heads and len(heads) == 2
    assert [k for k, _ in heads.items()] == ["a", "b"]


def _norm_activation_net(seed: int = 0) -> nn.Sequential:
    tinygan.manual_seed(seed)
    f64 = {"dtype": np.float64}  # the two paths round differently; float64 shows the rest
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, **f64), nn.BatchNorm2d(4, **f64), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, **f64), nn.InstanceNorm2d(4, affine=True, **f64),
        nn.LeakyReLU(0.2), nn.BatchNorm2d(4, **f64), nn.LeakyReLU(1.5),  # slope > 1: not fused
        nn.Conv2d(4, 2, 1, **f64),
    )  # fmt: skip


def _run_spied(monkeypatch, net, x):
    """Output and every gradient and float buffer of ``net`` on x, with the names of the
    activation layers whose own forward ran and the activation slope of each norm op."""
    from tinygan.functions import norm as norm_functions

    seen, slopes = [], []
    for layer in (nn.ReLU, nn.LeakyReLU):
        forward = layer.forward
        monkeypatch.setattr(
            layer, "forward", lambda m, x, f=forward: seen.append(type(m).__name__) or f(m, x)
        )
    apply = norm_functions._Normalize.apply
    monkeypatch.setattr(
        norm_functions._Normalize,
        "apply",
        lambda *a, **k: slopes.append(k.get("slope")) or apply(*a, **k),
    )
    xt = tinygan.tensor(x, requires_grad=True)
    out = net(xt)
    (out * out).sum().backward()
    values = [out.numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in net.parameters()]
    values += [b.numpy() for b in net.buffers() if b.dtype.kind == "f"]
    monkeypatch.undo()
    return values, seen, slopes


@pytest.mark.parametrize("training", [True, False])
def test_sequential_fuses_a_norm_and_the_activation_after_it(monkeypatch, training):
    """The norm + activation pairs run as one op (the activation's own forward is not
    called) with the values and gradients of the separate layers, in training and eval."""
    from tinygan.nn import container

    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    fused, seen, slopes = _run_spied(monkeypatch, _norm_activation_net().train(training), x)
    assert seen == ["LeakyReLU"]  # only the LeakyReLU(1.5) ran on its own
    assert slopes == ([0.0, 0.2, None] if training else [0.2])  # eval BN: running statistics
    monkeypatch.setattr(container, "FUSE_NORM_ACTIVATION", False)
    net = _norm_activation_net().train(training)
    separate, seen, slopes = _run_spied(monkeypatch, net, x)
    assert seen == ["ReLU", "LeakyReLU", "LeakyReLU"]
    assert set(slopes) == {None}
    for got, expected in zip(fused, separate):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_sequential_leaves_pairs_with_hooks_or_their_own_forward_unfused():
    class Shifted(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) + 1.0

    seen = []
    hooked = nn.ReLU()
    hooked.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    x = tinygan.randn(2, 3, 4, 4)
    net = nn.Sequential(nn.BatchNorm2d(3), hooked, Shifted(3), nn.ReLU())
    out = net(x).numpy()
    assert seen == [(2, 3, 4, 4)]  # the hook saw the norm's output
    plain = np.maximum(net[0](x).numpy(), 0)
    np.testing.assert_allclose(out, np.maximum(net[2](tinygan.tensor(plain)).numpy(), 0), atol=1e-5)
    assert nn.norm.fused_pair(net[0], net[1]) is None and nn.norm.fused_pair(net[2], net[3]) is None
    assert nn.norm.fused_pair(nn.BatchNorm2d(3), nn.ReLU()) is not None


# ---------------------------------------------------------------- state dicts
def trained_net(seed: int) -> Net:
    tinygan.manual_seed(seed)
    net = Net()
    net(tinygan.randn(4, 1, 5, 5))  # updates BN running stats and num_batches_tracked
    return net


def test_state_dict_round_trip_is_bit_exact():
    source, target = trained_net(0), trained_net(1)
    state = source.state_dict()
    assert int(state["body.1.num_batches_tracked"].item()) == 1
    assert target.load_state_dict(state) == ([], [])
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy()), name
        assert a.data is not b.data
    # plain numpy arrays work too, and Parameters keep their identity
    weight = target.heads["adv"].weight
    target.load_state_dict({k: v.numpy().copy() for k, v in trained_net(2).state_dict().items()})
    assert target.heads["adv"].weight is weight
    assert np.array_equal(weight.numpy(), trained_net(2).heads["adv"].weight.numpy())


def test_load_into_wrong_architecture_reports_everything_and_changes_nothing():
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2))
    target = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    before = {k: (v.numpy().copy(), v._version) for k, v in target.state_dict().items()}
    versions = [t._version for t in [*target.parameters(), *target.buffers()]]
    with pytest.raises(RuntimeError) as info:
        target.load_state_dict(source.state_dict())
    message = str(info.value)
    assert "Sequential" in message
    assert "missing keys: 1.weight, 1.bias, 1.running_mean, 1.running_var" in message
    assert "unexpected keys: 3.weight, 3.bias" in message
    assert "2.weight: shape (2, 8) in the state dict, (3, 8) in the model" in message
    assert "2.bias: shape (2,) in the state dict, (3,) in the model" in message
    for key, value in target.state_dict().items():
        assert np.array_equal(value.numpy(), before[key][0]), key
    assert versions == [t._version for t in [*target.parameters(), *target.buffers()]]
    # strict=False skips missing/unexpected keys but still refuses wrong shapes
    with pytest.raises(RuntimeError, match=r"2.weight: shape \(2, 8\)"):
        target.load_state_dict(source.state_dict(), strict=False)
    partial = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2), nn.ReLU())
    result = partial.load_state_dict({"0.weight": np.zeros((8, 4), np.float32), "x": 1}, False)
    assert result.unexpected_keys == ["x"] and "0.bias" in result.missing_keys
    assert np.all(partial[0].weight.numpy() == 0)


def test_to_device_cpu_keeps_identity():
    net = Net()
    weight = net.heads["adv"].weight
    assert net.to("cpu") is net and net.heads["adv"].weight is weight
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


@pytest.mark.gpu
def test_to_cuda_and_back():
    pytest.importorskip("cupy")
    try:
        tinygan.backend.cupy()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    net = trained_net(0)
    reference = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    weight = net.heads["adv"].weight
    net.to("cuda")
    assert weight.device == "cuda" and net.body[1].running_mean.device == "cuda"
    adv, _ = net(tinygan.randn(2, 1, 5, 5, device="cuda"))
    assert adv.device == "cuda"
    net.to("cpu")
    for k, v in net.state_dict().items():
        assert np.array_equal(v.numpy(), reference[k]) or "running" in k or "num_batches" in k


# ---------------------------------------------------------------- layers vs torch.nn
LAYERS = {
    "linear": (lambda m: m.Linear(6, 4), (3, 6)),
    "linear_3d_nobias": (lambda m: m.Linear(6, 4, bias=False), (2, 3, 6)),
    "conv": (lambda m: m.Conv2d(3, 5, 3, stride=2, padding=1), (2, 3, 9, 9)),
    "conv_dilated_groups": (
        lambda m: m.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2),
        (2, 4, 8, 8),
    ),
    "conv_reflect": (lambda m: m.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (2, 3, 6, 6)),
    "conv_replicate": (
        lambda m: m.Conv2d(3, 4, 3, padding=2, padding_mode="replicate"),
        (1, 3, 5, 6),
    ),
    "conv_transpose": (lambda m: m.ConvTranspose2d(4, 3, 4, stride=2, padding=1), (2, 4, 5, 5)),
    "conv_transpose_groups": (
        lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        (2, 4, 4, 3),
    ),
    "batchnorm1d": (lambda m: m.BatchNorm1d(5), (8, 5)),
    "batchnorm1d_3d": (lambda m: m.BatchNorm1d(5, momentum=0.3), (4, 5, 7)),
    "batchnorm2d": (lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
    "batchnorm2d_cumulative": (lambda m: m.BatchNorm2d(3, momentum=None), (4, 3, 2, 2)),
    "batchnorm2d_plain": (
        lambda m: m.BatchNorm2d(3, affine=False, track_running_stats=False),
        (4, 3, 2, 2),
    ),
    "instancenorm": (lambda m: m.InstanceNorm2d(3), (2, 3, 5, 4)),
    "instancenorm_affine_tracked": (
        lambda m: m.InstanceNorm2d(3, affine=True, track_running_stats=True),
        (2, 3, 5, 4),
    ),
    "layernorm": (lambda m: m.LayerNorm((5, 6)), (3, 5, 6)),
    "layernorm_nobias": (lambda m: m.LayerNorm(6, bias=False), (3, 6)),
    "relu": (lambda m: m.ReLU(), (3, 7)),
    "leaky_relu": (lambda m: m.LeakyReLU(0.2), (3, 7)),
    "prelu": (lambda m: m.PReLU(), (3, 4, 2)),
    "prelu_channels": (lambda m: m.PReLU(4), (3, 4, 2, 2)),
    "elu": (lambda m: m.ELU(0.5), (3, 7)),
    "sigmoid": (lambda m: m.Sigmoid(), (3, 7)),
    "tanh": (lambda m: m.Tanh(), (3, 7)),
    "softplus": (lambda m: m.Softplus(beta=2.0), (3, 7)),
    "upsample_nearest": (lambda m: m.Upsample(scale_factor=2), (2, 3, 3, 4)),
    "upsample_bilinear": (lambda m: m.Upsample(size=(7, 9), mode="bilinear"), (2, 3, 3, 4)),
    "upsample_bilinear_corners": (
        lambda m: m.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        (2, 3, 3, 4),
    ),
    "pixel_shuffle": (lambda m: m.PixelShuffle(2), (2, 8, 3, 3)),
    "reflection_pad": (lambda m: m.ReflectionPad2d((1, 2, 0, 3)), (2, 3, 4, 5)),
    "replication_pad": (lambda m: m.ReplicationPad2d(2), (2, 3, 4, 5)),
    "zero_pad": (lambda m: m.ZeroPad2d((0, 1, 2, 3)), (3, 4, 5)),
    "flatten": (lambda m: m.Flatten(), (2, 3, 4, 5)),
    "unflatten": (lambda m: m.Unflatten(1, (2, 3)), (4, 6)),
    "identity": (lambda m: m.Identity(), (4, 6)),
    "avg_pool": (lambda m: m.AvgPool2d(2), (2, 3, 6, 6)),
    "max_pool": (lambda m: m.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_torch(name):
    make, shape = LAYERS[name]
    tinygan.manual_seed(0)
    ours, theirs = make(nn), make(TNN)
    randomise(ours)
    copy_into_torch(ours, theirs)
    rng = np.random.default_rng(1)
    for mode in ("train", "train", "eval"):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x = rng.standard_normal(shape).astype(np.float32)
        xt, xr = tinygan.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yt, yr = ours(xt), theirs(xr)
        assert yt.shape == tuple(yr.shape), (mode, yt.shape, yr.shape)
        g = rng.standard_normal(yt.shape).astype(np.float32)
        np.testing.assert_allclose(yt.numpy(), yr.detach().numpy(), rtol=1e-4, atol=1e-5)
        (yt * tinygan.tensor(g)).sum().backward()
        (yr * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-4, atol=1e-4)
        for p, q in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-4)
            p.grad, q.grad = None, None
        for (bname, a), b in zip(ours.named_buffers(), theirs.buffers()):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=bname)


def test_conv_transpose_output_size():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    x = tinygan.randn(1, 2, 4, 4)
    assert layer(x).shape == (1, 3, 7, 7)
    assert layer(x, output_size=(8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="output_size"):
        layer(x, output_size=(10, 10))


def test_dropout_and_embedding_and_gradient_reversal():
    x = tinygan.ones(200, 50)
    drop = nn.Dropout(0.3)
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.7)}
    assert (y == 0).mean() == pytest.approx(0.3, abs=0.02)
    assert np.array_equal(drop.eval()(x).numpy(), x.numpy())

    emb = nn.Embedding(10, 3, padding_idx=0)
    assert np.all(emb.weight.numpy()[0] == 0)
    idx = tinygan.tensor([[1, 0], [9, 1]])
    out = emb(idx)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx.numpy()])
    out.sum().backward()
    assert np.all(emb.weight.grad.numpy()[0] == 0) and np.all(emb.weight.grad.numpy()[1] == 2)
    with pytest.raises(TypeError, match="Embedding: indices must be integers"):
        emb(tinygan.tensor([0.5]))

    x = tinygan.randn(3, 2, requires_grad=True)
    grl = nn.GradientReversal(0.5)
    y = grl(x)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    (y * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -1.0)


def test_adain():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    x_hat = (x - mean) / np.sqrt(var + 1e-5)
    scale, bias = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    layer = nn.AdaIN(3)
    out = layer(tinygan.tensor(x), tinygan.tensor(scale), tinygan.tensor(bias))
    expected = x_hat * scale[:, :, None, None] + bias[:, :, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    style = rng.standard_normal((2, 3, 6, 6)).astype(np.float32) * 3 + 1
    s_mean = style.mean(axis=(2, 3), keepdims=True)
    s_std = np.sqrt(style.var(axis=(2, 3), keepdims=True) + 1e-5)
    out = layer(tinygan.tensor(x), tinygan.tensor(style))
    np.testing.assert_allclose(out.numpy(), x_hat * s_std + s_mean, rtol=1e-4, atol=1e-4)
    styled = nn.AdaIN(3, style_dim=7)  # StyleGAN's A: scale starts at 1, bias at 0
    out = styled(tinygan.tensor(x), tinygan.zeros(2, 7))
    np.testing.assert_allclose(out.numpy(), x_hat, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="AdaIN: style of shape"):
        styled(tinygan.tensor(x), tinygan.zeros(2, 5))


# ---------------------------------------------------------------- default initialisation
@pytest.mark.parametrize(
    "make, fan_in",
    [
        (lambda: nn.Linear(256, 512), 256),
        (lambda: nn.Conv2d(64, 128, 3), 64 * 9),
        (lambda: nn.Conv2d(64, 128, 3, groups=4), 16 * 9),
        (lambda: nn.ConvTranspose2d(64, 128, 4), 128 * 16),
    ],
)
def test_linear_and_conv_default_init(make, fan_in):
    layer = make()
    bound = 1 / np.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias rule coincide
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.03)
    assert np.abs(b).max() <= bound and b.std() == pytest.approx(bound / np.sqrt(3), rel=0.3)
    assert w.dtype == np.float32 and w.shape == tuple(make.__call__().weight.shape)


def test_other_default_inits():
    bn = nn.BatchNorm2d(4)
    assert np.all(bn.weight.numpy() == 1) and np.all(bn.bias.numpy() == 0)
    assert np.all(bn.running_var.numpy() == 1) and int(bn.num_batches_tracked.item()) == 0
    instance = nn.InstanceNorm2d(4)
    assert instance.weight is None and instance.running_mean is None
    assert list(instance.state_dict()) == []
    assert np.all(nn.PReLU(3).weight.numpy() == 0.25)
    assert nn.Embedding(1000, 64).weight.numpy().std() == pytest.approx(1.0, rel=0.02)
    ln = nn.LayerNorm(5)
    assert np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64


# ---------------------------------------------------------------- bad input
def test_errors_name_layer_and_shapes_and_change_nothing():
    with pytest.raises(ValueError, match=r"Linear: input of shape \(2, 5\) has 5 features"):
        nn.Linear(4, 3)(tinygan.randn(2, 5))
    with pytest.raises(ValueError, match=r"Conv2d: input of shape \(2, 4, 8, 8\) has 4 channels"):
        nn.Conv2d(3, 8, 3)(tinygan.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d: expected a 4-D .* got shape \(3, 8, 8\)"):
        nn.Conv2d(3, 8, 3)(tinygan.randn(3, 8, 8))
    with pytest.raises(ValueError, match="Linear: input is float64 on cpu but the layer's weights"):
        nn.Linear(4, 3)(tinygan.randn(2, 4, dtype=np.float64))
    with pytest.raises(ValueError, match="ConvTranspose2d: in_channels 3 .* groups 2"):
        nn.ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="LayerNorm: input of shape"):
        nn.LayerNorm(4)(tinygan.randn(2, 5))
    with pytest.raises(ValueError, match="ReflectionPad2d: padding"):
        nn.ReflectionPad2d(4)(tinygan.randn(1, 1, 3, 3))
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected more than 1 value per channel"):
        bn(tinygan.randn(1, 3, 1, 1))
    assert int(bn.num_batches_tracked.item()) == 0
    with pytest.raises(
        ValueError, match=r"BatchNorm1d: expected a 2-D .* got shape \(2, 3, 4, 4\)"
    ):
        nn.BatchNorm1d(3)(tinygan.randn(2, 3, 4, 4))


# ---------------------------------------------------------------- spectral norm
def test_spectral_norm_sigma_is_the_largest_singular_value():
    tinygan.manual_seed(0)
    layer = nn.spectral_norm(nn.Conv2d(8, 16, 3), n_power_iterations=30)
    layer(tinygan.randn(1, 8, 5, 5))
    w = layer.weight_orig.numpy().reshape(16, -1)
    top = np.linalg.svd(w, compute_uv=False)[0]
    hook = next(iter(layer._forward_pre_hooks.values()))
    assert hook.sigma(layer) == pytest.approx(top, rel=1e-4)
    assert np.linalg.svd(layer.weight.numpy().reshape(16, -1), compute_uv=False)[
        0
    ] == pytest.approx(1.0, rel=1e-4)
    assert list(layer.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    assert [n for n, _ in layer.named_parameters()] == ["bias", "weight_orig"]


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda m: m.Linear(6, 4), (3, 6)),
        (lambda m: m.Conv2d(3, 4, 3), (2, 3, 5, 5)),
        (lambda m: m.ConvTranspose2d(3, 4, 3), (2, 3, 4, 4)),
    ],
)
def test_spectral_norm_matches_torch(make, shape):
    ours = nn.spectral_norm(make(nn))
    theirs = TNN.utils.spectral_norm(make(TNN))
    copy_into_torch(ours, theirs)  # same keys: weight_orig, weight_u, weight_v
    rng = np.random.default_rng(0)
    for mode in ("train", "train", "eval"):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x = rng.standard_normal(shape).astype(np.float32)
        xt, xr = tinygan.tensor(x), torch.tensor(x)
        yt, yr = ours(xt), theirs(xr)
        np.testing.assert_allclose(yt.numpy(), yr.detach().numpy(), rtol=1e-4, atol=1e-5)
        yt.sum().backward()
        yr.sum().backward()
        np.testing.assert_allclose(
            ours.weight_orig.grad.numpy(), theirs.weight_orig.grad.numpy(), rtol=1e-3, atol=1e-5
        )
        ours.weight_orig.grad, theirs.weight_orig.grad = None, None
        for name in ("weight_u", "weight_v"):
            np.testing.assert_allclose(
                getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5, atol=1e-6
            )


def test_spectral_norm_updates_u_only_in_training_and_can_be_removed():
    layer = nn.spectral_norm(nn.Linear(5, 4)).eval()
    u = layer.weight_u.numpy().copy()
    layer(tinygan.randn(2, 5))
    assert np.array_equal(layer.weight_u.numpy(), u)
    with pytest.raises(RuntimeError, match="already"):
        nn.spectral_norm(layer)
    weight = layer.weight.numpy().copy()
    nn.remove_spectral_norm(layer)
    assert list(layer.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(layer.weight.numpy(), weight, rtol=1e-6)
    with pytest.raises(ValueError, match="no parameter named 'kernel'"):
        nn.spectral_norm(nn.Linear(2, 2), name="kernel")


# ---------------------------------------------------------------- equalised learning rate
def test_equalized_linear():
    layer = nn.EqualizedLinear(512, 256, bias_init=1.0, lr_multiplier=0.01)
    w = layer.weight.numpy()
    assert w.std() == pytest.approx(100.0, rel=0.01)  # N(0, 1 / lr_multiplier^2) stored
    scale = np.sqrt(2 / 512) * 0.01
    assert layer.weight_scale == pytest.approx(scale)
    np.testing.assert_allclose(layer.effective_weight.numpy(), w * scale, rtol=1e-6)
    assert layer.effective_weight.numpy().std() == pytest.approx(np.sqrt(2 / 512), rel=0.01)
    np.testing.assert_allclose(layer.effective_bias.numpy(), 1.0, rtol=1e-6)
    x = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    expected = x @ (w * scale).T + 1.0
    np.testing.assert_allclose(layer(tinygan.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)
    # the gradient reaching the stored weight is scaled by c too: equalised updates
    xt = tinygan.tensor(x)
    layer(xt).sum().backward()
    np.testing.assert_allclose(
        layer.weight.grad.numpy(), scale * np.tile(x.sum(0), (256, 1)), rtol=1e-4, atol=1e-7
    )


def test_equalized_conv2d():
    layer = nn.EqualizedConv2d(16, 8, 3, padding=1, gain=0.5)
    assert layer.weight.numpy().std() == pytest.approx(1.0, rel=0.05)
    c = 0.5 * np.sqrt(2 / (16 * 9))
    assert layer.weight_scale == pytest.approx(c)
    x = np.random.default_rng(0).standard_normal((2, 16, 5, 5)).astype(np.float32)
    conv = TNN.Conv2d(16, 8, 3, padding=1)
    conv.load_state_dict({"weight": to_torch(layer.weight) * c, "bias": to_torch(layer.bias)})
    np.testing.assert_allclose(
        layer(tinygan.tensor(x)).numpy(),
        conv(torch.tensor(x)).detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    assert layer(tinygan.tensor(x)).shape == (2, 8, 5, 5)
