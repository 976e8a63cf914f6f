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

Every rule takes a `structure` (`core/structure.py`): 'unstructured' (the
above), 'N:M' (at most N of every M weights along the input axis) or
'channels' (whole output units), with the counts that module documents.

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
from ticketjax.core import structure as structure_lib
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


def _removed(rate, count):
  """floor(rate * count + 0.5) in float32, as int32: the count removed."""
  return jnp.floor(jnp.asarray(rate, jnp.float32) * count.astype(jnp.float32)
                   + 0.5).astype(jnp.int32)


def _plan(scores, mask, st: structure_lib.Structure):
  """What one leaf offers a selection under structure `st`.

  Returns (keys, survivors, cap, expand): flat uint32 keys of the
  candidates (weights, or units for 'channels'; 0 for those that may not
  stay), the survivors a rate applies to, the most that may stay, and
  `expand(flat keep) -> the leaf's new mask`.
  """
  if st.kind == 'channels':
    unit_score, live = structure_lib.unit_scores(scores, mask)
    keys = jnp.where(live, selection.float_keys(unit_score), jnp.uint32(0))
    survivors = jnp.sum(live, dtype=jnp.int32)
    per_unit = (1,) * (mask.ndim - 1) + (-1,)
    return (keys, survivors, survivors,
            lambda keep: mask & keep.reshape(per_unit))
  keys = jnp.where(mask, selection.float_keys(scores), jnp.uint32(0))
  survivors = jnp.sum(mask, dtype=jnp.int32)
  allowed, cap = mask, survivors
  if st.kind == 'nm':
    allowed = structure_lib.nm_allowed(keys, mask, st.n, st.m)
    keys = jnp.where(allowed, keys, jnp.uint32(0))
    cap = jnp.sum(allowed, dtype=jnp.int32)
  return (keys.reshape(-1), survivors, cap,
          lambda keep: keep.reshape(mask.shape) & allowed)


def _picked(scores, prunable, st):
  """Indices of the leaves a rule selects in (channels skip the output)."""
  flags = jax.tree.leaves(masks_lib.prunable_tree(scores, prunable))
  paths = masks_lib.leaf_paths(scores)
  return [i for i, f in enumerate(flags)
          if f and not (st.kind == 'channels'
                        and structure_lib.is_output(paths[i]))]


def layerwise(scores: PyTree, mask: Mask, rates,
              prunable: LeafFilter = is_kernel,
              structure='unstructured') -> Mask:
  """Each prunable leaf loses its rate of survivors, lowest scores first
  (of units, for 'channels'; within the N:M groups for 'N:M')."""
  masks_lib.validate(mask, scores)
  st = structure_lib.parse(structure)
  structure_lib.check(st, scores, prunable)
  rate_tree = resolve_rates(rates, scores, prunable)
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  r_leaves = jax.tree.leaves(rate_tree)
  picked = _picked(scores, prunable, st)
  plans = [_plan(s_leaves[i], m_leaves[i], st) for i in picked]
  kept = selection.keep_largest_each(
      [keys for keys, _, _, _ in plans],
      [jnp.minimum(cap, n - _removed(r_leaves[i], n))
       for i, (_, n, cap, _) in zip(picked, plans)])
  out = list(m_leaves)
  for i, keep, plan in zip(picked, kept, plans):
    out[i] = plan[3](keep)
  new = jax.tree.unflatten(jax.tree.structure(mask), out)
  return structure_lib.mask_biases(new, st, prunable)


def global_(scores: PyTree, mask: Mask, rate,
            prunable: LeafFilter = is_kernel,
            structure='unstructured') -> Mask:
  """All prunable leaves pooled lose `rate` of their survivors together
  (units, for 'channels'; within the N:M groups for 'N:M')."""
  masks_lib.validate(mask, scores)
  if isinstance(rate, Mapping):
    raise ValueError('global pruning takes one rate for all prunable leaves, '
                     f'got a mapping with keys {sorted(rate)}')
  _check_rate(rate, 'global pruning')
  st = structure_lib.parse(structure)
  structure_lib.check(st, scores, prunable)
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  picked = _picked(scores, prunable, st)
  if not picked:
    return mask
  plans = [_plan(s_leaves[i], m_leaves[i], st) for i in picked]
  survivors = sum(n for _, n, _, _ in plans)
  cap = sum(c for _, _, c, _ in plans)
  pooled = selection.keep_largest(
      jnp.concatenate([keys for keys, _, _, _ in plans]),
      jnp.minimum(cap, survivors - _removed(rate, survivors)))
  out, offset = list(m_leaves), 0
  for i, (keys, _, _, expand) in zip(picked, plans):
    out[i] = expand(pooled[offset:offset + keys.size])
    offset += keys.size
  new = jax.tree.unflatten(jax.tree.structure(mask), out)
  return structure_lib.mask_biases(new, st, prunable)


