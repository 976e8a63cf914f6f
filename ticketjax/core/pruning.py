"""Pruning rules: pure functions from (params or scores, mask, rates) to a mask.

Every rule removes a *rate* (a fraction of the weights that currently
survive) from the prunable leaves and returns the new mask. Rates are per
leaf for layerwise rules and one number for global rules.

Count semantics, shared by every rule:
  * a leaf (or, for global rules, the pool of all prunable leaves) with
    `n` surviving weights loses exactly `floor(rate * n + 0.5)` of them:
    the product is rounded to the nearest integer, halves rounded up,
    computed in float32;
  * the weights removed are those with the lowest score among the survivors;
    ties are broken by position: the earlier flat index (for global rules,
    the earlier leaf in tree-flattening order, then the earlier index) is
    removed first;
  * pruned weights never come back (the new mask is a subset of the old one)
    and a rate of 0 returns the mask unchanged.

Rates must lie in [0, 1); concrete rates are checked before any work,
traced rates (a vmapped sweep over pruning rates) are the caller's business.

Rate specifications (`rates` argument of layerwise rules) are either one
number for every prunable leaf, or a mapping resolved per prunable leaf in
this order: its exact path ('dense_1/kernel'), the longest key that is a
layer prefix of its path ('dense_1'), 'output' for the output layer (path
starting with 'output/'), 'conv' for kernels with ndim >= 3, 'dense' for
ndim == 2, then 'default'. Frankle & Carbin's LeNet protocol is
`{'dense': 0.2, 'output': 0.1}`; their Conv-6 one adds `'conv': 0.15`.
"""
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import scores as scores_lib
from ticketjax.core import selection
from ticketjax.core.masks import LeafFilter, is_kernel
from ticketjax.core.scores import ScoreContext
from ticketjax.core.types import Mask, PyTree

RATE_KINDS = ('output', 'conv', 'dense', 'default')


def _check_rate(rate, where: str) -> None:
  if isinstance(rate, jax.core.Tracer):
    return
  value = np.asarray(rate)
  if value.ndim != 0:
    raise ValueError(f'pruning rate for {where} must be a single number, got '
                     f'shape {value.shape}')
  if not (np.isfinite(value) and 0.0 <= value < 1.0):
    raise ValueError(f'pruning rate for {where} is {float(value)}; rates are '
                     'fractions of the surviving weights to remove and must '
                     'lie in [0, 1)')


def _rate_for(path: str, leaf, rates: Mapping) -> float:
  if path in rates:
    return rates[path]
  prefixes = [k for k in rates if path.startswith(k + '/')]
  if prefixes:
    return rates[max(prefixes, key=len)]
  if path.startswith('output/') and 'output' in rates:
    return rates['output']
  kind = 'conv' if jnp.ndim(leaf) >= 3 else 'dense'
  if kind in rates:
    return rates[kind]
  if 'default' in rates:
    return rates['default']
  raise ValueError(
      f'no pruning rate for prunable leaf {path!r}: give its path, a layer '
      f'prefix of it, or one of the kinds {RATE_KINDS}; got keys '
      f'{sorted(rates)}')


def resolve_rates(rates, params: PyTree,
                  prunable: LeafFilter = is_kernel) -> PyTree:
  """Per-leaf rates: the spec resolved for prunable leaves, 0 elsewhere.

  Raises:
    ValueError: a rate outside [0, 1), a leaf with no rate, or a mapping key
      that matches no prunable leaf (a typo would otherwise prune nothing).
  """
  paths = masks_lib.leaf_paths(params)
  leaves = jax.tree.leaves(params)
  flags = [bool(prunable(p, x)) for p, x in zip(paths, leaves)]
  if isinstance(rates, Mapping):
    rates = dict(rates)
    out = []
    for path, leaf, flag in zip(paths, leaves, flags):
      if not flag:
        out.append(0.0)
        continue
      rate = _rate_for(path, leaf, rates)
      _check_rate(rate, repr(path))
      out.append(rate)
    matchable = {k for k in rates if k in RATE_KINDS or k in paths
                 or any(p.startswith(k + '/') for p in paths)}
    unknown = sorted(set(rates) - matchable)
    if unknown:
      raise ValueError(
          f'pruning rate keys {unknown} match no prunable leaf; valid keys '
          f'are leaf paths or layer prefixes of '
          f'{[p for p, f in zip(paths, flags) if f]} or the kinds {RATE_KINDS}')
  else:
    _check_rate(rates, 'all prunable leaves')
    out = [rates if flag else 0.0 for flag in flags]
  return jax.tree.unflatten(jax.tree.structure(params), out)


