"""CIFAR ResNet-20 (He et al. 2016, section 4.2), as in open_lth.

Frankle & Carbin's "ResNet-18" is this network: a 3x3 convolution with 16
channels, then three stages of three basic blocks with 16, 32 and 64
channels, global average pooling and a linear `output` (272,474 trainable
parameters). A basic block is conv3x3-BN-ReLU-conv3x3-BN plus a shortcut,
then ReLU. The first block of stages 2 and 3 halves the resolution with
stride 2 and uses a 1x1 convolution + BN projection shortcut (open_lth's
choice, rather than the paper's zero-padded identity, "option A").
Convolutions have no bias; BatchNorm uses momentum 0.9 and epsilon 1e-5
(PyTorch's defaults, written the Flax way).

Naming, chosen so that sorted keys follow the model order and every weight
is called `kernel`:
  stage_0_stem/{conv,bn}                         the stem
  stage_{s}_block_{b}/{conv_0,bn_0,conv_1,bn_1}  s = 1, 2, 3
  stage_{s}_block_0/{shortcut_conv,shortcut_bn}  s = 2, 3
  output                                         the classifier
Stage indices start at 1 for the residual stages, as in the paper's prose,
with the stem as stage 0. BatchNorm statistics (`mean`, `var`) are state,
not params.
"""
from collections.abc import Sequence

from flax import nnx
import jax
import jax.numpy as jnp

from ticketjax.core import types
from ticketjax.models import adapter

_MOMENTUM = 0.9
_EPSILON = 1e-5
_PAD_3X3 = ((1, 1), (1, 1))  # PyTorch padding=1, also for stride 2.


def _conv3x3(
    in_channels: int,
    out_channels: int,
    strides: int,
    kernel_init: str,
    rngs: nnx.Rngs,
) -> nnx.Conv:
  return adapter.conv(
      in_channels,
      out_channels,
      (3, 3),
      strides=strides,
      padding=_PAD_3X3,
      use_bias=False,
      kernel_init=kernel_init,
      rngs=rngs,
  )


def _batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(
      channels, momentum=_MOMENTUM, epsilon=_EPSILON, rngs=rngs
  )


class Stem(nnx.Module):
  """conv3x3-BN-ReLU."""

  def __init__(
      self,
      in_channels: int,
      out_channels: int,
      *,
      kernel_init: str,
      rngs: nnx.Rngs,
  ):
    self.conv = _conv3x3(in_channels, out_channels, 1, kernel_init, rngs)
    self.bn = _batch_norm(out_channels, rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    return jax.nn.relu(self.bn(self.conv(x), use_running_average=not train))


class BasicBlock(nnx.Module):
  """relu(BN(conv(relu(BN(conv(x))))) + shortcut(x))."""

  def __init__(
      self,
      in_channels: int,
      out_channels: int,
      strides: int,
      *,
      kernel_init: str,
      rngs: nnx.Rngs,
  ):
    self.conv_0 = _conv3x3(
        in_channels, out_channels, strides, kernel_init, rngs
    )
    self.bn_0 = _batch_norm(out_channels, rngs)
    self.conv_1 = _conv3x3(out_channels, out_channels, 1, kernel_init, rngs)
    self.bn_1 = _batch_norm(out_channels, rngs)
    self.projection = strides != 1 or in_channels != out_channels
    if self.projection:
      self.shortcut_conv = adapter.conv(
          in_channels,
          out_channels,
          (1, 1),
          strides=strides,
          padding='VALID',
          use_bias=False,
          kernel_init=kernel_init,
          rngs=rngs,
      )
      self.shortcut_bn = _batch_norm(out_channels, rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    frozen = not train
    h = jax.nn.relu(self.bn_0(self.conv_0(x), use_running_average=frozen))
    h = self.bn_1(self.conv_1(h), use_running_average=frozen)
    if self.projection:
      x = self.shortcut_bn(
          self.shortcut_conv(x), use_running_average=frozen
      )
    return jax.nn.relu(h + x)


class CifarResNet(nnx.Module):
  """Stem, residual stages, global average pooling, linear `output`."""

  def __init__(
      self,
      in_channels: int,
      stage_widths: Sequence[int],
      blocks_per_stage: int,
      num_classes: int,
      *,
      kernel_init: str,
      rngs: nnx.Rngs,
  ):
    self.stage_0_stem = Stem(
        in_channels, stage_widths[0], kernel_init=kernel_init, rngs=rngs
    )
    names = []
    channels = stage_widths[0]
    for stage, width in enumerate(stage_widths, start=1):
      block_names = adapter.layer_names(
          f'stage_{stage}_block', blocks_per_stage
      )
      for b, name in enumerate(block_names):
        strides = 2 if (b == 0 and stage > 1) else 1
        setattr(
            self,
            name,
            BasicBlock(
                channels, width, strides, kernel_init=kernel_init, rngs=rngs
            ),
        )
        channels = width
        names.append(name)
    self.block_names = tuple(names)
    self.output = adapter.dense(channels, num_classes, kernel_init, rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h = self.stage_0_stem(x, train=train)
    for name in self.block_names:
      h = getattr(self, name)(h, train=train)
    h = jnp.mean(h, axis=(1, 2))  # global average pooling
    return self.output(h)


def resnet20(
    num_classes: int = 10,
    kernel_init: str = 'kaiming_normal',
    input_channels: int = 3,
) -> types.Model:
  """CIFAR ResNet-20 (272,474 trainable parameters for 10 classes).

  Args:
    num_classes: size of the `output` layer.
    kernel_init: one of `adapter.KERNEL_INITS`; applies to every convolution
      and the output layer. BatchNorm starts at scale 1, bias 0.
    input_channels: channels of the (B, H, W, C) input images.

  Returns:
    The model, named 'resnet20'. Its `state` holds the BatchNorm running
    statistics.
  """
  num_classes = adapter.positive_int('num_classes', num_classes)
  input_channels = adapter.positive_int('input_channels', input_channels)
  adapter.check_kernel_init(kernel_init)

  def make(rngs: nnx.Rngs) -> CifarResNet:
    return CifarResNet(
        input_channels,
        (16, 32, 64),
        3,
        num_classes,
        kernel_init=kernel_init,
        rngs=rngs,
    )

  return adapter.from_nnx(make, 'resnet20')
