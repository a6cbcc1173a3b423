"""tinygan: a from-scratch GAN engine on NumPy (CPU) and CuPy (NVIDIA GPU)."""

from glob import glob

from setuptools import find_packages, setup

setup(
    name="tinygan",
    version="0.1.0",
    description="A from-scratch reverse-mode autodiff engine and the GAN loops of the lectures",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinygan", "tinygan.*"]),
    package_data={"tinygan": ["py.typed", "metrics/*.npz"]},
    # the CUDA sources, compiled at run time by CuPy (NVRTC) or by the host shim
    data_files=[("share/tinygan/kernels", glob("kernels/*.cu") + glob("kernels/*.h"))],
    install_requires=[
        "numpy>=1.24",
        "numba>=0.60",  # the Winograd convolution's tile transforms (functions/winograd_kernels.py)
        "pillow>=9.0",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "scikit-learn>=1.2",  # ships the UCI handwritten digits: the embedded default dataset
        "threadpoolctl>=3",  # --threads: how many BLAS threads NumPy's GEMMs use
    ],
    extras_require={
        # CuPy for CUDA 12.x drivers; on CUDA 13 drivers install cupy-cuda13x (see README).
        "gpu": ["cupy-cuda12x>=13"],
        "test": ["pytest>=7", "hypothesis>=6.80", "ruff>=0.5"],
        # PyTorch CPU 2.13.0 is the reference; install it with `pip install torch==2.13.0`.
        "bench": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["tinygan=tinygan.cli:main"]},
)
