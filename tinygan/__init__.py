"""tinygan: a from-scratch reverse-mode autodiff engine for GANs, on NumPy and CuPy.

import tinygan
x = tinygan.randn(4, 3, requires_grad=True)
loss = (x * x).sum()
loss.backward()          # x.grad == 2 x
"""

import os
import sys

# OpenBLAS's threads spin for about 0.1 s after each product (2^28 cycles) before they sleep.
# tinygan runs its Numba loops and single-threaded NumPy passes between products, and the
# spinning thread took a core from them: on this 2-core machine the DCGAN step took 1.2-1.3
# s with the default and 0.95-1.0 s with 2^18 cycles (about 0.1 ms, still long enough to
# keep the threads awake across an MLP step's back-to-back small products; 2^6 made that
# step 20-50 % slower). OpenBLAS reads this once, when NumPy loads it, so it is set only if
# NumPy is not loaded yet and the user has not set it (benchmarks/NOTES.md, item 17).
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")

from tinygan import functions
from tinygan.autograd import (
    Function,
    Tensor,
    backward,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from tinygan.autograd.creation import (
    arange,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from tinygan.backend.host_memory import keep_freed_memory
from tinygan.functions import concat, stack, where
from tinygan.random import Generator, default_generator, manual_seed

keep_freed_memory()  # no fresh, zeroed pages for every step's large arrays (host_memory.py)

float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"

__all__ = [
    "Function", "Generator", "Tensor", "arange", "backward", "concat", "default_generator",
    "enable_grad", "float32", "float64", "full", "full_like", "functions", "grad",
    "is_grad_enabled", "manual_seed", "no_grad", "ones", "ones_like", "rand", "rand_like",
    "randn", "randn_like", "set_grad_enabled", "stack", "tensor", "where", "zeros", "zeros_like",
]  # fmt: skip
