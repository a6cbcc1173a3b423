"""tinygan.data: datasets and the DataLoader.

- :class:`Digits` -- the embedded default (UCI handwritten digits via scikit-learn, no download)
- :class:`MNIST`, :class:`FashionMNIST` -- IDX files from a local directory
- :class:`ImageFolder`, :class:`UnpairedImageFolder` (CycleGAN), :class:`PairedImageFolder`
  (pix2pix) -- image files
- :class:`Ring8Gaussians`, :class:`Grid25Gaussians`, :class:`TwoMoons` -- toy 2-D data
- :class:`DataLoader` -- batches as Tensors, seeded shuffling, prefetching, resumable state

Images are float32 ``(C, H, W)`` in [-1, 1]; labels are ints. This package depends only on
NumPy, Pillow, scikit-learn and the tinygan core (never on ``tinygan.nn`` or ``tinygan.gans``).
"""

from tinygan.data.dataset import ArrayDataset, Dataset, item_rng
from tinygan.data.digits import Digits
from tinygan.data.folders import ImageFolder, PairedImageFolder, UnpairedImageFolder, find_images
from tinygan.data.loader import DataLoader, collate
from tinygan.data.mnist import MNIST, FashionMNIST, read_idx
from tinygan.data.toy import Grid25Gaussians, Ring8Gaussians, Toy2D, TwoMoons

__all__ = [
    "Dataset",
    "ArrayDataset",
    "item_rng",
    "Digits",
    "MNIST",
    "FashionMNIST",
    "read_idx",
    "ImageFolder",
    "UnpairedImageFolder",
    "PairedImageFolder",
    "find_images",
    "Toy2D",
    "Ring8Gaussians",
    "Grid25Gaussians",
    "TwoMoons",
    "DataLoader",
    "collate",
]
