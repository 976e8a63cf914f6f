"""Sparsity distributions: how a density budget is spread over the layers.

Every method that starts from a density (a random sparse init, PaI, RigL
and SET) asks this module how many weights each prunable kernel keeps:

  uniform  every kernel keeps the density;
  er       Erdős–Rényi (Mocanu et al. 2018): a kernel's density is
           proportional to (n_in + n_out) / (n_in * n_out), its two
           matrix dimensions (a convolution's spatial dims ignored);
  erk      ER-Kernel (Evci et al. 2020, RigL): proportional to
           sum(shape) / prod(shape), the kernel dims included.

For 'er'/'erk' the proportionality constant eps is chosen so the kept
weights add up to the budget; a kernel whose eps * raw share would exceed 1
is made dense and eps is solved again for the others, until none does
(RigL's loop). Raw shares may be raised to `power` (RigL's
`erk_power_scale`, 1 by default).

Counts are exact: the budget is `N - floor((1 - density) * N + 0.5)` of the
N prunable weights (the count `pruning` gives one-shot pruning to that
density), each sparse kernel gets floor(eps * raw * n) and the weights
left over go one each to the kernels with the largest fractional parts
(ties: the earlier kernel in flattening order). A kernel never keeps more
than it has.
"""
import math

import jax
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core.types import PyTree

DISTRIBUTIONS = ('uniform', 'er', 'erk')


def check(name: str) -> None:
  if name not in DISTRIBUTIONS:
    raise ValueError(f'unknown sparsity distribution {name!r}; valid are '
                     f'{list(DISTRIBUTIONS)}')


def _raw(shape, name: str, power: float) -> float:
  if name == 'er':  # the matrix dims: (in, out), or a conv's channels
    n_in, n_out = shape[-2], shape[-1]
    raw = (n_in + n_out) / (n_in * n_out)
  else:
    raw = sum(shape) / math.prod(shape)
  return raw ** power


def budget(total: int, density: float) -> int:
  """Weights kept of `total` at `density`: total - floor((1-d) total + .5)."""
  removed = math.floor(float(np.float32(1.0 - density) * np.float32(total))
                       + 0.5)
  return total - min(removed, total)


def counts(params: PyTree, density: float, name: str = 'uniform',
           prunable: masks_lib.LeafFilter = masks_lib.is_kernel,
           power: float = 1.0) -> dict[str, int]:
  """{path: weights kept} of every prunable leaf; they sum to the budget.

  `params` may be arrays or shape structs (`jax.eval_shape`). ValueError
  for a density outside (0, 1] or an unknown distribution.
  """
  check(name)
  if not 0.0 < float(density) <= 1.0:
    raise ValueError(f'density {density} lies outside (0, 1]: it is the '
                     'fraction of weights kept')
  leaves = [(p, tuple(np.shape(x))) for p, x in zip(
      masks_lib.leaf_paths(params), jax.tree.leaves(params))
            if prunable(p, x)]
  sizes = {p: math.prod(s) for p, s in leaves}
  total = sum(sizes.values())
  keep = budget(total, density)
  if name == 'uniform':
    share = {p: density for p in sizes}
  else:
    raw = {p: _raw(s, name, power) for p, s in leaves}
    dense = set()
    while True:  # RigL's loop: layers over 1 become dense, solve again
      left = keep - sum(sizes[p] for p in dense)
      weight = sum(raw[p] * sizes[p] for p in sizes if p not in dense)
      eps = left / weight if weight else 0.0
      over = {p for p in sizes if p not in dense and eps * raw[p] > 1.0}
      if not over:
        break
      dense |= over
    share = {p: 1.0 if p in dense else eps * raw[p] for p in sizes}
  exact = {p: min(share[p] * sizes[p], sizes[p]) for p in sizes}
  out = {p: int(math.floor(v)) for p, v in exact.items()}
  order = sorted(sizes, key=lambda p: -(exact[p] - out[p]))  # stable
  short = keep - sum(out.values())
  for p in order:
    if short <= 0:
      break
    if out[p] < sizes[p]:
      out[p] += 1
      short -= 1
  return out


def random_mask(key: jax.Array, params: PyTree, kept: dict[str, int],
                prunable: masks_lib.LeafFilter = masks_lib.is_kernel):
  """A uniformly random mask keeping `kept[path]` weights of each prunable
  leaf (an independent stream per leaf), all of the others."""
  noise = jax.tree.unflatten(jax.tree.structure(params), [
      jax.random.uniform(jax.random.fold_in(key, i), np.shape(x))
      for i, x in enumerate(jax.tree.leaves(params))])
  return pruning.keep_counts(noise, masks_lib.ones_like(params), kept,
                             prunable)


def densities(params: PyTree, density: float, name: str = 'uniform',
              prunable: masks_lib.LeafFilter = masks_lib.is_kernel,
              power: float = 1.0) -> dict[str, float]:
  """{path: density} of every prunable leaf (`counts` over its size)."""
  kept = counts(params, density, name, prunable, power)
  sizes = {p: math.prod(np.shape(x)) for p, x in zip(
      masks_lib.leaf_paths(params), jax.tree.leaves(params)) if p in kept}
  return {p: kept[p] / sizes[p] for p in kept}
