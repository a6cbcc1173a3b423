"""Side-by-side benchmarks (run.py, paths.py, gpu.py).

tinygan is imported before anything loads NumPy, as in any program that imports it first,
so the benchmarks run with the OpenBLAS setting tinygan's import makes (tinygan/__init__.py).
"""

import tinygan  # noqa: F401
