"""Shared types: the pure model pair and the in-memory data set.

Nothing here imports Flax: a `Model` is any pair of pure functions over
pytrees, whatever library wrote the module behind them.
"""
from typing import Any, Callable, NamedTuple

import numpy as np

PyTree = Any
Params = PyTree  # nested dict of float arrays
Mask = PyTree  # nested dict of bool arrays, same structure as Params


class Model(NamedTuple):
  """A model as two pure functions.

  Attributes:
    init: `init(key) -> (params, state)`. `params` is a nested dict of
      trainable arrays, `state` a nested dict of non-trainable arrays
      (BatchNorm statistics; `{}` when there are none).
    apply: `apply(params, state, x_BxD, *, train, key=None) ->
      (logits_BxC, new_state)`. `train=True` uses batch statistics and
      returns updated running statistics; `key` feeds stochastic layers.
    name: registry name, for messages and reports.
  """
  init: Callable[..., tuple[Params, PyTree]]
  apply: Callable[..., tuple[Any, PyTree]]
  name: str = 'model'


class Dataset(NamedTuple):
  """A small classification data set held whole in memory.

  Arrays are numpy on the host; the trainer moves them to the device once.
  `x_*` are float32 with the model's input shape after the leading example
  axis; `y_*` are int32 labels. The validation split is held out of train and
  has zero rows when no validation size is configured.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  name: str = 'dataset'
