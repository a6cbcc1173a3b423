"""OpenBLAS settings that tinygan makes before NumPy loads OpenBLAS (imports no NumPy).

OpenBLAS reads its environment once, when NumPy loads it, so these defaults take effect
only if tinygan is imported first, and each only where the user has not set the variable.

- ``OPENBLAS_THREAD_TIMEOUT=18``: OpenBLAS's threads spin for about 0.1 s after each
  product (2^28 cycles) before they sleep. tinygan runs its Numba loops and single-threaded
  NumPy passes between products, and the spinning thread took a core from them: on a 2-core
  machine the DCGAN step took 1.2-1.3 s with the default and 0.95-1.0 s with 2^18 cycles
  (about 0.1 ms, still long enough to keep the threads awake across an MLP step's
  back-to-back small products; 2^6 made that step 20-50 % slower). benchmarks/NOTES.md,
  item 17.
- ``OPENBLAS_CORETYPE=Haswell`` on AMD Zen 4 (family 25 with AVX-512): OpenBLAS 0.3.31
  picks its Skylake-X (AVX-512) kernels there, and its AVX2 (Haswell) kernels ran the
  Winograd products 3-15 % faster (e.g. 9 × (128×256 @ 256×4096): 180 against 160 GFLOP/s;
  2048³: 206 against 205) and the DCGAN step about 5 % faster. Zen 4 executes 512-bit
  instructions in two 256-bit halves. benchmarks/NOTES.md, item 23.
"""

from __future__ import annotations

from collections.abc import Mapping

CPUINFO = "/proc/cpuinfo"


def is_zen4(cpuinfo: str) -> bool:
    """Whether the first processor described by ``cpuinfo`` (the text of /proc/cpuinfo) is
    an AMD Zen 4: family 25 (Zen 3 and Zen 4), with AVX-512 (Zen 4 only)."""
    fields = {}
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return (
        fields.get("vendor_id") == "AuthenticAMD"
        and fields.get("cpu family") == "25"
        and "avx512f" in fields.get("flags", "").split()
    )


def read_cpuinfo() -> str:
    try:
        with open(CPUINFO, encoding="ascii", errors="replace") as f:
            return f.read(16384)  # the first processor's block is well inside this
    except OSError:  # not Linux
        return ""


def defaults(environ: Mapping[str, str], cpuinfo: str | None = None) -> dict[str, str]:
    """The OpenBLAS variables tinygan would set: its defaults less those set in ``environ``."""
    chosen = {"OPENBLAS_THREAD_TIMEOUT": "18"}
    if is_zen4(read_cpuinfo() if cpuinfo is None else cpuinfo):
        chosen["OPENBLAS_CORETYPE"] = "Haswell"
    return {name: value for name, value in chosen.items() if name not in environ}
