"""Suite-wide settings.

- Hypothesis: bounded examples and no deadline (finite differences are slow by design).
- One BLAS thread: the tests' matrices are small, and OpenBLAS's threads make small GEMMs
  many times slower whenever the 2-core machine is busy with anything else (seen here:
  the 8-Gaussian GAN test took 37 s with one thread and 866 s with two under load).
"""

from hypothesis import settings
from threadpoolctl import threadpool_limits

settings.register_profile("tinygan", max_examples=25, deadline=None, print_blob=True)
settings.load_profile("tinygan")

threadpool_limits(1)