def _survivor_keys(scores, mask, rate):
  """(keys, kept): the selection that drops the `rate` lowest-scoring
  survivors (key 0, below every score, for the pruned entries)."""
  remaining = jnp.sum(mask, dtype=jnp.int32)
  n_remove = jnp.floor(jnp.asarray(rate, jnp.float32)
                       * remaining.astype(jnp.float32) + 0.5).astype(jnp.int32)
  keys = jnp.where(mask.reshape(-1), selection.float_keys(scores.reshape(-1)),
                   jnp.uint32(0))
  return keys, remaining - n_remove


def _keep_highest(scores, mask, rate):
  """Flat core of every rule: drop the `rate` lowest-scoring survivors.

  A selection, not a sort (`ticketjax.selection`): the same mask as a
  stable argsort of the scores with the pruned entries first.
  """
  keys, kept = _survivor_keys(scores, mask, rate)
  return selection.keep_largest(keys, kept).reshape(mask.shape) & mask


def layerwise(scores: PyTree, mask: Mask, rates,
              prunable: LeafFilter = is_kernel) -> Mask:
  """Each prunable leaf loses its rate of survivors, lowest scores first."""
  masks_lib.validate(mask, scores)
  rate_tree = resolve_rates(rates, scores, prunable)
  flags = jax.tree.leaves(masks_lib.prunable_tree(scores, prunable))
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  r_leaves = jax.tree.leaves(rate_tree)
  picked = [i for i, f in enumerate(flags) if f]
  pairs = [_survivor_keys(s_leaves[i], m_leaves[i], r_leaves[i])
           for i in picked]
  kept = selection.keep_largest_each([k for k, _ in pairs],
                                     [c for _, c in pairs])
  out = list(m_leaves)
  for i, keep in zip(picked, kept):
    out[i] = keep.reshape(m_leaves[i].shape) & m_leaves[i]
  return jax.tree.unflatten(jax.tree.structure(mask), out)


def global_(scores: PyTree, mask: Mask, rate,
            prunable: LeafFilter = is_kernel) -> Mask:
  """All prunable leaves pooled lose `rate` of their survivors together."""
  masks_lib.validate(mask, scores)
  if isinstance(rate, Mapping):
    raise ValueError('global pruning takes one rate for all prunable leaves, '
                     f'got a mapping with keys {sorted(rate)}')
  _check_rate(rate, 'global pruning')
  flags = jax.tree.leaves(masks_lib.prunable_tree(scores, prunable))
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  picked = [i for i, f in enumerate(flags) if f]
  if not picked:
    return mask
  pooled = _keep_highest(
      jnp.concatenate([s_leaves[i].reshape(-1) for i in picked]),
      jnp.concatenate([m_leaves[i].reshape(-1) for i in picked]), rate)
  out, offset = list(m_leaves), 0
  for i in picked:
    size = m_leaves[i].size
    out[i] = pooled[offset:offset + size].reshape(m_leaves[i].shape)
    offset += size
  return jax.tree.unflatten(jax.tree.structure(mask), out)


SCOPES = ('layerwise', 'global')


def check_scope(scope: str) -> None:
  if scope not in SCOPES:
    raise ValueError(f'unknown pruning scope {scope!r}; valid scopes are '
                     f'{list(SCOPES)}')


def by_score(name: str, scope: str, ctx: ScoreContext, rates,
             prunable: LeafFilter = is_kernel) -> Mask:
  """Removes `rates` of `ctx.mask`'s survivors, lowest `scores.SCORES[name]`
  first, each layer on its own (`layerwise`: a rate spec) or all prunable
  layers pooled (`global`: one rate)."""
  check_scope(scope)
  values = scores_lib.get(name)(ctx)
  if scope == 'global':
    return global_(values, ctx.mask, rates, prunable)
  return layerwise(values, ctx.mask, rates, prunable)


