"""tinygan: a from-scratch reverse-mode autodiff engine for GANs, on NumPy and CuPy.

import tinygan
x = tinygan.randn(4, 3, requires_grad=True)
loss = (x * x).sum()
loss.backward()          # x.grad == 2 x
"""

import os
import sys

if "numpy" not in sys.modules:  # OpenBLAS reads these when NumPy loads it (_openblas.py)
    from tinygan import _openblas

    os.environ.update(_openblas.defaults(os.environ))

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
