"""Fully connected classifiers: LeNet-300-100 and the MNIST-1D MLPs.

* `lenet_300_100`: Frankle & Carbin's MNIST network, 784-300-100-10
  (266,610 parameters), Glorot normal init.
* `mnist1d_mlp`: the MLP of the MNIST-1D paper's notebooks, 40-w-w-10 with a
  residual connection around the second hidden layer and PyTorch's default
  init (15,210 parameters for w=100; the lottery notebook uses w=500,
  276,010 parameters).
* `mlp`: the general form both are built from.

Layers are attributes `dense_0, dense_1, ...` (in model order when sorted)
and `output`, so kernels sit at `dense_i/kernel` and `output/kernel`.
"""
from collections.abc import Sequence
import math

from flax import nnx
import jax

from ticketjax.core import types
from ticketjax.models import adapter


class MLP(nnx.Module):
  """Flatten, then Linear+ReLU per hidden width, then a linear `output`.

  With `residual=True`, each hidden layer after the first whose input and
  output widths agree computes `h = h + relu(W h + b)`.
  """

  def __init__(
      self,
      input_dim: int,
      widths: Sequence[int],
      num_classes: int,
      *,
      residual: bool,
      kernel_init: str,
      rngs: nnx.Rngs,
  ):
    self.names = tuple(adapter.layer_names('dense', len(widths)))
    self.residual = tuple(
        residual and i > 0 and widths[i - 1] == widths[i]
        for i in range(len(widths))
    )
    fan_in = input_dim
    for name, width in zip(self.names, widths):
      setattr(self, name, adapter.dense(fan_in, width, kernel_init, rngs))
      fan_in = width
    self.output = adapter.dense(fan_in, num_classes, kernel_init, rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train  # no train-time behaviour
    h = x.reshape(x.shape[0], -1)
    for name, residual in zip(self.names, self.residual):
      y = jax.nn.relu(getattr(self, name)(h))
      h = h + y if residual else y
    return self.output(h)


def _input_dim(input_shape: int | Sequence[int]) -> int:
  """Flat size of one example; ValueError unless positive ints."""
  if isinstance(input_shape, int):
    input_shape = (input_shape,)
  try:
    dims = tuple(input_shape)
  except TypeError:
    raise ValueError(
        f'input_shape must be an int or a sequence of ints, got '
        f'{input_shape!r}.'
    ) from None
  for d in dims:
    adapter.positive_int('every input_shape entry', d)
  return math.prod(dims)


def mlp(
    widths: Sequence[int] = (300, 100),
    num_classes: int = 10,
    residual: bool = False,
    kernel_init: str = 'glorot_normal',
    input_shape: int | Sequence[int] = 784,
) -> types.Model:
  """A ReLU multilayer perceptron.

  Args:
    widths: hidden layer widths, in order; may be empty (logistic regression).
    num_classes: size of the `output` layer.
    residual: add a skip connection around every hidden layer after the
      first whose input and output widths match.
    kernel_init: one of `adapter.KERNEL_INITS`.
    input_shape: shape of one example (or its flat size); inputs are
      flattened, so only the product matters.

  Returns:
    The model, named 'mlp'.
  """
  return _mlp('mlp', widths, num_classes, residual, kernel_init, input_shape)


def _mlp(
    name: str,
    widths: int | Sequence[int],
    num_classes: int,
    residual: bool,
    kernel_init: str,
    input_shape: int | Sequence[int],
) -> types.Model:
  """Validates the hyperparameters and wraps an `MLP` as model `name`."""
  if isinstance(widths, int):
    widths = (widths,)
  try:
    widths = tuple(widths)
  except TypeError:
    raise ValueError(f'widths must be a sequence of ints, got {widths!r}.')
  widths = tuple(adapter.positive_int('every width', w) for w in widths)
  num_classes = adapter.positive_int('num_classes', num_classes)
  input_dim = _input_dim(input_shape)
  adapter.check_kernel_init(kernel_init)
  residual = bool(residual)

  def make(rngs: nnx.Rngs) -> MLP:
    return MLP(
        input_dim,
        widths,
        num_classes,
        residual=residual,
        kernel_init=kernel_init,
        rngs=rngs,
    )

  return adapter.from_nnx(make, name)


def lenet_300_100(
    num_classes: int = 10,
    kernel_init: str = 'glorot_normal',
    input_shape: int | Sequence[int] = 784,
) -> types.Model:
  """Frankle & Carbin's LeNet-300-100 for MNIST (266,610 parameters)."""
  return _mlp(
      'lenet_300_100', (300, 100), num_classes, False, kernel_init, input_shape
  )


def mnist1d_mlp(
    width: int = 100,
    num_classes: int = 10,
    kernel_init: str = 'torch_default',
    input_shape: int | Sequence[int] = 40,
) -> types.Model:
  """The MNIST-1D residual MLP, 40-width-width-10.

  `h = relu(W0 x + b0); h = h + relu(W1 h + b1); logits = W2 h + b2`.
  width=100 is the classification notebook's model (15,210 parameters);
  width=500 the lottery-ticket notebook's (276,010 parameters).
  """
  width = adapter.positive_int('width', width)
  return _mlp(
      'mnist1d_mlp', (width, width), num_classes, True, kernel_init,
      input_shape,
  )
