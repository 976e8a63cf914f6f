"""Plain convolutional classifiers: the MNIST-1D CNN and Conv-2/4/6.

* `mnist1d_cnn`: the MNIST-1D paper's CNN. Three strided 1-D convolutions
  (k5/s2, k3/s2, k3/s2, padding 1 as in PyTorch, lengths 40→19→10→5), ReLU,
  flatten, linear `output`. PyTorch default init; 5,210 parameters with 25
  channels. With `batch_norm=True` every convolution (then without bias) is
  followed by BatchNorm `bn_i` before its ReLU: the CPU-sized testbed for
  channel pruning by BatchNorm scales (network slimming, Early-Bird).
* `conv2`, `conv4`, `conv6`: Frankle & Carbin's CIFAR-10 networks. Pairs of
  3x3 SAME convolutions (64, 128, 256 channels) each followed by 2x2 max
  pooling, then FC 256, FC 256 and a linear `output`; Glorot normal init.

Layers are attributes `conv_0 ...`, `fc_0, fc_1` and `output` (model order
when sorted), so every kernel sits at `<layer>/kernel`.
"""
from collections.abc import Sequence

from flax import nnx
import jax

from ticketjax.core import types
from ticketjax.models import adapter


class MNIST1DCNN(nnx.Module):
  """Conv1d(1→C,k5,s2,p1), Conv1d(C→C,k3,s2,p1) x2, ReLUs, linear output;
  with `batch_norm`, BatchNorm after each convolution."""

  def __init__(
      self,
      length: int,
      channels: int,
      num_classes: int,
      *,
      kernel_init: str,
      rngs: nnx.Rngs,
      batch_norm: bool = False,
  ):
    specs = ((1, 5), (channels, 3), (channels, 3))
    self.names = tuple(adapter.layer_names('conv', len(specs)))
    self.norms = (tuple(adapter.layer_names('bn', len(specs)))
                  if batch_norm else ())
    for i, (name, (in_channels, size)) in enumerate(zip(self.names, specs)):
      setattr(
          self,
          name,
          adapter.conv(
              in_channels,
              channels,
              (size,),
              strides=2,
              padding=((1, 1),),
              use_bias=not batch_norm,
              kernel_init=kernel_init,
              rngs=rngs,
          ),
      )
      if batch_norm:
        setattr(self, self.norms[i], nnx.BatchNorm(
            channels, momentum=0.9, epsilon=1e-5, rngs=rngs))
      length = (length + 2 - size) // 2 + 1
    if length < 1:
      raise ValueError(
          'mnist1d_cnn input is too short for three stride-2 convolutions.'
      )
    self.output = adapter.dense(
        length * channels, num_classes, kernel_init, rngs
    )

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h = x.reshape(x.shape[0], -1, 1)  # (B, L) -> (B, L, 1 channel)
    for i, name in enumerate(self.names):
      h = getattr(self, name)(h)
      if self.norms:
        h = getattr(self, self.norms[i])(h, use_running_average=not train)
      h = jax.nn.relu(h)
    return self.output(h.reshape(h.shape[0], -1))


def mnist1d_cnn(
    channels: int = 25,
    num_classes: int = 10,
    kernel_init: str = 'torch_default',
    input_length: int = 40,
    batch_norm: bool = False,
) -> types.Model:
  """The MNIST-1D CNN (5,210 parameters with 25 channels on length 40).

  Args:
    channels: channels of every convolution.
    num_classes: size of the `output` layer.
    kernel_init: one of `adapter.KERNEL_INITS`.
    input_length: length of one 1-D example; inputs (B, L) or (B, L, 1).
    batch_norm: BatchNorm `bn_i` (momentum 0.9, epsilon 1e-5, scale 1, bias
      0; statistics in the model state) after convolution `conv_i`, which
      then has no bias.

  Returns:
    The model, named 'mnist1d_cnn'.
  """
  channels = adapter.positive_int('channels', channels)
  num_classes = adapter.positive_int('num_classes', num_classes)
  input_length = adapter.positive_int('input_length', input_length)
  adapter.check_kernel_init(kernel_init)
  if not isinstance(batch_norm, bool):
    raise ValueError(f'batch_norm must be True or False, got {batch_norm!r}')

  def make(rngs: nnx.Rngs) -> MNIST1DCNN:
    return MNIST1DCNN(
        input_length, channels, num_classes, kernel_init=kernel_init,
        batch_norm=batch_norm, rngs=rngs,
    )

  return adapter.from_nnx(make, 'mnist1d_cnn')


