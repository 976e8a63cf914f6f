"""Mask operations: structure, counts, summaries, overlaps; jit and vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from testlib import tiny_mlp


def _params():
  return tiny_mlp().init(jax.random.PRNGKey(0))[0]


def test_ones_like_and_default_filter():
  params = _params()
  mask = masks.ones_like(params)
  assert jax.tree.structure(mask) == jax.tree.structure(params)
  assert all(m.dtype == jnp.bool_ and bool(m.all())
             for m in jax.tree.leaves(mask))
  flags = masks.prunable_tree(params)
  assert flags == {'dense_0': {'bias': False, 'kernel': True},
                   'output': {'bias': False, 'kernel': True}}
  excl = masks.prunable_tree(params, masks.make_filter(exclude=('output',)))
  assert excl['output']['kernel'] is False and excl['dense_0']['kernel']


def test_apply_zeroes_masked_entries():
  params = _params()
  mask = jax.tree.map(lambda x: jnp.arange(x.size).reshape(x.shape) % 2 == 0,
                      params)
  out = masks.apply(params, mask)
  for p, m, o in zip(jax.tree.leaves(params), jax.tree.leaves(mask),
                     jax.tree.leaves(out)):
    np.testing.assert_array_equal(o, np.where(m, p, 0.0))


def test_counts_and_summary_exact():
  params = _params()  # dense_0/kernel 8x16=128, output/kernel 16x3=48
  mask = masks.ones_like(params)
  mask['dense_0']['kernel'] = mask['dense_0']['kernel'].at[:2].set(False)
  mask['dense_0']['bias'] = mask['dense_0']['bias'].at[0].set(False)
  c = masks.counts(mask)
  assert c['total'] == {'dense_0/kernel': 128, 'output/kernel': 48}
  assert int(c['kept']['dense_0/kernel']) == 96
  assert int(c['kept/total']) == 96 + 48 and c['total/total'] == 176
  s = jax.jit(masks.summary)(mask)
  np.testing.assert_allclose(s['density/dense_0/kernel'], 0.75)
  np.testing.assert_allclose(s['density/total'], 144 / 176)
  np.testing.assert_allclose(s['sparsity/total'], 32 / 176, rtol=1e-6)
  assert int(s['kept/total']) == 144


def test_summary_vmaps_over_seeds():
  params = _params()
  mask_S = jax.tree.map(lambda m: jnp.stack([m, jnp.zeros_like(m)]),
                        masks.ones_like(params))
  s = jax.vmap(masks.summary)(mask_S)
  np.testing.assert_allclose(s['density/total'], [1.0, 0.0])


def test_overlap_jaccard_and_hamming():
  params = _params()
  a = masks.ones_like(params)
  b = masks.ones_like(params)
  b['output']['kernel'] = jnp.zeros((16, 3), bool)
  # kept sets: |A| = 176, |B| = 128, both = 128, union = 176, differ = 48
  np.testing.assert_allclose(masks.jaccard(a, b), 128 / 176)
  np.testing.assert_allclose(masks.hamming(a, b), 48 / 176)
  assert int(masks.hamming(a, b, normalized=False)) == 48
  np.testing.assert_allclose(jax.jit(masks.jaccard)(a, a), 1.0)
  np.testing.assert_allclose(masks.hamming(a, a), 0.0)


def test_validate_rejects_wrong_structure_shape_dtype():
  params = _params()
  mask = masks.ones_like(params)
  bad_struct = {'dense_0': mask['dense_0']}
  with pytest.raises(ValueError, match='structure'):
    masks.validate(bad_struct, params)
  bad_shape = jax.tree.map(lambda m: m, mask)
  bad_shape['output']['kernel'] = jnp.ones((3, 16), bool)
  with pytest.raises(ValueError, match="'output/kernel' has shape"):
    masks.validate(bad_shape, params)
  bad_dtype = jax.tree.map(lambda m: m.astype(jnp.float32), mask)
  with pytest.raises(ValueError, match='boolean'):
    masks.validate(bad_dtype, params)