# Rules of the registry share one signature so configs can name them.
def layerwise_magnitude(params, mask, rates, *, key=None, prunable=is_kernel):
  """Layerwise magnitude pruning (Frankle & Carbin)."""
  del key
  return by_score('magnitude', 'layerwise', ScoreContext(params, mask),
                  rates, prunable)


def global_magnitude(params, mask, rates, *, key=None, prunable=is_kernel):
  """Global magnitude pruning on raw |w| (as open_lth)."""
  del key
  return by_score('magnitude', 'global', ScoreContext(params, mask), rates,
                  prunable)


def global_magnitude_normalized(params, mask, rates, *, key=None,
                                prunable=is_kernel):
  """Global magnitude on |w| / ||w_leaf|| (as jaxpruner's default)."""
  del key
  masks_lib.validate(mask, params)
  return by_score('magnitude_normalized', 'global',
                  ScoreContext(params, mask), rates, prunable)


def random_pruning(params, mask, rates, *, key=None, prunable=is_kernel):
  """Random pruning with the per-leaf counts of layerwise pruning."""
  if key is None:
    raise ValueError('random pruning needs a PRNG key (key=...)')
  return by_score('random', 'layerwise', ScoreContext(params, mask, key),
                  rates, prunable)


PRUNERS: dict[str, Callable[..., Mask]] = {
    'layerwise_magnitude': layerwise_magnitude,
    'global_magnitude': global_magnitude,
    'global_magnitude_normalized': global_magnitude_normalized,
    'random': random_pruning,
}


def register_pruner(name: str, rule: Callable[..., Mask]) -> None:
  """Adds `rule(params, mask, rates, *, key, prunable) -> mask`."""
  if name in PRUNERS:
    raise ValueError(f'pruning rule {name!r} is already registered')
  PRUNERS[name] = rule


def get_pruner(name: str) -> Callable[..., Mask]:
  if name not in PRUNERS:
    raise ValueError(f'unknown pruning rule {name!r}; valid rules are '
                     f'{sorted(PRUNERS)}')
  return PRUNERS[name]


def prune(name: str, params: PyTree, mask: Mask, rates, *, key=None,
          prunable: LeafFilter = is_kernel) -> Mask:
  """Applies the registered rule `name`; see the module docstring."""
  return get_pruner(name)(params, mask, rates, key=key, prunable=prunable)


def shuffle(key: jax.Array, mask: Mask,
            prunable: LeafFilter = is_kernel) -> Mask:
  """Each prunable leaf's survivors moved to random places: same counts.

  This is the "layerwise shuffle" control of Frankle et al. (2021): a
  uniformly random subset of the leaf's positions of the size of its
  survivors, which is what a random permutation of the leaf's mask gives
  (drawn by selection on uniform scores rather than by a permutation, a
  sort that takes seconds per million weights on CPU). Non-prunable leaves
  are returned unchanged.
  """
  flags = jax.tree.leaves(masks_lib.prunable_tree(mask, prunable))
  leaves = jax.tree.leaves(mask)
  picked = [i for i, f in enumerate(flags) if f]
  kept = selection.keep_largest_each(
      [selection.float_keys(jax.random.uniform(jax.random.fold_in(key, i),
                                               leaves[i].shape))
       for i in picked],
      [jnp.sum(leaves[i], dtype=jnp.int32) for i in picked])
  out = list(leaves)
  for i, keep in zip(picked, kept):
    out[i] = keep.reshape(leaves[i].shape)
  return jax.tree.unflatten(jax.tree.structure(mask), out)


def rate_for_density(current_density: float, target_density: float) -> float:
  """The rate that takes `current_density` to `target_density` in one prune.

  For one-shot pruning to a target: `rate_for_density(1.0, 0.1) == 0.9`.
  """
  if not 0.0 < target_density <= current_density <= 1.0:
    raise ValueError(
        f'target density {target_density} must lie in (0, current density '
        f'{current_density}]')
  return 1.0 - target_density / current_density
