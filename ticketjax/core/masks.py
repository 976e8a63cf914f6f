"""Pure operations on masks: pytrees of booleans shaped like the params.

A mask has exactly the tree structure and leaf shapes of the params it masks.
Leaves that are not prunable (biases, normalization parameters, by default)
carry all-True masks, so every mask is a complete tree with no `None` leaves:
it vmaps, checkpoints and restores like the params.

Words: *density* is the fraction of weights kept, *sparsity* the fraction
removed (density + sparsity = 1). Counts and fractions are computed over the
prunable leaves unless a function says otherwise.

Every function here is pure and safe under `jax.jit` and `jax.vmap`; the
prunable-leaf filter is static Python, decided by leaf path and shape.
"""
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core.types import Mask, PyTree

# `filter(path, leaf) -> bool`: `path` is the '/'-joined key path
# ('dense_0/kernel'), `leaf` the array (only its shape/ndim may be used).
LeafFilter = Callable[[str, jax.Array], bool]

KERNEL_NAMES = ('kernel',)


def path_str(path) -> str:
  """'/'-joined names of a jax key path: ('a', 'b') -> 'a/b'."""
  parts = []
  for entry in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(entry, attr):
        parts.append(str(getattr(entry, attr)))
        break
    else:
      parts.append(str(entry))
  return '/'.join(parts)


def leaf_paths(tree: PyTree) -> list[str]:
  """The '/'-joined paths of the leaves of `tree`, in flattening order."""
  return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def is_kernel(path: str, leaf) -> bool:
  """Default prunable filter: weight kernels (named 'kernel', ndim >= 2)."""
  return path.rsplit('/', 1)[-1] in KERNEL_NAMES and jnp.ndim(leaf) >= 2


def make_filter(
    include: Sequence[str] = KERNEL_NAMES, exclude: Sequence[str] = ()
) -> LeafFilter:
  """A prunable filter: leaf name in `include`, no `exclude` substring in path.

  Example: `make_filter(exclude=('output',))` keeps the output layer dense,
  as Frankle et al. do for ResNet-20 ("fc 0%").
  """
  include, exclude = tuple(include), tuple(exclude)

  def prunable(path: str, leaf) -> bool:
    return (path.rsplit('/', 1)[-1] in include and jnp.ndim(leaf) >= 2
            and not any(pattern in path for pattern in exclude))

  return prunable


def prunable_tree(params: PyTree, prunable: LeafFilter = is_kernel) -> PyTree:
  """A pytree of Python bools: which leaves the filter marks prunable."""
  return jax.tree_util.tree_map_with_path(
      lambda p, x: bool(prunable(path_str(p), x)), params)


def ones_like(params: PyTree) -> Mask:
  """The all-True mask of `params` (nothing pruned)."""
  return jax.tree.map(lambda x: jnp.ones(jnp.shape(x), jnp.bool_), params)


def validate(mask: Mask, params: PyTree) -> None:
  """Raises ValueError unless `mask` has the structure and shapes of params."""
  mask_def = jax.tree.structure(mask)
  params_def = jax.tree.structure(params)
  if mask_def != params_def:
    raise ValueError(
        'mask tree structure differs from the params: mask leaves '
        f'{leaf_paths(mask)} vs params leaves {leaf_paths(params)}')
  for path, m, p in zip(leaf_paths(params), jax.tree.leaves(mask),
                        jax.tree.leaves(params)):
    if jnp.shape(m) != jnp.shape(p):
      raise ValueError(f'mask leaf {path!r} has shape {jnp.shape(m)} but the '
                       f'param has shape {jnp.shape(p)}; they must be equal')
    if jnp.result_type(m) != jnp.bool_:
      raise ValueError(f'mask leaf {path!r} has dtype {jnp.result_type(m)}; '
                       'masks must be boolean')


def apply(params: PyTree, mask: Mask) -> PyTree:
  """Zeroes the masked-out entries of `params` (any pytree shaped like it)."""
  return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros_like(x)),
                      params, mask)


def counts(mask: Mask, prunable: LeafFilter = is_kernel) -> dict:
  """Kept and total entries, per prunable leaf and over all prunable leaves.

  Returns:
    `{'kept': {path: int array}, 'total': {path: int}, 'kept/total': int
    array, 'total/total': int}` where the per-leaf dicts cover prunable
    leaves only.
  """
  kept, total = {}, {}
  for path, m in zip(leaf_paths(mask), jax.tree.leaves(mask)):
    if prunable(path, m):
      kept[path] = jnp.sum(m, dtype=jnp.int32)
      total[path] = int(jnp.size(m))
  return {
      'kept': kept,
      'total': total,
      'kept/total': sum(kept.values(), jnp.int32(0)),
      'total/total': sum(total.values()),
  }


def summary(mask: Mask, prunable: LeafFilter = is_kernel) -> dict:
  """Density and sparsity per prunable leaf and overall (flat dict).

  Keys: 'density/<path>', 'density/total', 'sparsity/total', 'kept/total',
  'total/total'. Values are scalar arrays (vmap adds a seed axis).
  """
  c = counts(mask, prunable)
  out = {f'density/{p}': c['kept'][p] / c['total'][p] for p in c['kept']}
  density = c['kept/total'] / max(c['total/total'], 1)
  out.update({
      'density/total': density,
      'sparsity/total': 1.0 - density,
      'kept/total': c['kept/total'],
      'total/total': jnp.int32(c['total/total']),
  })
  return out


def member_densities(mask_M: Mask, prunable: LeafFilter = is_kernel
                     ) -> list[dict]:
  """Per member of a stacked mask [M, ...]: {'density': overall,
  'density_per_layer': {path: density}} as Python floats (for records)."""
  # one compiled program, not an op-by-op compile per leaf shape
  dens = jax.tree.map(np.asarray, jax.jit(jax.vmap(
      lambda m: summary(m, prunable)))(mask_M))
  layers = {k[len('density/'):]: v for k, v in dens.items()
            if k.startswith('density/') and k != 'density/total'}
  return [{'density': float(dens['density/total'][i]),
           'density_per_layer': {k: float(v[i]) for k, v in layers.items()}}
          for i in range(len(dens['density/total']))]


def _pair_counts(mask_a, mask_b, prunable):
  both = either = differ = total = jnp.int32(0)
  for path, a, b in zip(leaf_paths(mask_a), jax.tree.leaves(mask_a),
                        jax.tree.leaves(mask_b)):
    if not prunable(path, a):
      continue
    both += jnp.sum(a & b, dtype=jnp.int32)
    either += jnp.sum(a | b, dtype=jnp.int32)
    differ += jnp.sum(a ^ b, dtype=jnp.int32)
    total += jnp.size(a)
  return both, either, differ, total


def jaccard(mask_a: Mask, mask_b: Mask,
            prunable: LeafFilter = is_kernel) -> jax.Array:
  """Jaccard index of the kept sets: |A ∩ B| / |A ∪ B| (1 when both empty)."""
  both, either, _, _ = _pair_counts(mask_a, mask_b, prunable)
  return jnp.where(either > 0, both / jnp.maximum(either, 1), 1.0)


def hamming(mask_a: Mask, mask_b: Mask, prunable: LeafFilter = is_kernel,
            normalized: bool = True) -> jax.Array:
  """Hamming distance: entries kept in one mask and not the other.

  With `normalized` (default) it is divided by the number of prunable
  entries, so it lies in [0, 1].
  """
  _, _, differ, total = _pair_counts(mask_a, mask_b, prunable)
  return differ / jnp.maximum(total, 1) if normalized else differ
