"""Compaction (`models/compact.py`): the smaller network computes the same."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from ticketjax.core import pruning
from ticketjax.models import compact
from ticketjax.models import get_model


def _net(name='mlp', **kwargs):
  kwargs = kwargs or {'widths': (12, 8), 'input_shape': 6, 'num_classes': 5}
  model = get_model(name, **kwargs)
  params, state = model.init(jax.random.PRNGKey(0))
  # biases non-zero, so a unit whose bias survives is not silently zero
  params = jax.tree.map(
      lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(x.size),
                                            x.shape), params)
  return model, kwargs, params, state


def _outputs(model, params, state, x):
  return np.asarray(model.apply(params, state, x, train=False)[0])


def _assert_same_outputs(small_model, small, model, params, mask, state, x):
  """The compacted network computes what the masked one does."""
  np.testing.assert_allclose(
      _outputs(small_model, small, {}, x),
      _outputs(model, masks.apply(params, mask), state, x),
      rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('scope', pruning.SCOPES)
def test_channel_pruned_mlp_compacts_to_the_same_outputs(scope):
  model, kwargs, params, state = _net()
  mask = pruning.by_score(
      'magnitude', scope,
      pruning.ScoreContext(params, masks.ones_like(params)), 0.5,
      structure='channels')
  small_model, small, info = compact.compact('mlp', kwargs, params, mask)
  assert info['widths_before'] == (12, 8)
  if scope == 'layerwise':
    assert info['widths'] == (6, 4)
  assert info['params'] < info['params_before']
  x = jax.random.normal(jax.random.PRNGKey(1), (32, 6))
  _assert_same_outputs(small_model, small, model, params, mask, state, x)


def test_dead_units_with_live_biases_fold_into_the_next_bias():
  model, kwargs, params, state = _net()
  mask = masks.ones_like(params)
  k0 = np.ones((6, 12), bool)
  k0[:, [1, 4]] = False  # no input, bias alive: a constant relu(b)
  k1 = np.ones((12, 8), bool)
  k1[7] = False  # no output: unused
  k1[:, 2] = False
  b1 = np.ones(8, bool)
  b1[2] = False  # no input, no bias: zero
  mask['dense_0']['kernel'] = jnp.asarray(k0)
  mask['dense_1']['kernel'] = jnp.asarray(k1)
  mask['dense_1']['bias'] = jnp.asarray(b1)
  small_model, small, info = compact.compact('mlp', kwargs, params, mask)
  assert info['widths'] == (9, 7)
  x = jax.random.normal(jax.random.PRNGKey(2), (16, 6))
  _assert_same_outputs(small_model, small, model, params, mask, state, x)


def test_lenet_compacts():
  model, kwargs, params, state = _net('lenet_300_100', input_shape=(28, 28))
  mask = pruning.layerwise_magnitude(params, masks.ones_like(params), 0.5,
                                     structure='channels')
  small_model, small, info = compact.compact('lenet_300_100', kwargs, params,
                                             mask)
  assert info['widths'] == (150, 50)
  x = jax.random.normal(jax.random.PRNGKey(3), (8, 28, 28))
  _assert_same_outputs(small_model, small, model, params, mask, state, x)


def test_unsupported_models_and_disconnected_masks_are_refused():
  with pytest.raises(ValueError, match='plain MLPs'):
    compact.check('mnist1d_mlp', {})
  with pytest.raises(ValueError, match='plain MLPs'):
    compact.check('mlp', {'residual': True})
  _, kwargs, params, _ = _net()
  mask = masks.ones_like(params)
  mask['dense_1']['kernel'] = jnp.zeros((12, 8), bool)
  mask['dense_1']['bias'] = jnp.zeros(8, bool)
  with pytest.raises(ValueError, match='disconnects'):
    compact.compact('mlp', kwargs, params, mask)
