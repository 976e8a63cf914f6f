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


def test_deep_wide_networks_do_not_overflow_the_probe():
  # 0/1 kernels on an all-ones input grow as the product of the fan-ins,
  # 1e39 on 13 layers of 1,000 (inf); averaged they stay at 1
  model, params, state, mask = _setup('mlp', widths=(1000,) * 13,
                                      input_shape=(1000,))
  assert connectivity.live_density(model, mask, params, state, (1000,),
                                   masks.is_kernel) == 1.0
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (1000,))) == 10
  # one unit left in the 7th layer: its 1,000 inputs and the 1,000 weights
  # of the 8th layer that read it are live, the rest of the 8th layer not
  seventh, eighth = sorted(k for k in mask if k != 'output')[6:8]
  mask[seventh]['kernel'] = mask[seventh]['kernel'].at[:, 1:].set(False)
  assert connectivity.live_density(model, mask, params, state, (1000,),
                                   masks.is_kernel) == pytest.approx(
      (11 * 1000 * 1000 + 2 * 1000 + 10 * 1000) / (13 * 1000 * 1000 + 10000))
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (1000,))) == 10


def test_a_thin_channel_mask_on_a_deep_network_is_counted_exactly():
  # one unit left in each of 14 hidden layers: the averaged probe passes on
  # 1/1000 per layer and underflows float32; the counting probe finds the
  # path (1,000 inputs of unit 0, 13 unit-to-unit weights, 10 outputs)
  model, params, state, mask = _setup('mlp', widths=(1000,) * 14,
                                      input_shape=(1000,))
  for name in (k for k in mask if k != 'output'):
    mask[name]['kernel'] = mask[name]['kernel'].at[:, 1:].set(False)
  assert float(connectivity.live_density(
      model, mask, params, state, (1000,), masks.is_kernel)) == pytest.approx(
          (1000 + 13 + 10) / (14 * 1000 * 1000 + 10 * 1000), rel=1e-6)
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (1000,))) == 10


def test_live_density_is_nan_where_neither_probe_can_tell():
  # outputs times inf: a live weight's gradient is inf (a path), a dead
  # one's 0 * inf = NaN in both probes, which cannot say it is dead
  model, params, state, mask = _setup('lenet_300_100', input_shape=(6,))
  infinite = model._replace(apply=lambda p, s, x, **kw: (
      model.apply(p, s, x, **kw)[0] * jnp.inf, s))
  live = lambda m, mask: float(connectivity.live_density(
      m, mask, params, state, (6,), masks.is_kernel))
  assert live(infinite, mask) == 1.0
  mask['dense_0']['kernel'] = mask['dense_0']['kernel'].at[:, 0].set(False)
  assert jnp.isnan(live(infinite, mask))
  assert 0.99 < live(model, mask) < 1.0  # unit 0's 100 outputs are dead


def test_batchnorm_only_scales_its_channels_in_the_probe():
  # BatchNorm's mean is 0 in the probe: a kept channel stays live however
  # its running statistics lie, and a channel whose scale is 0 is removed
  model, params, state, mask = _setup('mnist1d_cnn', batch_norm=True)
  state = jax.tree.map(lambda x: x + 100.0, state)  # means of 100
  live = lambda p, m: float(connectivity.live_density(
      model, m, p, state, (40,), masks.is_kernel))
  kernels = {k: v['kernel'].size for k, v in mask.items() if 'kernel' in v}
  assert live(params, mask) == 1.0
  assert int(connectivity.connected_outputs(model, mask, params, state,
                                            (40,))) == 10
  # channel 3 of conv_1 gone: its kernel column, and conv_2's weights
  # that read it
  channel = masks.ones_like(params)
  channel['conv_1']['kernel'] = mask['conv_1']['kernel'].at[..., 3].set(
      False)
  k, c_in, c_out = mask['conv_1']['kernel'].shape
  dead = k * c_in + mask['conv_2']['kernel'].shape[0] * c_out
  assert live(params, channel) == pytest.approx(
      1 - dead / sum(kernels.values()))
  # the same channel by a BatchNorm scale of 0 (network slimming): the
  # weights into it compute nothing either
  params['bn_1']['scale'] = params['bn_1']['scale'].at[3].set(0.0)
  assert live(params, mask) == pytest.approx(
      1 - dead / sum(kernels.values()))
