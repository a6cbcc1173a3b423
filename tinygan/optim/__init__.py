"""tinygan.optim: optimizers (SGD, Adam, AdamW, RMSprop), schedules and weight averaging."""

from tinygan.optim import lr_scheduler
from tinygan.optim.adam import Adam, AdamW
from tinygan.optim.ema import EMA
from tinygan.optim.lr_scheduler import LambdaLR, LinearDecayLR, LRScheduler, StepLR
from tinygan.optim.optimizer import Optimizer
from tinygan.optim.rmsprop import RMSprop
from tinygan.optim.sgd import SGD

__all__ = [
    "EMA",
    "SGD",
    "Adam",
    "AdamW",
    "LRScheduler",
    "LambdaLR",
    "LinearDecayLR",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "lr_scheduler",
]
