"""Shape ops: reshape, transpose, broadcast and its adjoint sum_to, indexing, concat, pad, flip.

Each backward is the op's adjoint, expressed with another op of this file (reshape ↔
reshape, broadcast_to ↔ sum_to, getitem ↔ index_add, pad ↔ pad_adjoint, concat ↔ getitem),
so every shape op is differentiable to any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygan.autograd import Function, Tensor
from tinygan.backend import cuda_kernels, kernel_runner

# ---------------------------------------------------------------- reshape / transpose


class Reshape(Function):
    def forward(self, x: Any, shape: tuple[int, ...]) -> Any:
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {x.shape} into {shape}") from None

    def backward(self, grad: Tensor) -> Tensor:
        return reshape(grad, self.in_shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """The same values in another shape (one dimension may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


class Transpose(Function):
    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        self.axes = axes
        return x.transpose(axes)

    def backward(self, grad: Tensor) -> Tensor:
        return transpose(grad, *np.argsort(self.axes))


def transpose(x: Tensor, *axes: Any) -> Tensor:
    """Permute axes as ``numpy.transpose`` (no axes: reverse them)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    axes = tuple(range(x.ndim))[::-1] if not axes else tuple(int(a) % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation for shape {x.shape}")
    if axes == tuple(range(x.ndim)):
        return x
    return Transpose.apply(x, axes=axes)


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, *axes)


def _axis(axis: int, ndim: int, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def squeeze(x: Tensor, axis: int | Sequence[int] | None = None) -> Tensor:
    """Remove axes of length one (all of them when ``axis`` is None)."""
    if axis is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    axes = {_axis(a, x.ndim, "squeeze") for a in ((axis,) if isinstance(axis, int) else axis)}
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {x.shape} has length {x.shape[a]}, not 1")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of length one at ``axis``."""
    axis = _axis(axis, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one (``flatten(x, 1)`` keeps the batch axis)."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = _axis(start_axis, x.ndim, "flatten"), _axis(end_axis, x.ndim, "flatten")
    merged = int(np.prod(x.shape[start : end + 1]))
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


# ---------------------------------------------------------------- broadcasting


def _broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {' and '.join(map(str, shapes))} do not broadcast"
        ) from None


class BroadcastTo(Function):
    def forward(self, x: Any, shape: tuple[int, ...]) -> Any:
        self.in_shape = x.shape
        return self.xp.broadcast_to(x, shape)

    def backward(self, grad: Tensor) -> Tensor:
        return sum_to(grad, self.in_shape)


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """A read-only broadcast view of ``x`` with ``shape``; the gradient is summed back."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if _broadcast_shape("broadcast_to", x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast {x.shape} to {shape}")
    return BroadcastTo.apply(x, shape=shape)


def expand(x: Tensor, *shape: int) -> Tensor:
    """``broadcast_to`` with PyTorch's name; -1 keeps a dimension."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    full = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return broadcast_to(x, full)


def sum_to_array(xp: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """Sum an array over the axes that broadcasting added or stretched, giving ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


class SumTo(Function):
    def forward(self, x: Any, shape: tuple[int, ...]) -> Any:
        self.in_shape = x.shape
        return sum_to_array(self.xp, x, shape)

    def backward(self, grad: Tensor) -> Tensor:
        return broadcast_to(grad, self.in_shape)


def sum_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """The adjoint of broadcasting: sum ``x`` down to ``shape``."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape=shape)


# ---------------------------------------------------------------- indexing


def _normalise_index(index: Any) -> Any:
    """Tensors inside an index become their arrays (integer or boolean masks)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


class GetItem(Function):
    def forward(self, x: Any, index: Any) -> Any:
        self.in_shape, self.index = x.shape, index
        out = x[index]
        return out if isinstance(out, self.xp.ndarray) else self.xp.asarray(out)

    def backward(self, grad: Tensor) -> Tensor:
        return index_add(grad, self.in_shape, self.index)


class IndexAdd(Function):
    """zeros(shape) with ``values`` added at ``index`` (repeated indices accumulate)."""

    def forward(self, values: Any, shape: tuple[int, ...], index: Any) -> Any:
        self.index = index
        out = self.xp.zeros(shape, dtype=values.dtype)
        if self.xp is np:
            np.add.at(out, index, values)
        else:
            self.xp.add.at(out, index, values)
        return out

    def backward(self, grad: Tensor) -> Tensor:
        return GetItem.apply(grad, index=self.index)


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: basic slicing and integer/boolean array indexing, differentiable."""
    index = _normalise_index(index)
    try:
        return GetItem.apply(x, index=index)
    except IndexError as exc:
        raise IndexError(f"getitem: index {index!r} invalid for shape {x.shape}: {exc}") from None


def index_add(values: Tensor, shape: tuple[int, ...], index: Any) -> Tensor:
    """The adjoint of ``getitem``: scatter ``values`` into zeros of ``shape`` at ``index``."""
    return IndexAdd.apply(values, shape=tuple(shape), index=_normalise_index(index))


# ---------------------------------------------------------------- joining and splitting


class Concat(Function):
    def forward(self, *arrays: Any, axis: int) -> Any:
        self.axis = axis
        self.bounds = np.cumsum([0] + [a.shape[axis] for a in arrays])
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, grad: Tensor) -> tuple[Tensor | None, ...]:
        lead = (slice(None),) * self.axis
        return tuple(
            getitem(grad, lead + (slice(int(a), int(b)),)) if needed else None
            for needed, a, b in zip(self.needs_input_grad, self.bounds[:-1], self.bounds[1:])
        )


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must agree."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    axis = _axis(axis, tensors[0].ndim, "concat")
    first = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(first, t.shape)) if i != axis
        ):
            raise ValueError(f"concat: shapes {first} and {t.shape} differ outside axis {axis}")
    return Concat.apply(*tensors, axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: shapes {tensors[0].shape} and {t.shape} differ")
    axis = _axis(axis, tensors[0].ndim + 1, "stack")
    return concat([unsqueeze(t, axis) for t in tensors], axis)


def split(x: Tensor, sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split into pieces of length ``sections`` (an int) or of the given lengths (a list)."""
    axis = _axis(axis, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(sections, int):
        if sections <= 0:
            raise ValueError(f"split: section length must be positive, got {sections}")
        sizes = [sections] * (n // sections) + ([n % sections] if n % sections else [])
    else:
        sizes = list(sections)
        if sum(sizes) != n:
            raise ValueError(
                f"split: lengths {sizes} do not add up to {n} (axis {axis} of {x.shape})"
            )
    lead, start, pieces = (slice(None),) * axis, 0, []
    for size in sizes:
        pieces.append(getitem(x, lead + (slice(start, start + size),)))
        start += size
    return pieces


def chunk(x: Tensor, chunks: int, axis: int = 0) -> list[Tensor]:
    """Split into ``chunks`` nearly equal pieces (the last may be smaller)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[_axis(axis, x.ndim, "chunk")]
    return split(x, -(-n // chunks), axis)


# ---------------------------------------------------------------- padding and flipping

PAD_MODES = ("constant", "reflect", "replicate")


def _pad_width(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """NumPy's pad_width: an int, one (before, after) pair for all axes, or a pair per axis."""
    widths = np.asarray(pad_width, dtype=np.int64)
    if widths.shape in ((), (1,), (2,), (1, 2)):
        widths = np.broadcast_to(widths, (ndim, 2))
    elif widths.shape != (ndim, 2):
        raise ValueError(f"pad: pad_width of shape {widths.shape} does not fit {ndim} axes")
    return tuple((int(a), int(b)) for a, b in widths)


def _reflect_2d_kernel(x: Any, widths: tuple, mode: str) -> tuple[Any, tuple] | None:
    """(runner, (left, right, top, bottom)) when kernels/reflection_pad.cu can do this pad:
    reflection of the last two axes only, float32; else None."""
    runner = kernel_runner(x) if mode == "reflect" and x.ndim >= 2 else None
    if runner is None or any(w != (0, 0) for w in widths[:-2]):
        return None
    (top, bottom), (left, right) = widths[-2:]
    return runner, (left, right, top, bottom)


class Pad(Function):
    def forward(self, x: Any, widths: tuple, mode: str, value: float) -> Any:
        self.widths, self.mode = widths, mode
        kernel = _reflect_2d_kernel(x, widths, mode)
        if kernel is not None:
            return cuda_kernels.reflection_pad2d_gpu(x, kernel[1], kernel[0])
        if mode == "constant":
            return self.xp.pad(x, widths, mode="constant", constant_values=value)
        return self.xp.pad(x, widths, mode="reflect" if mode == "reflect" else "edge")

    def backward(self, grad: Tensor) -> Tensor:
        return PadAdjoint.apply(grad, widths=self.widths, mode=self.mode)


class PadAdjoint(Function):
    """Sum a padded array's values back onto the unpadded positions they were copied from."""

    def forward(self, g: Any, widths: tuple, mode: str) -> Any:
        self.widths, self.mode = widths, mode
        kernel = _reflect_2d_kernel(g, widths, mode)
        if kernel is not None:  # a gather: each pixel sums the positions that mirror onto it
            return cuda_kernels.reflection_pad2d_backward_gpu(g, kernel[1], kernel[0])
        for axis, (before, after) in enumerate(widths):
            if before == 0 and after == 0:
                continue
            n = g.shape[axis] - before - after

            def along(start: int, stop: int, step: int = 1, axis: int = axis) -> tuple:
                return (slice(None),) * axis + (slice(start, stop, step),)

            core = g[along(before, before + n)].copy()  # contiguous, in x's own layout
            if mode == "reflect":  # position before - j holds core[j]; reflection skips the edge
                core[along(1, before + 1)] += g[
                    along(before - 1, None, -1) if before else along(0, 0)
                ]
                core[along(n - 1 - after, n - 1)] += g[along(g.shape[axis] - 1, before + n - 1, -1)]
            elif mode == "replicate":
                core[along(0, 1)] += g[along(0, before)].sum(axis=axis, keepdims=True)
                core[along(n - 1, n)] += g[along(before + n, None)].sum(axis=axis, keepdims=True)
            g = core
        return self.xp.ascontiguousarray(g)

    def backward(self, grad: Tensor) -> Tensor:
        return Pad.apply(grad, widths=self.widths, mode=self.mode, value=0.0)


def pad(x: Tensor, pad_width: Any, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad with a constant, a reflection (edge not repeated) or a replication of the edge.

    ``pad_width`` follows NumPy: an int, one ``(before, after)`` pair for every axis, or one
    pair per axis, e.g. ``((0, 0), (0, 0), (1, 1), (1, 1))`` pads H and W of NCHW by 1.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    try:
        widths = _pad_width(pad_width, x.ndim)
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit shape {x.shape}") from None
    for axis, (before, after) in enumerate(widths):
        if before < 0 or after < 0:
            raise ValueError(f"pad: negative padding {widths[axis]} on axis {axis}")
        if mode == "reflect" and (before >= x.shape[axis] or after >= x.shape[axis]):
            raise ValueError(
                f"pad: reflect padding {widths[axis]} must be smaller than axis {axis} of {x.shape}"
            )
        if mode == "replicate" and x.shape[axis] == 0 and (before or after):
            raise ValueError(f"pad: cannot replicate an empty axis {axis} of {x.shape}")
    if not any(b or a for b, a in widths):
        return x
    return Pad.apply(x, widths=widths, mode=mode, value=value)


class Flip(Function):
    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        self.axes = axes
        return self.xp.flip(x, axes).copy()

    def backward(self, grad: Tensor) -> Tensor:
        return Flip.apply(grad, axes=self.axes)


def flip(x: Tensor, axis: int | Sequence[int] | None = None) -> Tensor:
    """Reverse the order of elements along ``axis`` (all axes when None)."""
    axes = (
        tuple(range(x.ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    )
    return Flip.apply(x, axes=tuple(_axis(a, x.ndim, "flip") for a in axes))
