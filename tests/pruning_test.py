"""Pruning rules: exact documented counts, ties, monotonicity, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from ticketjax.core import pruning
from testlib import tiny_mlp

KEY = jax.random.PRNGKey(0)


def _params(seed=0):
  return tiny_mlp().init(jax.random.PRNGKey(seed))[0]


def expected_removed(rate, n):
  """The documented rule: round half up of rate * n, in float32."""
  return int(np.floor(np.float32(rate) * np.float32(n) + np.float32(0.5)))


def _kept(mask):
  return {p: int(v) for p, v in masks.counts(mask)['kept'].items()}


@pytest.mark.parametrize('rule', ['layerwise_magnitude', 'random'])
@pytest.mark.parametrize('rates', [0.2, {'dense': 0.2, 'output': 0.1},
                                   {'dense_0/kernel': 0.55, 'output': 0.35}])
def test_layerwise_rules_remove_exact_counts_over_levels(rule, rates):
  params = _params()
  mask = masks.ones_like(params)
  per_leaf = {'dense_0/kernel': None, 'output/kernel': None}
  for level in range(6):
    before = _kept(mask)
    new = pruning.prune(rule, params, mask, rates, key=jax.random.fold_in(
        KEY, level))
    after = _kept(new)
    for path in per_leaf:
      leaf_rate = (rates if not isinstance(rates, dict) else
                   rates.get(path, rates.get(path.split('/')[0],
                             rates.get('dense'))))
      assert before[path] - after[path] == expected_removed(
          leaf_rate, before[path]), (level, path)
    # pruned weights never come back; unprunable leaves untouched
    for m_old, m_new in zip(jax.tree.leaves(mask), jax.tree.leaves(new)):
      assert not bool(jnp.any(m_new & ~m_old))
    assert bool(new['dense_0']['bias'].all()) and bool(new['output']['bias']
                                                         .all())
    mask = new


def test_layerwise_magnitude_removes_the_smallest():
  params = _params()
  mask = masks.ones_like(params)
  new = pruning.layerwise_magnitude(params, mask, 0.5)
  w = np.abs(np.asarray(params['dense_0']['kernel'])).ravel()
  kept = np.asarray(new['dense_0']['kernel']).ravel()
  assert w[kept].min() >= w[~kept].max()
  assert kept.sum() == 128 - expected_removed(0.5, 128)


def test_ties_broken_by_position_deterministically():
  params = {'dense_0': {'kernel': jnp.ones((4, 5))}}
  mask = masks.ones_like(params)
  new = pruning.layerwise_magnitude(params, mask, 0.3)  # removes 6 of 20
  flat = np.asarray(new['dense_0']['kernel']).ravel()
  np.testing.assert_array_equal(flat, np.arange(20) >= 6)
  glob = pruning.global_magnitude(
      {'a': {'kernel': jnp.ones((2, 2))}, 'b': {'kernel': jnp.ones((2, 2))}},
      masks.ones_like({'a': {'kernel': jnp.ones((2, 2))},
                       'b': {'kernel': jnp.ones((2, 2))}}), 0.75)
  assert not bool(glob['a']['kernel'].any())  # first leaf goes first
  assert int(glob['b']['kernel'].sum()) == 2


def test_rate_zero_changes_nothing():
  params = _params()
  mask = pruning.layerwise_magnitude(params, masks.ones_like(params), 0.4)
  for rule in pruning.PRUNERS:
    same = pruning.prune(rule, params, mask, 0.0, key=KEY)
    for a, b in zip(jax.tree.leaves(mask), jax.tree.leaves(same)):
      np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('rule', ['global_magnitude',
                                  'global_magnitude_normalized'])
def test_global_rules_remove_exact_pooled_count(rule):
  params = _params()
  mask = masks.ones_like(params)
  for _ in range(5):
    before = int(masks.counts(mask)['kept/total'])
    new = pruning.prune(rule, params, mask, 0.2)
    after = int(masks.counts(new)['kept/total'])
    assert before - after == expected_removed(0.2, before)
    for m_old, m_new in zip(jax.tree.leaves(mask), jax.tree.leaves(new)):
      assert not bool(jnp.any(m_new & ~m_old))
    mask = new


def test_global_magnitude_threshold_is_shared_and_unnormalized():
  params = _params()
  params['output']['kernel'] = params['output']['kernel'] * 100.0
  new = pruning.global_magnitude(params, masks.ones_like(params), 0.5)
  # 88 of 176 removed; the scaled-up output layer keeps everything
  assert bool(new['output']['kernel'].all())
  assert int(new['dense_0']['kernel'].sum()) == 128 - 88
  norm = pruning.global_magnitude_normalized(
      params, masks.ones_like(params), 0.5)
  assert not bool(norm['output']['kernel'].all())  # scale no longer matters


def test_exclude_filter_keeps_output_dense():
  params = _params()
  prunable = masks.make_filter(exclude=('output',))
  new = pruning.global_magnitude(params, masks.ones_like(params), 0.5,
                                 prunable=prunable)
  assert bool(new['output']['kernel'].all())
  assert int(new['dense_0']['kernel'].sum()) == 64


def test_shuffle_keeps_counts_and_moves_weights():
  params = _params()
  mask = pruning.layerwise_magnitude(params, masks.ones_like(params), 0.6)
  shuffled = pruning.shuffle(KEY, mask)
  assert _kept(shuffled) == _kept(mask)
  assert not np.array_equal(shuffled['dense_0']['kernel'],
                            mask['dense_0']['kernel'])


def test_rules_jit_and_vmap_over_seeds():
  params_S = jax.vmap(lambda k: tiny_mlp().init(k)[0])(
      jax.random.split(KEY, 3))
  mask_S = jax.vmap(masks.ones_like)(params_S)
  rates_S = jnp.array([0.1, 0.5, 0.8])  # a vmapped sweep over rates
  new_S = jax.jit(jax.vmap(pruning.layerwise_magnitude))(params_S, mask_S,
                                                         rates_S)
  kept = jax.vmap(lambda m: masks.counts(m)['kept/total'])(new_S)
  expected = [176 - expected_removed(r, 128) - expected_removed(r, 48)
              for r in (0.1, 0.5, 0.8)]
  np.testing.assert_array_equal(kept, expected)
  for i in range(3):
    single = pruning.layerwise_magnitude(
        jax.tree.map(lambda x: x[i], params_S),
        jax.tree.map(lambda x: x[i], mask_S), float(rates_S[i]))
    for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(new_S)):
      np.testing.assert_array_equal(a, b[i])


@pytest.mark.parametrize('rate', [-0.1, 1.0, 1.5, float('nan')])
def test_bad_rates_raise(rate):
  params = _params()
  with pytest.raises(ValueError, match=r'\[0, 1\)'):
    pruning.layerwise_magnitude(params, masks.ones_like(params), rate)
  with pytest.raises(ValueError, match=r'\[0, 1\)'):
    pruning.global_magnitude(params, masks.ones_like(params), rate)


def test_bad_rate_specs_and_names_raise():
  params = _params()
  mask = masks.ones_like(params)
  with pytest.raises(ValueError, match='match no prunable leaf'):
    pruning.layerwise_magnitude(params, mask, {'dense': 0.2, 'outptu': 0.1})
  with pytest.raises(ValueError, match='no pruning rate'):
    pruning.layerwise_magnitude(params, mask, {'output': 0.1})
  with pytest.raises(ValueError, match='one rate'):
    pruning.global_magnitude(params, mask, {'dense': 0.2})
  with pytest.raises(ValueError, match="unknown pruning rule 'magnitude'.*"
                     "global_magnitude"):
    pruning.prune('magnitude', params, mask, 0.2)
  with pytest.raises(ValueError, match='needs a PRNG key'):
    pruning.prune('random', params, mask, 0.2)
  wrong = jax.tree.map(lambda m: m, mask)
  wrong['output']['kernel'] = jnp.ones((2, 2), bool)
  with pytest.raises(ValueError, match='shape'):
    pruning.layerwise_magnitude(params, wrong, 0.2)


def test_rate_for_density():
  assert pruning.rate_for_density(1.0, 0.1) == pytest.approx(0.9)
  assert pruning.rate_for_density(0.5, 0.25) == pytest.approx(0.5)
  with pytest.raises(ValueError):
    pruning.rate_for_density(0.2, 0.5)
