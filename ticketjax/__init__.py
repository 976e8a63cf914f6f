"""ticketjax: lottery-ticket research in JAX.

Masks are pytrees of booleans shaped like the params, pruning rules are
pure functions, and every search trains all its seeds in one compiled
program. The core (masks, pruning, optim, train) never imports Flax; models
come in as pure `init`/`apply` pairs (`ticketjax.models`).
"""
from ticketjax import masks
from ticketjax import pruning
from ticketjax.optim import OptimizerConfig
from ticketjax.optim import make_optimizer
from ticketjax.optim import masked
from ticketjax.train import DeviceData
from ticketjax.train import Trainer
from ticketjax.train import TrainState
from ticketjax.train import seed_keys
from ticketjax.train import split_seed_key
from ticketjax.train import to_device
from ticketjax.types import Dataset
from ticketjax.types import Model

__all__ = [
    'Dataset',
    'DeviceData',
    'Model',
    'OptimizerConfig',
    'TrainState',
    'Trainer',
    'make_optimizer',
    'masked',
    'masks',
    'pruning',
    'seed_keys',
    'split_seed_key',
    'to_device',
]

__version__ = '0.1.0'