SCOPES = ('layerwise', 'global')


def check_scope(scope: str) -> None:
  if scope not in SCOPES:
    raise ValueError(f'unknown pruning scope {scope!r}; valid scopes are '
                     f'{list(SCOPES)}')


def by_score(name: str, scope: str, ctx: ScoreContext, rates,
             prunable: LeafFilter = is_kernel,
             structure='unstructured', invert: bool = False) -> Mask:
  """Removes `rates` of `ctx.mask`'s survivors, lowest `scores.SCORES[name]`
  first, each layer on its own (`layerwise`: a rate spec) or all prunable
  layers pooled (`global`: one rate), under a `structure` constraint.
  `invert` removes the highest scores first instead (the sanity checks'
  inversion)."""
  check_scope(scope)
  values = scores_lib.get(name)(ctx)
  if invert:
    values = jax.tree.map(jnp.negative, values)
  if scope == 'global':
    return global_(values, ctx.mask, rates, prunable, structure)
  return layerwise(values, ctx.mask, rates, prunable, structure)


# Rules of the registry share one signature so configs can name them.
def layerwise_magnitude(params, mask, rates, *, key=None, prunable=is_kernel,
                        structure='unstructured'):
  """Layerwise magnitude pruning (Frankle & Carbin)."""
  del key
  return by_score('magnitude', 'layerwise', ScoreContext(params, mask),
                  rates, prunable, structure)


def global_magnitude(params, mask, rates, *, key=None, prunable=is_kernel,
                     structure='unstructured'):
  """Global magnitude pruning on raw |w| (as open_lth)."""
  del key
  return by_score('magnitude', 'global', ScoreContext(params, mask), rates,
                  prunable, structure)


def global_magnitude_normalized(params, mask, rates, *, key=None,
                                prunable=is_kernel, structure='unstructured'):
  """Global magnitude on |w| / ||w_leaf|| (as jaxpruner's default)."""
  del key
  masks_lib.validate(mask, params)
  return by_score('magnitude_normalized', 'global',
                  ScoreContext(params, mask), rates, prunable, structure)


def random_pruning(params, mask, rates, *, key=None, prunable=is_kernel,
                   structure='unstructured'):
  """Random pruning with the per-leaf counts of layerwise pruning."""
  if key is None:
    raise ValueError('random pruning needs a PRNG key (key=...)')
  return by_score('random', 'layerwise', ScoreContext(params, mask, key),
                  rates, prunable, structure)


PRUNERS: dict[str, Callable[..., Mask]] = {
    'layerwise_magnitude': layerwise_magnitude,
    'global_magnitude': global_magnitude,
    'global_magnitude_normalized': global_magnitude_normalized,
    'random': random_pruning,
}


def register_pruner(name: str, rule: Callable[..., Mask]) -> None:
  """Adds `rule(params, mask, rates, *, key, prunable, structure) -> mask`."""
  if name in PRUNERS:
    raise ValueError(f'pruning rule {name!r} is already registered')
  PRUNERS[name] = rule


def get_pruner(name: str) -> Callable[..., Mask]:
  if name not in PRUNERS:
    raise ValueError(f'unknown pruning rule {name!r}; valid rules are '
                     f'{sorted(PRUNERS)}')
  return PRUNERS[name]


def prune(name: str, params: PyTree, mask: Mask, rates, *, key=None,
          prunable: LeafFilter = is_kernel, structure='unstructured') -> Mask:
  """Applies the registered rule `name` under `structure` (see
  `core/structure.py`; the module docstring gives the counts)."""
  return get_pruner(name)(params, mask, rates, key=key, prunable=prunable,
                          structure=structure)


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


def keep_counts(scores: PyTree, mask: Mask, kept_counts: Mapping,
                prunable: LeafFilter = is_kernel) -> Mask:
  """Each prunable leaf keeps its `kept_counts[path]` highest-scoring
  survivors (ties: the earlier position dropped first); other leaves are
  returned unchanged. The sanity checks' inversion keeps another mask's
  counts with its scores negated."""
  masks_lib.validate(mask, scores)
  paths = masks_lib.leaf_paths(mask)
  s_leaves, m_leaves = jax.tree.leaves(scores), jax.tree.leaves(mask)
  picked = [i for i, p in enumerate(paths) if prunable(p, m_leaves[i])]
  kept = selection.keep_largest_each(
      [jnp.where(m_leaves[i], selection.float_keys(s_leaves[i]),
                 jnp.uint32(0)).reshape(-1) for i in picked],
      [kept_counts[paths[i]] for i in picked])
  out = list(m_leaves)
  for i, keep in zip(picked, kept):
    out[i] = keep.reshape(m_leaves[i].shape) & m_leaves[i]
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
