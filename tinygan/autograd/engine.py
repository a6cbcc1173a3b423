"""Backpropagation: walk the graph from the outputs back to the leaves.

1. Order the nodes so that every node comes after the nodes that made its inputs
   (a depth-first topological sort, iterative so deep graphs do not hit Python's recursion
   limit).
2. Visit them in reverse: a node's gradient is complete once every consumer has been
   visited; its ``backward`` turns it into one gradient per input, which is added to the
   input's node (or, for a leaf, to the leaf's total).
3. Without ``create_graph`` the walk runs under ``no_grad`` and records nothing; with it,
   the walk is itself recorded, so its results can be differentiated again.

``tinygan.grad`` uses the same walk but returns the gradients of chosen inputs instead of
accumulating into ``.grad``, and skips every node that cannot reach one of those inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from tinygan.autograd.function import Function
from tinygan.autograd.grad_mode import set_grad_enabled
from tinygan.autograd.tensor import Tensor
from tinygan.backend import get_array_module


def _as_list(x: Tensor | Sequence[Tensor] | None) -> list | None:
    if x is None:
        return None
    return [x] if isinstance(x, Tensor) else list(x)


def _root_grads(outputs: list[Tensor], grads: list | None, where: str) -> list[Tensor]:
    if grads is None:
        grads = [None] * len(outputs)
    if len(grads) != len(outputs):
        raise ValueError(f"{where}: {len(outputs)} outputs but {len(grads)} output gradients")
    result = []
    for out, g in zip(outputs, grads):
        if not out.requires_grad:
            raise RuntimeError(
                f"{where}: an output of shape {out.shape} does not require grad and has no grad_fn"
            )
        if g is None:
            if out.size != 1:
                raise RuntimeError(
                    f"{where}: grad can be implicitly created only for one-element outputs; "
                    f"got shape {out.shape}, pass a gradient of that shape"
                )
            g = Tensor._wrap(get_array_module(out.data).ones(out.shape, dtype=out.dtype))
        elif not isinstance(g, Tensor):
            g = Tensor(g)
        if g.shape != out.shape:
            raise ValueError(
                f"{where}: gradient of shape {g.shape} given for an output of shape {out.shape}"
            )
        result.append(g)
    return result


def _topological_order(roots: list[Function]) -> list[Function]:
    order: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if isinstance(p, Function) and id(p) not in visited:
                stack.append((p, False))
    return order


def _nodes_reaching(order: list[Function], target_ids: set[int]) -> set[int]:
    """Ids of the nodes from which some target (leaf or node) can be reached."""
    reaching: set[int] = set()
    for node in order:  # parents come before children
        for p in node.parents:
            if p is not None and (id(p) in target_ids or id(p) in reaching):
                reaching.add(id(node))
                break
    return reaching


def _add(table: dict, key: int, owner: object, grad: Tensor, on_arrays: bool) -> None:
    """Sum the gradients reaching one node or leaf: entry [owner, sum, owned].

    With a graph being recorded (create_graph) the sum is a tinygan op. At first order it is
    taken on the arrays: the first sum makes a fresh array (``owned``), and later ones add
    into it in place. Gradients arriving here may share one array (Add's backward hands the
    same one to both inputs), so only an array made here is ever written to.
    """
    entry = table.get(key)
    if entry is None:
        table[key] = [owner, grad, False]
    elif not on_arrays:
        entry[1] = entry[1] + grad
    elif entry[2]:
        entry[1].data += grad.data
    else:
        entry[1], entry[2] = Tensor._wrap(entry[1].data + grad.data), True


def _fit(grad: Tensor, shape: tuple, dtype: np.dtype, node: Function) -> Tensor:
    if grad.shape != shape:
        raise RuntimeError(
            f"{type(node).__name__}.backward returned a gradient of shape {grad.shape} "
            f"for an input of shape {shape}"
        )
    return grad if grad.dtype == dtype else grad.astype(dtype)


def _run(
    outputs: list[Tensor],
    out_grads: list[Tensor],
    retain_graph: bool,
    create_graph: bool,
    targets: set[int] | None,
) -> tuple[dict, dict]:
    """The walk. Returns (leaf id -> [leaf, grad], target node id -> grad)."""
    node_grads: dict[int, list] = {}
    leaf_grads: dict[int, list] = {}
    captured: dict[int, Tensor] = {}
    for out, g in zip(outputs, out_grads):
        if out._node is None:
            _add(leaf_grads, id(out), out, g, not create_graph)
        else:
            _add(node_grads, id(out._node), out._node, g, not create_graph)
    order = _topological_order([o._node for o in outputs if o._node is not None])
    useful = None if targets is None else _nodes_reaching(order, targets)
    with set_grad_enabled(create_graph):
        for node in reversed(order):
            entry = node_grads.pop(id(node), None)
            if entry is None:
                continue
            grad = entry[1]
            if node.hooks:
                for hook in node.hooks:
                    replaced = hook(grad)
                    grad = grad if replaced is None else replaced
            if targets is not None:
                if id(node) in targets:
                    captured[id(node)] = grad
                if id(node) not in useful:
                    continue
                node.needs_input_grad = tuple(
                    p is not None and (id(p) in targets or id(p) in useful) for p in node.parents
                )
            else:
                node.needs_input_grad = tuple(p is not None for p in node.parents)
            input_grads = node.backward(grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(node.parents):
                raise RuntimeError(
                    f"{type(node).__name__}.backward returned {len(input_grads)} gradients "
                    f"for {len(node.parents)} inputs"
                )
            for parent, needed, g in zip(node.parents, node.needs_input_grad, input_grads):
                if g is None or not needed:
                    continue
                if isinstance(parent, Function):
                    g = _fit(g, parent.out_shape, parent.out_dtype, node)
                    _add(node_grads, id(parent), parent, g, not create_graph)
                else:
                    g = _fit(g, parent.shape, parent.dtype, node)
                    _add(leaf_grads, id(parent), parent, g, not create_graph)
            if not retain_graph:
                node.release()
    for entry in leaf_grads.values():
        leaf, grad = entry[0], entry[1]
        if leaf._hooks:
            for hook in leaf._hooks:
                replaced = hook(grad)
                grad = grad if replaced is None else replaced
            if grad is not entry[1]:
                entry[1], entry[2] = grad, False
    return leaf_grads, captured


def backward(
    outputs: Tensor | Sequence[Tensor],
    grad_outputs: Sequence | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate the gradients of ``outputs`` into ``.grad`` of every leaf requiring grad."""
    outputs = _as_list(outputs)
    out_grads = _root_grads(outputs, _as_list(grad_outputs), "backward")
    retain = create_graph if retain_graph is None else retain_graph
    leaf_grads, _ = _run(outputs, out_grads, retain, create_graph, targets=None)
    for entry in leaf_grads.values():
        leaf = entry[0]
        if create_graph:
            leaf.grad = entry[1] if leaf.grad is None else leaf.grad + entry[1]
        elif leaf.grad is None:  # an array of its own: gradients may share one
            owned = entry[2] or _held_by_entry_alone(entry)
            leaf.grad = Tensor._wrap(entry[1].data if owned else entry[1].data.copy())
        else:
            leaf.grad = Tensor._wrap(leaf.grad.data + entry[1].data)


