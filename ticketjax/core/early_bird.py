"""Early-Bird tickets (You et al., ICLR 2020): has the mask settled yet?

During training, after every epoch, the mask the pruning rule would give
now is computed (unstructured magnitude, or channels by BatchNorm scales).
The last `window` masks are kept (a FIFO, 5 in the paper); the ticket is
declared at the first epoch whose mask is within `epsilon` (0.1) of each
of the `window - 1` masks before it, the distance being the normalized
Hamming distance over the prunable entries (the fraction of them whose
bit differs, `masks.hamming`).

Pure functions of masks; a driver keeps the FIFO per member on the host
(`Fifo` is a tuple of masks, newest last) and stops or retrains once
`declared` says so.
"""
from typing import NamedTuple, Sequence

import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core.types import Mask

WINDOW = 5
EPSILON = 0.1


class Check(NamedTuple):
  """One epoch's verdict: the distances of the newest mask to each older
  one in the window (oldest first) and whether the ticket is declared."""
  distances: tuple[float, ...]
  declared: bool


def push(fifo: tuple, mask: Mask, window: int = WINDOW) -> tuple:
  """The FIFO with `mask` added as the newest, the oldest dropped past
  `window` masks."""
  return (tuple(fifo) + (mask,))[-window:]


def check(fifo: Sequence[Mask], window: int = WINDOW,
          epsilon: float = EPSILON,
          prunable: masks_lib.LeafFilter = masks_lib.is_kernel) -> Check:
  """Declared when the FIFO is full and the newest mask's distance to
  each of the others is at most `epsilon`."""
  if window < 2:
    raise ValueError(f'the Early-Bird window must hold >= 2 masks, got '
                     f'{window}')
  *older, newest = fifo
  distances = tuple(float(masks_lib.hamming(newest, m, prunable))
                    for m in older)
  full = len(fifo) >= window
  # float32 on both sides: a distance of exactly epsilon (2 of 20 bits
  # against 0.1) is within it
  return Check(distances, bool(
      full and np.float32(max(distances)) <= np.float32(epsilon)))


def first_declared(sequence: Sequence[Mask], window: int = WINDOW,
                   epsilon: float = EPSILON,
                   prunable: masks_lib.LeafFilter = masks_lib.is_kernel
                   ) -> int | None:
  """The index (epoch) at which a sequence of masks declares the ticket,
  or None if it never does."""
  fifo = ()
  for i, mask in enumerate(sequence):
    fifo = push(fifo, mask, window)
    if check(fifo, window, epsilon, prunable).declared:
      return i
  return None


def distance_matrix(sequence: Sequence[Mask],
                    prunable: masks_lib.LeafFilter = masks_lib.is_kernel
                    ) -> np.ndarray:
  """Normalized Hamming distance between every pair of masks (for the
  paper's mask-distance plot)."""
  n = len(sequence)
  out = np.zeros((n, n), np.float32)
  for i in range(n):
    for j in range(i + 1, n):
      out[i, j] = out[j, i] = float(masks_lib.hamming(sequence[i],
                                                      sequence[j], prunable))
  return out
