"""Selection by counting equals a stable argsort, on both code paths."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from ticketjax.core import pruning
from ticketjax.core import selection
from ticketjax.methods.imp import core as imp
from testlib import tiny_mlp


def _want(values, kept):
  """The kept mask a stable ascending argsort gives (earlier dropped first)."""
  order = np.argsort(values, kind='stable')
  want = np.zeros(values.size, bool)
  if kept:
    want[order[values.size - kept:]] = True
  return want


def test_float_keys_order_like_the_floats():
  x = np.array([np.nan, np.inf, 3.5, 1e-30, 0.0, -0.0, -1e-30, -2.0,
                -np.inf], np.float32)
  keys = np.asarray(selection.float_keys(x))
  assert (np.diff(keys[::-1].astype(np.int64)) >= 0).all()
  assert keys[4] == keys[5]  # -0.0 == 0.0
  assert keys.min() > 0  # 0 is below every float


# 70_000 > BISECT_MAX takes the radix path
@pytest.mark.parametrize('n', [1, 10, 1000, 70_000])
def test_keep_largest_equals_stable_argsort_on_signed_ties(n):
  rng = np.random.default_rng(n)
  x = rng.integers(-4, 5, size=n).astype(np.float32)  # many ties
  x[rng.random(n) < 0.1] = -0.0
  x[rng.random(n) < 0.01] = -np.inf
  x[rng.random(n) < 0.01] = np.nan
  keep = jax.jit(lambda x, k: selection.keep_largest(
      selection.float_keys(x), k))
  for kept in sorted({0, 1, n // 3, n // 2, n - 1, n}):
    np.testing.assert_array_equal(keep(x, kept), _want(x + 0.0, kept))


@pytest.mark.parametrize('n', [300, 70_000])
def test_pruning_core_equals_argsort_with_pruned_first(n):
  """Unstructured pruning is the argsort rule it replaced: survivors'
  scores with -inf at pruned entries, the lowest `n_remove` dropped."""
  rng = np.random.default_rng(n + 1)
  scores = rng.integers(0, 6, size=n).astype(np.float32)
  mask = rng.random(n) < 0.7
  for rate in (0.0, 0.2, 0.5, 0.9):
    got = jax.jit(lambda s, m, r: pruning.global_(
        {'l': {'kernel': s[:, None]}}, {'l': {'kernel': m[:, None]}}, r)[
            'l']['kernel'][:, 0])(scores, mask, rate)
    remaining = int(mask.sum())
    n_remove = int(np.floor(np.float32(rate) * np.float32(remaining) + 0.5))
    want = _want(np.where(mask, scores, -np.inf), remaining - n_remove)
    np.testing.assert_array_equal(got, want & mask)


def test_random_to_counts_keeps_earlier_ties_like_the_argsort_it_replaced():
  params = tiny_mlp().init(jax.random.PRNGKey(0))[0]
  rng = np.random.default_rng(0)
  mask = jax.tree.map(lambda p: jnp.asarray(rng.random(p.shape) < 0.6),
                      masks.ones_like(params))
  counts = {p: int(c) // 2 for p, c in masks.counts(mask)['kept'].items()}
  key = jax.random.PRNGKey(3)
  got = imp.random_to_counts(key, mask, counts, masks.is_kernel)
  paths = masks.leaf_paths(mask)
  for i, (path, m, g) in enumerate(zip(paths, jax.tree.leaves(mask),
                                       jax.tree.leaves(got))):
    if not masks.is_kernel(path, m):
      np.testing.assert_array_equal(g, m)
      continue
    u = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), m.shape))
    scores = np.where(m, u, -1.0).reshape(-1)
    rank = np.empty(scores.size, int)
    rank[np.argsort(-scores, kind='stable')] = np.arange(scores.size)
    want = (rank < counts[path]).reshape(m.shape) & np.asarray(m)
    np.testing.assert_array_equal(g, want)


def test_conv2_prune_level_compiles_to_no_sort():
  """The point of the module: pruning a Conv-2 (4.2M-weight dense layer)
  with its controls runs no sort (XLA:CPU sorts take seconds there)."""
  from ticketjax import models  # pylint: disable=g-import-not-at-top
  params = jax.eval_shape(models.get_model('conv2').init,
                          jax.random.PRNGKey(0))[0]
  cfg = imp.ImpConfig(levels=1,
                      rates={'conv': 0.1, 'dense': 0.2, 'output': 0.1})
  mask = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, jnp.bool_),
                      params)
  lowered = jax.jit(lambda p, m, r, k: imp.prune_level(cfg, 1, p, m, r, k)
                    ).lower(params, mask, mask, jax.random.PRNGKey(0))
  assert 'stablehlo.sort' not in lowered.as_text()
