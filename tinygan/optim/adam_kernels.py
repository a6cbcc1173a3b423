"""Adam's update on the CPU in one pass, compiled with Numba (see adam.py for the formula).

adam.py's array form makes about a dozen passes over each parameter (two moments, the
square, the square root, the denominator, the step) with a temporary. This loop reads p, g,
m, v once and writes them once, element by element, in the same order of operations and in
the parameter's dtype (the scalars are passed in that dtype, as NumPy's float32 passes keep
them), so it gives adam.py's results to the last bit. DCGAN's 6.4 M parameters per step:
see benchmarks/NOTES.md (fifth session).

fastmath is off: it would let LLVM reorder the arithmetic and assume there are no NaNs, and
a NaN gradient must reach the weights so that a diverging run is stopped (trainer's NaN stop).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from tinygan.functions.winograd_kernels import one_at_a_time  # (also starts the pool)

# Below this many elements one thread is faster than waking the pool (biases, norms, MLPs).
PARALLEL_MIN = 1 << 16


def _loop(parallel: bool) -> Any:
    """The update loop for one threading choice; ``span`` (prange or range) also keeps the
    two variants apart in Numba's disk cache (see activation_kernels._loops)."""
    span = prange if parallel else range

    @numba.njit(parallel=parallel, cache=True)
    def update(p, g, m, v, v_max, b1, b2, c1, c2, wd, root, eps, step, amsgrad):  # noqa: ANN001, ANN202
        for i in span(p.size):
            grad = g[i]
            if wd != 0:  # Adam's L2 decay (AdamW decays p before this loop)
                grad = p[i] * wd + grad
            m[i] = m[i] * b1 + grad * c1
            v[i] = v[i] * b2 + (grad * grad) * c2
            second = v[i]
            if amsgrad:
                second = max(v_max[i], second)
                v_max[i] = second
            p[i] += m[i] / (np.sqrt(second) / root + eps) * step

    return update


_SERIAL = _loop(False)
_PARALLEL = one_at_a_time(_loop(True))


def usable(p: Any, g: Any, *moments: Any) -> bool:
    """NumPy float32/float64 parameter, gradient and moments of one dtype, the parameter
    and moments contiguous (the loop updates them through flat views)."""
    arrays = (p, g, *moments)
    return (
        all(type(a) is np.ndarray and a.dtype == p.dtype for a in arrays)
        and p.dtype in (np.float32, np.float64)
        and all(a.flags.c_contiguous for a in (p, *moments))
    )


def update(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    v_max: np.ndarray | None,
    betas: tuple[float, float],
    wd: float,
    bias_correction: tuple[float, float],
    lr: float,
    eps: float,
) -> None:
    """One Adam step on p (in place) and its moments m, v (and v_max for amsgrad).

    ``bias_correction`` = (1 − b1^t, sqrt(1 − b2^t)); ``wd`` is Adam's L2 decay (0 for AdamW).
    """
    t = p.dtype.type
    g = np.ascontiguousarray(g)
    amsgrad = v_max is not None
    loop = _PARALLEL if p.size >= PARALLEL_MIN else _SERIAL
    loop(
        p.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        (v_max if amsgrad else m).reshape(-1),
        t(betas[0]),
        t(betas[1]),
        t(1 - betas[0]),  # computed as NumPy's passes see them: in float64, then rounded
        t(1 - betas[1]),
        t(wd),
        t(bias_correction[1]),
        t(eps),
        t(-lr / bias_correction[0]),
        amsgrad,
    )