class ConvNet(nnx.Module):
  """VGG-style stack: conv pairs with 2x2 max pooling, then FC layers."""

  def __init__(
      self,
      input_shape: Sequence[int],
      conv_widths: Sequence[int],
      fc_widths: Sequence[int],
      num_classes: int,
      *,
      kernel_init: str,
      rngs: nnx.Rngs,
  ):
    height, width, in_channels = input_shape
    self.conv_names = tuple(adapter.layer_names('conv', len(conv_widths)))
    self.fc_names = tuple(adapter.layer_names('fc', len(fc_widths)))
    for name, out_channels in zip(self.conv_names, conv_widths):
      setattr(
          self,
          name,
          adapter.conv(
              in_channels,
              out_channels,
              (3, 3),
              padding='SAME',
              kernel_init=kernel_init,
              rngs=rngs,
          ),
      )
      in_channels = out_channels
    num_pools = len(conv_widths) // 2
    height, width = height >> num_pools, width >> num_pools
    if height < 1 or width < 1:
      raise ValueError(
          f'input_shape {tuple(input_shape)} is too small for {num_pools} '
          '2x2 poolings.'
      )
    fan_in = height * width * in_channels
    for name, out_features in zip(self.fc_names, fc_widths):
      setattr(
          self,
          name,
          adapter.dense(fan_in, out_features, kernel_init, rngs),
      )
      fan_in = out_features
    self.output = adapter.dense(fan_in, num_classes, kernel_init, rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train  # no train-time behaviour
    h = x
    for i, name in enumerate(self.conv_names):
      h = jax.nn.relu(getattr(self, name)(h))
      if i % 2 == 1:
        h = nnx.max_pool(h, window_shape=(2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    for name in self.fc_names:
      h = jax.nn.relu(getattr(self, name)(h))
    return self.output(h)


_CONV_WIDTHS = {
    'conv2': (64, 64),
    'conv4': (64, 64, 128, 128),
    'conv6': (64, 64, 128, 128, 256, 256),
}


def _convnet(
    name: str,
    num_classes: int,
    kernel_init: str,
    input_shape: Sequence[int],
) -> types.Model:
  num_classes = adapter.positive_int('num_classes', num_classes)
  adapter.check_kernel_init(kernel_init)
  input_shape = tuple(input_shape)
  if len(input_shape) != 3:
    raise ValueError(
        f'input_shape must be (height, width, channels), got {input_shape}.'
    )
  for d in input_shape:
    adapter.positive_int('every input_shape entry', d)
  conv_widths = _CONV_WIDTHS[name]

  def make(rngs: nnx.Rngs) -> ConvNet:
    return ConvNet(
        input_shape,
        conv_widths,
        (256, 256),
        num_classes,
        kernel_init=kernel_init,
        rngs=rngs,
    )

  return adapter.from_nnx(make, name)


def conv2(
    num_classes: int = 10,
    kernel_init: str = 'glorot_normal',
    input_shape: Sequence[int] = (32, 32, 3),
) -> types.Model:
  """Conv-2: 64,64,pool → FC 256,256 → output (4,301,642 parameters)."""
  return _convnet('conv2', num_classes, kernel_init, input_shape)


def conv4(
    num_classes: int = 10,
    kernel_init: str = 'glorot_normal',
    input_shape: Sequence[int] = (32, 32, 3),
) -> types.Model:
  """Conv-4: 64,64,pool,128,128,pool → FC 256,256 → output (2,425,930)."""
  return _convnet('conv4', num_classes, kernel_init, input_shape)


def conv6(
    num_classes: int = 10,
    kernel_init: str = 'glorot_normal',
    input_shape: Sequence[int] = (32, 32, 3),
) -> types.Model:
  """Conv-6: Conv-4 + 256,256,pool → FC 256,256 → output (2,262,602).

  Frankle & Carbin's Figure 2 lists 1.7M weights for Conv-6, but the stated
  architecture on 32x32 inputs has 2,262,602 parameters (1,145,408 in the
  convolutions, which matches the paper's 1.1M).
  """
  return _convnet('conv6', num_classes, kernel_init, input_shape)