def _held_by_entry_alone(entry: list) -> bool:
    """Whether the gradient in ``entry`` (a leaf's [leaf, grad, owned]) is a NumPy array
    that nothing else can reach, so that it can become the leaf's .grad without a copy.

    A gradient reaching a leaf may be shared: Add's backward hands one Tensor to both of
    its inputs, a pass-through op hands on the caller's output gradient, a slice's or a
    broadcast's gradient is a view of a larger array, a hook may have kept it. So the Tensor
    must be held by this entry alone, its array by the Tensor alone, and the memory must be
    that array's own or, for a view over the whole of a base array (most ops return their
    result reshaped), the base's, held by the view alone. It must be writable and
    C-contiguous, as the copy it replaces would be. "Held alone" is a reference count
    of 2: the holder plus getrefcount's own argument (loaded from a list or an attribute,
    which takes a reference in every CPython). PyTorch's AccumulateGrad makes the same check
    before it takes a gradient over. Saves a copy of every leaf's gradient, every step.
    """
    return (
        hasattr(sys, "getrefcount")
        and sys.getrefcount(entry[1]) == 2
        and type(entry[1].data) is np.ndarray
        and entry[1].data.flags.writeable
        and entry[1].data.flags.c_contiguous  # as a copy would be
        and sys.getrefcount(entry[1].data) == 2
        and (entry[1].data.flags.owndata or _whole_view_held_alone(entry[1].data))
    )


def _whole_view_held_alone(view: np.ndarray) -> bool:
    """A view spanning all of its base array, an ndarray that owns its memory and that only
    the view holds (the base's count: the view's reference plus getrefcount's argument)."""
    return (
        type(view.base) is np.ndarray
        and view.base.flags.owndata
        and view.base.nbytes == view.nbytes
        and sys.getrefcount(view.base) == 2
    )


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs), returned instead of accumulated, as ``torch.autograd.grad``.

    With ``create_graph=True`` the returned gradients are part of the graph, so a loss
    built from them (a gradient penalty) can be backpropagated to the weights.
    """
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    for t in inputs:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError("grad: every input must be a Tensor that requires grad")
    keys = [id(t) if t._node is None else id(t._node) for t in inputs]
    out_grads = _root_grads(outputs, _as_list(grad_outputs), "grad")
    retain = create_graph if retain_graph is None else retain_graph
    leaf_grads, captured = _run(outputs, out_grads, retain, create_graph, targets=set(keys))
    results: list[Tensor | None] = []
    for t, key in zip(inputs, keys):
        g = leaf_grads[key][1] if key in leaf_grads else captured.get(key)
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: an input of shape {t.shape} is not reached from the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            g = Tensor._wrap(g.data)
        results.append(g)
    return tuple(results)
