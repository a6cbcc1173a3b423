"""Image-to-image translation: the pieces pix2pix and CycleGAN share.

- :class:`UNetGenerator` -- pix2pix's encoder-decoder with skip connections (Isola et al. 2017,
  appendix 6.1.1; U-Net: Ronneberger et al. 2015).
- :class:`ResnetGenerator` -- CycleGAN's generator (Zhu et al. 2017, appendix 7.2; after
  Johnson et al. 2016): c7s1-ngf, d2ngf, d4ngf, n x R4ngf, u2ngf, ungf, c7s1-C.
- :class:`PatchDiscriminator` -- the PatchGAN (Isola et al. 2017, section 2.2.2): a conv net
  that classifies every N x N patch; n_layers = 3 gives 70 x 70 patches.
- :class:`ImagePool` -- the history of generated images a discriminator also sees
  (Shrivastava et al. 2017; CycleGAN keeps 50).
- :class:`TranslationLoop` -- the Loop base both share: ``--data`` specs (embedded digits or a
  folder in the pix2pix/CycleGAN layout), held-out inputs for grids, translation grids.
- :func:`translate` -- apply a trained generator to image files (``tinygan translate``).

Weights start from N(0, 0.02^2) as in both papers (``nn.init.dcgan_init_``).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinygan import functions as F
from tinygan import nn
from tinygan.autograd import Tensor
from tinygan.backend import get_array_module, to_device
from tinygan.gans.loop import DataInfo, Loop
from tinygan.gans.plots import save_samples
from tinygan.random import Generator

__all__ = [
    "ImagePool",
    "l1_psnr",
    "PatchDiscriminator",
    "ResnetGenerator",
    "TranslationLoop",
    "UNetGenerator",
    "patch_receptive_field",
    "translate",
    "unet_depth",
]

DIRECTIONS = ("AtoB", "BtoA")


# ---------------------------------------------------------------------------- U-Net
def unet_depth(image_size: int, depth: int | None = None, who: str = "pix2pix") -> int:
    """The U-Net's number of stride-2 down-samplings for ``image_size``.

    Default: the most (at most 8, the paper's 256 px -> 1 x 1) that divide ``image_size``,
    e.g. 32 -> 5, 48 -> 4, 256 -> 8. A given ``depth`` must divide: the skip connections join
    maps of exactly half/double size."""
    if depth is None:
        depth = 0
        while depth < 8 and image_size % 2 ** (depth + 1) == 0:
            depth += 1
        if depth == 0:
            raise ValueError(
                f"{who}: --image-size {image_size} is odd; the U-Net halves it at least once "
                "(use a multiple of 2^depth, e.g. 32 or 256)"
            )
    if depth < 1:
        raise ValueError(f"{who}: --depth must be >= 1, got {depth}")
    if image_size % 2**depth:
        raise ValueError(
            f"{who}: --image-size {image_size} is not divisible by 2^depth = {2**depth} "
            f"(U-Net with --depth {depth}); use a multiple of {2**depth} or a smaller --depth"
        )
    return depth


class UNetGenerator(nn.Module):
    """x (N, in_channels, S, S) -> (N, out_channels, S, S) in [-1, 1]; S divisible by 2^depth.

    Encoder: ``depth`` blocks Conv(4, stride 2) [BN] LeakyReLU(0.2) with ngf * min(2^i, 8)
    channels (C64-C128-C256-C512-C512... at ngf 64); no BN on the first block, nor on the
    innermost one (a 1 x 1 map at batch 1 would be normalised to zero). Decoder: the mirror,
    ReLU ConvTranspose(4, stride 2) BN [Dropout 0.5], each block's input being the previous
    decoder output concatenated with the encoder map of the same size (skip connection);
    dropout in the first ``dropout_blocks`` decoder blocks is the model's only noise (paper
    section 2.2); the last block maps to ``out_channels`` and Tanh.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        ngf: int = 64,
        dropout: float = 0.5,
        dropout_blocks: int = 3,
    ) -> None:
        super().__init__()
        self.depth = depth
        w = [ngf * min(2**i, 8) for i in range(depth)]
        down: list[nn.Module] = [nn.Conv2d(in_channels, w[0], 4, 2, 1)]
        for i in range(1, depth):
            inner = i == depth - 1
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=inner)]
            down.append(nn.Sequential(*layers, *([] if inner else [nn.BatchNorm2d(w[i])])))
        up: list[nn.Module] = []
        for j in range(depth - 1):  # innermost first
            i = depth - 1 - j
            c_in = w[i] * (1 if j == 0 else 2)  # the innermost block has no skip input
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(c_in, w[i - 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(w[i - 1]),
            ]
            if j < dropout_blocks and dropout > 0:
                layers.append(nn.Dropout(dropout))
            up.append(nn.Sequential(*layers))
        last_in = w[0] * (2 if depth > 1 else 1)
        up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(last_in, out_channels, 4, 2, 1),
                                nn.Tanh()))  # fmt: skip
        self.down, self.up = nn.ModuleList(down), nn.ModuleList(up)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """ValueError unless ``shape`` is (N, C, H, W) with H, W divisible by 2^depth."""
        if len(shape) != 4 or shape[-2] % 2**self.depth or shape[-1] % 2**self.depth:
            raise ValueError(
                f"UNetGenerator: input of shape {tuple(shape)} needs H and W divisible by "
                f"2^depth = {2**self.depth} ({self.depth} stride-2 down-samplings)"
            )

    def forward(self, x: Tensor) -> Tensor:
        self.check_shape(x.shape)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for j, block in enumerate(self.up):
            x = block(x if j == 0 else F.concat([skips.pop(), x], axis=1))
        return x


