"""Layer collapse (`core/connectivity.py`): paths through kept weights."""
import jax
import jax.numpy as jnp
import pytest

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


def test_member_empty_layers_counts_each_stacked_member():
  _, _, _, mask = _setup('mnist1d_mlp')
  one = mask['dense_1']['kernel']
  mask_M = jax.tree.map(lambda m: jnp.stack([m, m, m]), mask)
  mask_M['dense_1']['kernel'] = jnp.stack(
      [one, jnp.zeros_like(one), one.at[0, 0].set(False)])
  mask_M['output']['kernel'] = mask_M['output']['kernel'].at[1].set(False)
  assert connectivity.member_empty_layers(mask_M, masks.is_kernel) == [0, 2, 0]


def test_live_density_leaves_out_weights_that_read_removed_units():
  model, params, state, mask = _setup('lenet_300_100', input_shape=(6,))
  live = lambda m: float(connectivity.live_density(
      model, m, params, state, (6,), masks.is_kernel))
  total = 6 * 300 + 300 * 100 + 100 * 10
  assert live(mask) == 1.0
  # half of dense_0's units removed (a channel mask): their columns, and
  # dense_1's rows that read them, are gone or dead
  mask['dense_0']['kernel'] = mask['dense_0']['kernel'].at[:, 150:].set(False)
  assert masks.summary(mask)['density/total'] > live(mask)
  assert live(mask) == pytest.approx(
      (6 * 150 + 150 * 100 + 100 * 10) / total)
  # a unit of dense_1 that no output reads: its fan-in is dead too
  mask['output']['kernel'] = mask['output']['kernel'].at[99].set(False)
  assert live(mask) == pytest.approx(
      (6 * 150 + 150 * 99 + 99 * 10) / total)
  # kept weights that form no path at all
  only = lambda shape, i, j: jnp.zeros(shape, bool).at[i, j].set(True)
  mask['dense_0']['kernel'] = only((6, 300), 0, 3)
  mask['dense_1']['kernel'] = only((300, 100), 5, 7)
  assert live(mask) == 0.0


def test_live_density_is_nan_where_the_probe_overflows():
  # 0/1 kernels on an all-ones input grow as the product of the fan-ins:
  # 13 layers of 1,000 reach 1e39, past float32
  model, params, state, mask = _setup('mlp', widths=(1000,) * 13,
                                      input_shape=(1000,))
  assert jnp.isnan(connectivity.live_density(model, mask, params, state,
                                             (1000,), masks.is_kernel))
  model, params, state, mask = _setup('mlp', widths=(1000,) * 3,
                                      input_shape=(1000,))
  assert connectivity.live_density(model, mask, params, state, (1000,),
                                   masks.is_kernel) == 1.0
