"""ticketjax: lottery-ticket research in JAX.

Masks are pytrees of booleans shaped like the params, pruning rules are
pure functions, and every search trains all its seeds in one compiled
program. The core (masks, pruning, optim, train) never imports Flax; models
come in as pure `init`/`apply` pairs (`ticketjax.models`).
"""
from ticketjax.core import masks
from ticketjax.core import pruning
from ticketjax.core.optim import make_optimizer
from ticketjax.core.optim import masked
from ticketjax.core.optim import OptimizerConfig
from ticketjax.core.train import DeviceData
from ticketjax.core.train import seed_keys
from ticketjax.core.train import split_seed_key
from ticketjax.core.train import to_device
from ticketjax.core.train import Trainer
from ticketjax.core.train import TrainState
from ticketjax.core.types import Dataset
from ticketjax.core.types import Model

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
