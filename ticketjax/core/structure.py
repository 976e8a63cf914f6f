"""Mask structure: which patterns of kept weights a pruning step may leave.

A structure is a constraint every pruning rule honours, whatever its score
and scope (`pruning.layerwise`, `pruning.global_`, `pruning.by_score`).
Configs name it by a string:

  'unstructured'  any weights (the default).
  'N:M'           e.g. '2:4': every group of M consecutive weights along a
                  kernel's input (contraction) axis keeps at most N of them.
                  The input axis is axis 0 of a dense kernel (in, out) and
                  the input-channel axis (-2) of a convolution
                  (..., in, out); that axis must divide by M.
  'channels'      whole output units (neurons, filters): a unit is kept or
                  removed with all its weights and its bias. The output
                  layer (path 'output/...') keeps every unit: its units are
                  the classes.

Counts, with `n` a leaf's (or the pool's) surviving weights and `rate` the
rule's rate (`pruning` documents the rounding, `floor(rate * n + 0.5)`):

  * N:M first keeps the N highest-scoring survivors of every group (a group
    with N or fewer survivors keeps them all), then, if the rate asks for
    more, removes the lowest-scoring of those until `n - floor(rate * n +
    0.5)` remain. From a dense kernel, a rate up to 1 - N/M leaves exactly N
    per group; higher rates leave at most N per group (still a valid N:M
    pattern, denser groups never). Ties inside a group keep the later
    position, as the unstructured rules do.
  * channels prunes units instead of weights: a leaf with `u` live units
    (units with any surviving weight) loses `floor(rate * u + 0.5)` of them,
    those with the lowest unit score, the mean of the weight scores over the
    unit's entries (pruned entries count 0). For magnitude that is the
    unit's L1 norm over its fan-in: the ranking of the L1 norm within a
    layer, and comparable across layers when `global` scope pools them.
    The score `bn_scale` (`core/scores.py`) gives every weight of a unit
    its BatchNorm's |scale| (network slimming), where a BatchNorm follows.
    A removed unit's BatchNorm scale and shift are masked with its bias.
"""
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core.types import Mask, PyTree


class Structure(NamedTuple):
  kind: str  # 'unstructured', 'nm' or 'channels'
  n: int = 0
  m: int = 0

  @property
  def name(self) -> str:
    return f'{self.n}:{self.m}' if self.kind == 'nm' else self.kind


UNSTRUCTURED = Structure('unstructured')
VALID = "'unstructured', 'channels' or 'N:M' with 1 <= N < M (e.g. '2:4')"


def parse(structure) -> Structure:
  """A `Structure` from its config name (or a `Structure`); ValueError."""
  if isinstance(structure, Structure):
    return structure
  if structure in ('unstructured', 'channels'):
    return Structure(structure)
  match = re.fullmatch(r'(\d+):(\d+)', str(structure).strip())
  if match:
    n, m = int(match.group(1)), int(match.group(2))
    if 1 <= n < m:
      return Structure('nm', n, m)
  raise ValueError(f'unknown mask structure {structure!r}; valid structures '
                   f'are {VALID}')


def is_output(path: str) -> bool:
  return path.startswith('output/')


def input_axis(leaf) -> int:
  """The contraction axis N:M groups over: 0 for (in, out), -2 for convs."""
  return jnp.ndim(leaf) - 2


def check(structure, params: PyTree, prunable: masks_lib.LeafFilter) -> None:
  """ValueError unless `structure` parses and fits every prunable kernel."""
  st = parse(structure)
  if st.kind != 'nm':
    return
  bad = [f'{p} (input axis {jnp.shape(x)[input_axis(x)]})'
         for p, x in zip(masks_lib.leaf_paths(params), jax.tree.leaves(params))
         if prunable(p, x) and jnp.shape(x)[input_axis(x)] % st.m]
  if bad:
    raise ValueError(
        f'{st.name} structure groups {st.m} weights along each prunable '
        f"kernel's input axis, which does not divide by {st.m} for "
        f'{bad}; leave those layers out with prune_exclude or choose another '
        'M')


def _groups(x, m):
  """(..., in, out) -> (..., in // m, m, out): groups along the input axis."""
  shape = jnp.shape(x)
  return x.reshape(shape[:-2] + (shape[-2] // m, m, shape[-1]))


def nm_allowed(keys: jax.Array, mask: jax.Array, n: int, m: int) -> jax.Array:
  """The N highest-keyed survivors of each group of M (shape of `mask`).

  `keys` are uint32 selection keys (`selection.float_keys`), 0 where pruned.
  Ties keep the later position.
  """
  k = _groups(keys, m)
  a, b = k[..., :, None, :], k[..., None, :, :]  # [.., i, j, out]
  pos = jnp.arange(m)
  later = (pos[None, :] > pos[:, None]).reshape(  # j after i
      (1,) * (k.ndim - 2) + (m, m, 1))
  above = (b > a) | ((b == a) & later)
  rank = jnp.sum(above, axis=-2)  # survivors (and ties) ranked above i
  keep = _groups(mask, m) & (rank < n)
  return keep.reshape(jnp.shape(mask))


def unit_scores(scores: jax.Array, mask: jax.Array):
  """(score, live) per output unit: the mean masked score, any survivor."""
  axes = tuple(range(jnp.ndim(mask) - 1))
  score = jnp.mean(jnp.where(mask, scores, 0.0), axis=axes)
  return score, jnp.any(mask, axis=axes)


def norm_layer(kernel_path: str) -> str | None:
  """The BatchNorm layer that follows a convolution, by the models' naming
  (`.../conv_0/kernel` -> `.../bn_0`, `stem/conv` -> `stem/bn`,
  `shortcut_conv` -> `shortcut_bn`); None for a layer not named conv."""
  layer = kernel_path.rsplit('/', 1)[0]
  head, _, name = layer.rpartition('/')
  if 'conv' not in name:
    return None
  return f"{head + '/' if head else ''}{name.replace('conv', 'bn', 1)}"


def unit_leaves(paths: list[str], kernel_path: str) -> list[int]:
  """Indices of the per-unit leaves of a kernel's units: its 'bias' and
  its BatchNorm's 'scale' and 'bias' (those present)."""
  layer = kernel_path.rsplit('/', 1)[0]
  norm = norm_layer(kernel_path)
  names = [f'{layer}/bias'] + ([f'{norm}/scale', f'{norm}/bias'] if norm
                               else [])
  return [paths.index(n) for n in names if n in paths]


def mask_biases(mask: Mask, structure, prunable: masks_lib.LeafFilter
                ) -> Mask:
  """With 'channels', a removed unit's bias and its BatchNorm scale and
  shift (`unit_leaves`) are masked too, so the unit outputs exactly zero
  before its activation; other structures return `mask` unchanged."""
  if parse(structure).kind != 'channels':
    return mask
  paths = masks_lib.leaf_paths(mask)
  leaves = jax.tree.leaves(mask)
  out = list(leaves)
  for path, m in zip(paths, leaves):
    if not prunable(path, m) or is_output(path) or '/' not in path:
      continue
    live = jnp.any(m, axis=tuple(range(jnp.ndim(m) - 1)))
    for i in unit_leaves(paths, path):
      if jnp.shape(leaves[i]) == jnp.shape(live):
        out[i] = leaves[i] & live
  return jax.tree.unflatten(jax.tree.structure(mask), out)
