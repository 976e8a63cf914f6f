"""Layer collapse (`core/connectivity.py`): paths through kept weights."""
import jax
import jax.numpy as jnp

from ticketjax.core import connectivity
from ticketjax.core import masks
from ticketjax.models import get_model


def _setup(name, **kwargs):
  model = get_model(name, **kwargs)
  params, state = model.init(jax.random.PRNGKey(0))
  return model, params, state, masks.ones_like(params)


def test_a_full_mask_reaches_every_output():
  model, params, state, mask = _setup('lenet_300_100', input_shape=(6,))
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (6,))) == 10
  assert int(connectivity.empty_layers(mask, masks.is_kernel)) == 0


def test_kept_weights_that_do_not_chain_are_disconnected():
  model, params, state, mask = _setup('lenet_300_100', input_shape=(6,))
  only = lambda shape, i, j: jnp.zeros(shape, bool).at[i, j].set(True)
  mask['dense_0']['kernel'] = only((6, 300), 0, 3)  # reaches unit 3
  mask['dense_1']['kernel'] = only((300, 100), 5, 7)  # starts at unit 5
  assert int(connectivity.empty_layers(mask, masks.is_kernel)) == 0
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (6,))) == 0
  mask['dense_1']['kernel'] = only((300, 100), 3, 7)  # now they chain
  mask['output']['kernel'] = only((100, 10), 7, 2)
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (6,))) == 1


def test_a_residual_connection_bridges_an_empty_layer():
  model, params, state, mask = _setup('mnist1d_mlp')
  mask['dense_1']['kernel'] = jnp.zeros((100, 100), bool)
  assert int(connectivity.empty_layers(mask, masks.is_kernel)) == 1
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (40,))) == 10
