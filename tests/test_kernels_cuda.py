"""The kernels of kernels/*.cu on a real GPU: the device-agnostic tests of test_kernels_host.py
run again with the CuPy runner (NVRTC-compiled kernels), against the same NumPy references.

Skipped as a whole where CuPy or a GPU is missing. That every .cu compiles with nvcc (warnings
as errors) is checked by kernels/check_nvcc.sh, which .ci/run runs wherever nvcc exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
try:
    _gpus = cupy.cuda.runtime.getDeviceCount()
except Exception:  # CuPy raises its own error types when there is no driver
    _gpus = 0
if _gpus == 0:
    pytest.skip("CuPy is installed but no GPU is usable", allow_module_level=True)

from test_kernels_host import (  # noqa: E402  (only once a GPU is known to exist)
    grid_cap,
    test_batch_norm,
    test_batch_norm_against_torch,
    test_bias_act,
    test_bias_act_without_bias,
    test_bias_grad,
    test_col2im,
    test_col2im_output_padding,
    test_helpers_reject_bad_input,
    test_im2col,
    test_instance_norm,
    test_instance_norm_against_torch,
    test_reflection_pad,
    test_reflection_pad_rejects_large_padding,
    test_upsample_nearest,
)

from tinygan.backend import cuda_kernels as ck  # noqa: E402

pytestmark = pytest.mark.gpu

__all__ = [  # re-exported so that pytest collects them here, with this module's runner
    "grid_cap",
    "test_batch_norm",
    "test_batch_norm_against_torch",
    "test_bias_act",
    "test_bias_act_without_bias",
    "test_bias_grad",
    "test_col2im",
    "test_col2im_output_padding",
    "test_helpers_reject_bad_input",
    "test_im2col",
    "test_instance_norm",
    "test_instance_norm_against_torch",
    "test_reflection_pad",
    "test_reflection_pad_rejects_large_padding",
    "test_upsample_nearest",
]


@pytest.fixture
def runner() -> Any:
    return ck.GPU


def test_every_kernel_compiles_with_nvrtc() -> None:
    """Each kernel compiles, loads, and can run blocks as large as the launch helpers use."""
    for file in sorted(p.name for p in ck.KERNEL_DIR.glob("*.cu")):
        for name in ck.kernel_signatures(file):
            kernel = ck.get_kernel(file, name)
            assert kernel.max_threads_per_block >= max(ck.BLOCK, ck.REDUCE_BLOCK), name


def test_large_launch_matches_numpy() -> None:
    """A size beyond MAX_BLOCKS * BLOCK, so the grid-stride loop runs on the real grid too."""
    x = cupy.random.standard_normal((8, 64, 48, 48), dtype=np.float32)
    y = ck.upsample_nearest2d_gpu(x, 2)
    np.testing.assert_array_equal(y.get(), x.get().repeat(2, axis=2).repeat(2, axis=3))
