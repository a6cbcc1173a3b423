"""tinygan.nn: Module, Parameter, containers, layers, spectral norm, equalised layers, init.

Names, argument order and default initialisations follow ``torch.nn``.
"""

from tinygan.nn import init
from tinygan.nn.activation import ELU, LeakyReLU, PReLU, ReLU, Sigmoid, Softplus, Tanh
from tinygan.nn.container import ModuleDict, ModuleList, Sequential
from tinygan.nn.conv import (
    AvgPool2d,
    Conv2d,
    ConvTranspose2d,
    MaxPool2d,
    PixelShuffle,
    ReflectionPad2d,
    ReplicationPad2d,
    Upsample,
    ZeroPad2d,
)
from tinygan.nn.equalized import EqualizedConv2d, EqualizedLinear
from tinygan.nn.linear import Flatten, Identity, Linear, Unflatten
from tinygan.nn.module import Module, Parameter
from tinygan.nn.norm import AdaIN, BatchNorm1d, BatchNorm2d, InstanceNorm2d, LayerNorm
from tinygan.nn.special import Dropout, Embedding, GradientReversal
from tinygan.nn.spectral_norm import remove_spectral_norm, spectral_norm

__all__ = [
    "AdaIN",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Dropout",
    "ELU",
    "Embedding",
    "EqualizedConv2d",
    "EqualizedLinear",
    "Flatten",
    "GradientReversal",
    "Identity",
    "InstanceNorm2d",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "PReLU",
    "Parameter",
    "PixelShuffle",
    "ReLU",
    "ReflectionPad2d",
    "ReplicationPad2d",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "Unflatten",
    "Upsample",
    "ZeroPad2d",
    "init",
    "remove_spectral_norm",
    "spectral_norm",
]