# ---------------------------------------------------------------------------- ResNet G
class ResnetBlock(nn.Module):
    """x + [ReflectionPad 1, Conv 3x3, IN, ReLU, ReflectionPad 1, Conv 3x3, IN](x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's G (Zhu et al. 2017, appendix 7.2): x (N, in_channels, H, W) -> same H, W.

    c7s1-ngf (ReflectionPad 3, Conv 7x7, IN, ReLU); d2ngf, d4ngf (Conv 3x3 stride 2, IN, ReLU);
    ``n_blocks`` residual blocks of 4 ngf channels (6 at 128 px, 9 at 256 px in the paper);
    u2ngf, ungf (ConvTranspose 3x3 stride 2, IN, ReLU); c7s1-out (ReflectionPad 3, Conv 7x7,
    Tanh). Instance norm without affine parameters, as in the paper's code. The up-sampling
    convolutions are given the size of the matching down-sampling input, so any H, W >= 5
    works, odd ones included (33 -> 17 -> 9 -> 17 -> 33).
    """

    min_size = 5  # the 9 x 9... bottleneck must stay >= 2 px for reflection padding and IN

    def __init__(
        self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"ResnetGenerator: n_blocks must be >= 0, got {n_blocks}")
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf),
            nn.ReLU(),
        )  # fmt: skip
        self.down = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU())
                for c in (ngf, 2 * ngf)
            ]
        )
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf) for _ in range(n_blocks)])
        self.up_convs = nn.ModuleList(
            [nn.ConvTranspose2d(c, c // 2, 3, 2, 1) for c in (4 * ngf, 2 * ngf)]
        )
        self.up_norms = nn.ModuleList([nn.InstanceNorm2d(c // 2) for c in (4 * ngf, 2 * ngf)])
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """ValueError unless ``shape`` is (N, C, H, W) with H, W >= 5."""
        if len(shape) != 4 or min(shape[-2:]) < self.min_size:
            raise ValueError(
                f"ResnetGenerator: needs (N, C, H, W) with H, W >= {self.min_size}, "
                f"got {tuple(shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self.check_shape(x.shape)
        x = self.stem(x)
        sizes = []
        for block in self.down:
            sizes.append(x.shape[-2:])
            x = block(x)
        x = self.blocks(x)
        for conv, norm in zip(self.up_convs, self.up_norms):
            x = F.relu(norm(conv(x, output_size=sizes.pop())))
        return self.head(x)


# ---------------------------------------------------------------------------- PatchGAN
def patch_receptive_field(n_layers: int) -> int:
    """Side of the input patch one PatchGAN output sees: 16, 34, 70, 142, 286 for n_layers =
    1..5 (kernels 4; n_layers stride-2 convolutions, then two of stride 1)."""
    r = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        r = (r - 1) * stride + 4
    return r


class PatchDiscriminator(nn.Module):
    """PatchGAN: x (N, C, H, W) -> one logit per patch (N, 1, H', W').

    C64-C128-C256-C512 at ndf 64 and n_layers 3 (Isola et al. 2017, appendix 6.1.2): Conv 4x4
    [norm] LeakyReLU(0.2); stride 2 for the first ``n_layers``, then stride 1; no norm on the
    first; a last Conv 4x4 to 1 channel. ``norm``: "batch" (pix2pix) or "instance" (CycleGAN).
    Output side: ((H / 2^n_layers) - 1) - 1; each output sees :func:`patch_receptive_field`.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"PatchDiscriminator: n_layers must be >= 1, got {n_layers}")
        if norm not in ("batch", "instance"):
            raise ValueError(f"PatchDiscriminator: norm must be batch or instance, got {norm!r}")
        self.n_layers = n_layers
        Norm = nn.BatchNorm2d if norm == "batch" else nn.InstanceNorm2d
        bias = norm == "instance"  # BN has its own shift
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ndf
        for i in range(1, n_layers + 1):
            out, stride = ndf * min(2**i, 8), 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, out, 4, stride, 1, bias=bias), Norm(out), nn.LeakyReLU(0.2)]
            c = out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def output_size(self, size: int) -> int:
        for _ in range(self.n_layers):
            size = size // 2
        return size - 2

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or min(self.output_size(s) for s in x.shape[-2:]) < 1:
            raise ValueError(
                f"PatchDiscriminator: input of shape {x.shape} is too small for n_layers "
                f"{self.n_layers} (needs H, W >= {3 * 2**self.n_layers}); use fewer --n-layers"
            )
        return self.net(x)


# ---------------------------------------------------------------------------- image pool
class ImagePool:
    """The last ``size`` generated images, shown to D instead of the newest ones at random.

    Shrivastava et al. 2017 (section 2.3); CycleGAN (section 4) keeps 50. For each image of a
    batch: while the pool is not full, store it and return it; then, with probability 1/2,
    return a random stored image and store the new one in its place, else return the new
    image. ``size`` 0 turns the pool off. The draws come from the pool's own seeded stream,
    saved with the images by :meth:`state_dict`.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"ImagePool: size must be >= 0, got {size}")
        self.size = size
        self.images: list[Any] = []
        self.rng = Generator(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """images (N, C, H, W) -> (N, C, H, W) drawn as above (detached, no gradient)."""
        data = images.detach().data
        if self.size == 0:
            return Tensor(data)
        out = []
        for image in data:
            if len(self.images) < self.size:
                self.images.append(image.copy())
                out.append(image)
            elif self.rng.uniform(()) < 0.5:
                j = int(self.rng.integers(0, self.size))
                out.append(self.images[j])
                self.images[j] = image.copy()
            else:
                out.append(image)
        return Tensor(get_array_module(data).stack(out))

    def state_dict(self) -> dict[str, Any]:
        images = [to_device(im, "cpu") for im in self.images]
        return {
            "size": self.size,
            "images": np.stack(images) if images else np.zeros((0,), np.float32),
            "rng": self.rng.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any], device: str = "cpu") -> None:
        if int(state["size"]) != self.size:
            raise ValueError(
                f"ImagePool: the state holds a pool of {state['size']}, not {self.size}"
            )
        self.images = [to_device(np.array(im), device) for im in state["images"]]
        self.rng.load_state_dict(state["rng"])


# ---------------------------------------------------------------------------- the loop base
def _channels(x: Any, c: int) -> Any:
    """Grey images repeated to ``c`` = 3 channels (for grids that mix grey and colour)."""
    return x.repeat(c, axis=1) if x.shape[1] == 1 and c == 3 else x


class TranslationLoop(Loop):
    """What pix2pix and CycleGAN share: their data, held-out inputs, grids and translation.

    Batches are ``(x, y)``: (input, target) pairs for pix2pix, unpaired images of domains
    A and B for CycleGAN. ``latent(n)`` draws ``{"x", "y"}`` from the held-out split (test,
    else val, else train), which is what the sample grids and ``tinygan sample`` show.
    """

    layout: str = ""  # "paired" or "unpaired"
    data_kinds = ("image",)

    @classmethod
    def add_shared_arguments(cls, parser: argparse.ArgumentParser, ndf: int) -> None:
        """The options both translation loops have: the PatchGAN's width and depth, Adam's
        betas, and how folder images are loaded."""
        add = parser.add_argument
        add(
            "--ndf",
            type=int,
            default=ndf,
            help=f"D's first-layer channels (default {ndf}; paper 64)",
        )
        layers = "PatchGAN stride-2 layers: 3 = 70x70 patches (default), 2 = 34, 1 = 16"
        add("--n-layers", type=int, default=3, help=layers)
        add("--betas", type=float, nargs=2, default=(0.5, 0.999), metavar=("B1", "B2"),
            help="Adam betas (default 0.5 0.999)")  # fmt: skip
        parser.add_argument(
            "--load-size",
            type=int,
            default=None,
            help="folders: scale images to this square before the random crop to --image-size "
            "(default image-size * 286/256, the papers' jitter; = image-size: no crop)",
        )
        parser.add_argument(
            "--no-flip", dest="flip", action="store_false", help="folders: no random mirroring"
        )

    @classmethod
    def describe_data(cls) -> str:
        if cls.layout == "unpaired":
            return (
                "default (embedded: plain <-> coloured bold digits) or a folder with "
                "trainA/, trainB/ (testA/, testB/)"
            )
        return (
            "default (embedded: masked digit -> digit; default:blur, default:edges) or a "
            "folder of A|B images in train/ (val/, test/)"
        )

    @classmethod
    def build_dataset(cls, config: Mapping[str, Any], split: str = "train") -> tuple[Any, DataInfo]:
        """The ``--data`` spec of ``config`` -> (dataset of (x, y) items, DataInfo)."""
        from tinygan.data import translation as tdata

        spec, size = str(config.get("data") or "default"), int(config.get("image_size", 32))
        channels, seed = config.get("channels"), int(config.get("seed", 0))
        if spec == "default" or spec.startswith("default:"):
            ds = tdata.default_dataset(cls.layout, spec, split, size, channels, seed,
                                       config.get("direction", "AtoB"))  # fmt: skip
            num_classes = 10
        else:
            ds = tdata.folder_dataset(cls.layout, spec, split, size, channels or 3, seed,
                                      config.get("load_size"), config.get("flip", True),
                                      config.get("direction", "AtoB"), who=cls.name)  # fmt: skip
            num_classes = 0
        x, y = ds[0][:2]
        extra = {"layout": cls.layout, "in_channels": int(x.shape[0]), "split": split}
        return ds, DataInfo("image", tuple(y.shape), num_classes, spec, extra)

    @property
    def in_channels(self) -> int:
        return int(self.data.extra.get("in_channels", self.data.shape[0]))

    def held_out(self) -> Any:
        """The held-out dataset of the run's ``--data`` (built once)."""
        if getattr(self, "_held_out", None) is None:
            from tinygan.data.translation import held_out_split

            split = held_out_split(self.layout, str(self.config.get("data") or "default"))
            self._held_out = type(self).build_dataset(self.config, split)[0]
        return self._held_out

    def latent(self, n: int, generator: Generator | None = None) -> dict[str, Any]:
        ds = self.held_out()
        order = (generator or self.rng).permutation(len(ds))
        idx = [int(order[i % len(ds)]) for i in range(n)]
        items = [ds[i] for i in idx]
        return {
            k: to_device(np.stack([it[j] for it in items]), self.device) for j, k in enumerate("xy")
        }

    def translator(self, direction: str | None) -> tuple[nn.Module, int]:
        """(the generator that translates in ``direction`` (None: the loop's own), the number
        of channels of its input images); a ValueError for a direction the loop cannot do."""
        raise NotImplementedError

    def translate_images(
        self, images: Any, direction: str | None = None, batch_size: int = 100
    ) -> np.ndarray:
        """Host images (N, C, H, W) in [-1, 1] -> their translations, in eval mode."""
        G, channels = self.translator(direction)
        if images.ndim != 4 or images.shape[1] != channels:
            raise ValueError(
                f"{self.name}: expected images (N, {channels}, H, W), got {images.shape}"
            )
        out = []
        with self.evaluating():
            for s in range(0, len(images), batch_size):
                x = to_device(np.ascontiguousarray(images[s : s + batch_size]), self.device)
                out.append(G(Tensor(x)).numpy())
        return np.concatenate(out)

    def evaluate(self, n: int, generator: Generator) -> dict[str, Any]:
        """``tinygan eval``: translate (loop's own direction) up to ``n`` held-out inputs. The
        Fréchet distance between evaluation-classifier features of the translations and of
        held-out real targets; on paired data the mean L1 (in [-1, 1] units) and PSNR (dB, on
        [0, 1] pixels) to the targets; on the embedded digits the classifier's accuracy on
        the translations (against the inputs' labels) beside its accuracy on real targets
        -- the papers' "FCN score" idea (scripts/translation_quality.py does more)."""
        from tinygan.data.translation import evaluation_arrays
        from tinygan.metrics import features_and_labels, frechet_distance_features, load_classifier

        data = evaluation_arrays(self.held_out(), n)
        out, y = self.translate_images(data["x"]), data["y"]
        clf = load_classifier()
        (f_out, p_out), (f_y, p_y) = features_and_labels(out, clf), features_and_labels(y, clf)
        result: dict[str, Any] = {"num_translated": int(len(out))}
        result["frechet_distance"] = frechet_distance_features(f_y, f_out)
        if data["paired"]:
            result.update(l1_psnr(out, y))
        if data["x_labels"] is not None:
            result["accuracy"] = float((p_out == data["x_labels"]).mean())
            result["accuracy_real_target"] = float((p_y == data["y_labels"]).mean())
            result["content_ratio"] = result["accuracy"] / max(result["accuracy_real_target"], 1e-9)
        return result

    def grid_columns(self, inputs: Mapping[str, Any]) -> list[Any]:
        """The image columns of a sample grid (arrays (N, C, H, W))."""
        raise NotImplementedError

    def sample_grid(
        self,
        path: str,
        inputs: Mapping[str, Any] | None = None,
        n: int = 64,
        generator: Generator | None = None,
        reference: Any = None,
        nrow: int | None = None,
    ) -> str:
        """A grid of tuples (see :meth:`grid_columns`), ``nrow`` tuples per row (default
        ~ sqrt(2 n / k) for k images per tuple: a grid about twice as wide as high); e.g.
        input | output | target for pix2pix."""
        if inputs is None:
            inputs = self.latent(n, generator or Generator(0))
        with self.evaluating():
            cols = [to_device(c.data if isinstance(c, Tensor) else c, "cpu")
                    for c in self.grid_columns(inputs)]  # fmt: skip
        c = max(col.shape[1] for col in cols)
        cols = [_channels(col, c) for col in cols]
        images = np.stack(cols, axis=1).reshape(-1, *cols[0].shape[1:])
        per_row = nrow or max(1, round(math.sqrt(len(cols[0]) / len(cols) * 2)))
        return save_samples(images, path, nrow=per_row * len(cols))

    def generate(self, inputs: Mapping[str, Any]) -> Tensor:
        G, _ = self.translator(None)
        return G(Tensor(inputs["x"]))


def l1_psnr(out: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean |out - target| (images in [-1, 1]) and the mean per-image PSNR in dB of the same
    images on [0, 1]: 10 log10(1 / MSE)."""
    diff = (np.asarray(out, np.float64) - target) / 2
    mse = np.maximum((diff**2).reshape(len(diff), -1).mean(1), 1e-12)
    return {"l1": float(np.abs(2 * diff).mean()), "psnr_db": float((10 * np.log10(1 / mse)).mean())}


# ---------------------------------------------------------------------------- translate
def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file as it will be decoded (EXIF rotation applied),
    from its header only."""
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        rotated = img.getexif().get(0x0112) in (5, 6, 7, 8)  # orientation: a quarter turn
    return (height, width) if rotated else (width, height)


def translate(
    loop: TranslationLoop, source: str, out_dir: str, direction: str | None = None
) -> list[str]:
    """Translate the image file ``source``, or every image under the folder ``source``, with
    the generator of ``direction``; write one PNG per input under ``out_dir`` (same relative
    path, extension .png) at the input's own size. Every size is checked against the
    generator's strides before anything is written. Returns the written paths."""
    from tinygan.data import find_images
    from tinygan.imageio import load_image, save_image_grid

    G, channels = loop.translator(direction)
    if os.path.isdir(source):
        files = find_images(source)
        names = [os.path.splitext(os.path.relpath(f, source))[0] + ".png" for f in files]
    elif os.path.isfile(source):
        files, names = [source], [os.path.splitext(os.path.basename(source))[0] + ".png"]
    else:
        raise FileNotFoundError(f"translate: --input {source}: no such image file or folder")
    for path in files:
        width, height = image_size(path)
        try:
            G.check_shape((1, channels, height, width))
        except ValueError as e:
            raise ValueError(f"translate: {path} ({width} x {height} px): {e}") from None
    written = []
    with loop.evaluating():
        for path, name in zip(files, names):
            y = G(Tensor(to_device(load_image(path, channels)[None], loop.device)))
            out = os.path.join(out_dir, name)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            written.append(save_image_grid(y.numpy(), out, nrow=1, padding=0))
    return written
