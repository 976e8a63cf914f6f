"""Training-data augmentation inside the compiled step: pure functions.

An augmentation is `augment(x_BxHxWxC, key) -> x_BxHxWxC`, applied by the
trainer to each training batch (never to evaluation data). Its key is
derived from the step's key (`fold_in(step_key, AUGMENT_TAG)`), so a seed's
augmentations are fixed by (seed, step): resuming reproduces them, and
the step's other randomness is the same with or without augmentation.

Registry (`data.augment` in the config):
  * 'none': the batch as it is;
  * 'crop_flip': the CIFAR standard of the ResNet papers and of Frankle et
    al. 2020 (and CS's repo): pad 4 pixels on each side with
    black, take a random 32x32 (input-sized) crop, flip left-right with
    probability 1/2, independently per example.

Data sets are normalized when loaded, so "black" is the normalized value
of a 0 pixel, -mean/std per channel (`fill`), as torchvision pads the raw
image before normalizing.
"""
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp

AUGMENT_TAG = 0x417547  # fold_in tag of a step key: the augmentation key
CROP_PAD = 4

Augment = Callable[[jax.Array, jax.Array], jax.Array]


def crop_flip(x_BHWC: jax.Array, key: jax.Array, *, pad: int = CROP_PAD,
              fill: Optional[Sequence[float]] = None) -> jax.Array:
  """Random crops of the `pad`-padded images and random left-right flips.

  `fill` is the per-channel value of the padding (0 when None).
  """
  b, h, w, c = x_BHWC.shape
  fill_C = (jnp.zeros((c,), x_BHWC.dtype) if fill is None
            else jnp.asarray(fill, x_BHWC.dtype))
  padded = jnp.broadcast_to(fill_C, (b, h + 2 * pad, w + 2 * pad, c))
  padded = jax.lax.dynamic_update_slice(padded, x_BHWC, (0, pad, pad, 0))
  k_row, k_col, k_flip = jax.random.split(key, 3)
  rows = jax.random.randint(k_row, (b,), 0, 2 * pad + 1)
  cols = jax.random.randint(k_col, (b,), 0, 2 * pad + 1)
  flips = jax.random.bernoulli(k_flip, 0.5, (b,))

  def one(img, r, col, flip):
    crop = jax.lax.dynamic_slice(img, (r, col, 0), (h, w, c))
    return jnp.where(flip, crop[:, ::-1], crop)

  return jax.vmap(one)(padded, rows, cols, flips)


AUGMENTATIONS = ('none', 'crop_flip')


def check_name(name: str) -> None:
  """ValueError unless `name` is in AUGMENTATIONS."""
  if name not in AUGMENTATIONS:
    raise ValueError(f'unknown data.augment {name!r}; valid augmentations '
                     f'are {list(AUGMENTATIONS)}')


def get_augment(name: str, input_shape: Sequence[int],
                mean: Optional[Sequence[float]] = None,
                std: Optional[Sequence[float]] = None) -> Optional[Augment]:
  """The augmentation `name` for examples of `input_shape`; None for 'none'.

  Raises:
    ValueError: an unknown name, or 'crop_flip' on inputs that are not
      images (H, W, C).
  """
  check_name(name)
  if name == 'none':
    return None
  if len(input_shape) != 3:
    raise ValueError(f"data.augment='crop_flip' needs image inputs (H, W, C), "
                     f'got examples of shape {tuple(input_shape)}')
  fill = None
  if mean is not None and std is not None:
    fill = tuple(-m / s for m, s in zip(mean, std))
  return lambda x, key: crop_flip(x, key, fill=fill)
