"""tinygan.backend.host_memory: after ``import tinygan``, a large array freed and allocated
again reuses the process's pages (no page faults), unless the user tunes malloc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tinygan.backend import host_memory

_PROBE = """
import resource
import numpy as np
import tinygan
for i in range(5):
    if i == 1:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(16 * 2**20, np.float32)  # 64 MB: above glibc's largest mmap threshold
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def _faults(extra_env: dict) -> int:
    env = {k: v for k, v in os.environ.items() if k not in host_memory._USER_SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**env, **extra_env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_arrays_keep_their_pages():
    kept = _faults({})
    # with glibc's defaults each 64 MB array comes as fresh pages again (16384 faults of
    # 4 KiB, fewer with huge pages)
    handed_back = _faults({"TINYGAN_MALLOC": "default"})
    assert kept < 500 < handed_back


def test_user_settings_win():
    assert not host_memory.keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
    assert not host_memory.keep_freed_memory({"MALLOC_MMAP_MAX_": "65536"})
    assert not host_memory.keep_freed_memory({"TINYGAN_MALLOC": "default"})
