"""tinygan/_openblas.py: the OpenBLAS variables set before NumPy loads, and only then."""

import os
import subprocess
import sys

import pytest

from tinygan import _openblas

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl

processor\t: 1
vendor_id\t: AuthenticAMD
"""


@pytest.mark.parametrize(
    "vendor, family, flags, expected",
    [
        ("AuthenticAMD", "25", "avx2 fma avx512f avx512bw", True),  # Zen 4
        ("AuthenticAMD", "25", "avx2 fma", False),  # Zen 3: OpenBLAS picks AVX2 itself
        ("AuthenticAMD", "26", "avx2 avx512f", False),  # Zen 5 (full-width AVX-512): unmeasured
        ("GenuineIntel", "6", "avx2 avx512f", False),  # Skylake-X: its own kernels
        ("AuthenticAMD", "25", "avx2 avx512fp16", False),  # a flag name that only starts so
    ],
)
def test_zen4_is_told_apart_from_its_neighbours(vendor, family, flags, expected):
    text = f"vendor_id\t: {vendor}\ncpu family\t: {family}\nflags\t\t: {flags}\n"
    assert _openblas.is_zen4(text) is expected


def test_only_the_first_processor_block_is_read():
    assert _openblas.is_zen4(ZEN4)
    assert not _openblas.is_zen4("vendor_id\t: GenuineIntel\n\n" + ZEN4)
    assert not _openblas.is_zen4("")  # no /proc/cpuinfo


def test_defaults_leave_the_users_variables_alone():
    assert _openblas.defaults({}, ZEN4) == {
        "OPENBLAS_THREAD_TIMEOUT": "18",
        "OPENBLAS_CORETYPE": "Haswell",
    }
    assert _openblas.defaults({}, "") == {"OPENBLAS_THREAD_TIMEOUT": "18"}
    user = {"OPENBLAS_CORETYPE": "SkylakeX", "OPENBLAS_THREAD_TIMEOUT": "25"}
    assert _openblas.defaults(user, ZEN4) == {}


def _after_import(code: str, env: dict) -> list[str]:
    """OPENBLAS_THREAD_TIMEOUT, OPENBLAS_CORETYPE and OpenBLAS's kernel family as a fresh
    process sees them after ``code``."""
    names = ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    show = (
        "; import os; from threadpoolctl import threadpool_info"
        f"; print(*[os.environ.get(n, 'unset') for n in {names!r}])"
        "; print(*[i['architecture'] for i in threadpool_info()"
        " if i['internal_api'] == 'openblas'][:1])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code + show], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


ON_ZEN4 = _openblas.is_zen4(_openblas.read_cpuinfo())
OURS = "Haswell" if ON_ZEN4 else "unset"


@pytest.mark.parametrize(
    "code, env, timeout, coretype",
    [
        ("import tinygan", {}, "18", OURS),
        ("import numpy, tinygan", {}, "unset", "unset"),  # too late to matter: left alone
        ("import tinygan", {"OPENBLAS_THREAD_TIMEOUT": "25"}, "25", OURS),  # the user's value
        ("import tinygan", {"OPENBLAS_CORETYPE": "SkylakeX"}, "18", "SkylakeX"),
    ],
)
def test_settings_are_made_before_numpy_loads(code, env, timeout, coretype):
    seen = _after_import(code, env)
    assert seen[:2] == [timeout, coretype]
    if coretype != "unset":  # and OpenBLAS took the kernels named
        assert seen[2].lower() == coretype.lower()
