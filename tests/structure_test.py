"""Mask structure (`core/structure.py`): N:M and channels under every rule."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from ticketjax.core import pruning
from ticketjax.core import scores
from ticketjax.core import structure
from ticketjax.models import get_model

SCORES = ('magnitude', 'magnitude_normalized', 'random', 'snip', 'grasp',
          'synflow')


def _ctx(model, seed=0):
  params, state = model.init(jax.random.PRNGKey(seed))
  x = jax.random.normal(jax.random.PRNGKey(seed + 1), (16, 4, 4, 4))
  y = jnp.arange(16) % 10
  return scores.ScoreContext(params, masks.ones_like(params),
                             jax.random.PRNGKey(seed + 2), model, state,
                             (x, y))


def _conv_model():
  """A conv (in 4 channels) + FC stack whose kernels all divide by 4."""
  return get_model('conv2', input_shape=(4, 4, 4))


def _groups(leaf, m):
  """Kept count per group of m along the input axis (axis -2)."""
  a = np.asarray(leaf)
  a = a.reshape(a.shape[:-2] + (a.shape[-2] // m, m, a.shape[-1]))
  return a.sum(axis=-2)


@pytest.mark.parametrize('score', SCORES)
@pytest.mark.parametrize('scope', pruning.SCOPES)
def test_n_m_keeps_exactly_n_per_group_for_every_score(score, scope):
  ctx = _ctx(_conv_model())
  for n, m, rate in ((2, 4, 0.5), (1, 4, 0.75), (2, 4, 0.3)):
    mask = pruning.by_score(score, scope, ctx, rate, structure=f'{n}:{m}')
    for path, leaf in zip(masks.leaf_paths(mask), jax.tree.leaves(mask)):
      if masks.is_kernel(path, leaf):
        np.testing.assert_array_equal(_groups(leaf, m), n, err_msg=path)
      else:
        assert np.all(np.asarray(leaf)), path


def test_n_m_beyond_its_density_keeps_the_rate_count_and_at_most_n():
  ctx = _ctx(_conv_model())
  for scope in pruning.SCOPES:
    mask = pruning.by_score('magnitude', scope, ctx, 0.8, structure='2:4')
    c = masks.counts(mask)
    total = c['total/total']
    if scope == 'global':
      assert int(c['kept/total']) == total - int(np.floor(0.8 * total + 0.5))
    for path, kept in c['kept'].items():
      leaf = dict(zip(masks.leaf_paths(mask), jax.tree.leaves(mask)))[path]
      assert _groups(leaf, 4).max() <= 2
      if scope == 'layerwise':
        n = c['total'][path]
        assert int(kept) == n - int(np.floor(np.float32(0.8) * n + 0.5))


def test_n_m_keeps_the_highest_scores_of_each_group_later_on_ties():
  w = jnp.array([[3.0, 1.0], [1.0, 1.0], [2.0, 1.0], [0.5, 1.0]])
  params = {'l': {'kernel': w}}
  got = pruning.layerwise_magnitude(params, masks.ones_like(params), 0.5,
                                    structure='2:4')['l']['kernel']
  np.testing.assert_array_equal(
      got, [[True, False], [False, False], [True, True], [False, True]])


def test_n_m_groups_a_convolution_over_its_input_channels():
  # kernel (kh=1, kw=1, in=4, out=1): the group is the 4 input channels
  w = jnp.array([1.0, 4.0, 3.0, 2.0]).reshape(1, 1, 4, 1)
  params = {'c': {'kernel': w}}
  got = pruning.layerwise_magnitude(params, masks.ones_like(params), 0.5,
                                    structure='2:4')['c']['kernel']
  np.testing.assert_array_equal(got.reshape(-1), [False, True, True, False])


@pytest.mark.parametrize('score', SCORES)
@pytest.mark.parametrize('scope', pruning.SCOPES)
def test_channels_remove_whole_units_and_their_biases(score, scope):
  model = _conv_model()
  ctx = _ctx(model)
  rate = 0.5
  mask = pruning.by_score(score, scope, ctx, rate, structure='channels')
  flat = dict(zip(masks.leaf_paths(mask), jax.tree.leaves(mask)))
  removed = total = 0
  for path, leaf in flat.items():
    if not masks.is_kernel(path, leaf):
      continue
    leaf = np.asarray(leaf)
    units = leaf.reshape(-1, leaf.shape[-1])
    live = units.all(axis=0)
    assert np.all(units == live[None, :]), f'{path}: a unit partly kept'
    bias = np.asarray(flat[path.replace('kernel', 'bias')])
    if path.startswith('output/'):
      assert live.all() and bias.all(), 'output units are the classes'
      continue
    np.testing.assert_array_equal(bias, live)
    if scope == 'layerwise':
      u = leaf.shape[-1]
      assert live.sum() == u - np.floor(rate * u + 0.5), path
    removed += (~live).sum()
    total += live.size
  if scope == 'global':
    assert removed == np.floor(rate * total + 0.5)


def test_channels_rank_units_by_l1_norm():
  w = jnp.array([[1.0, -5.0, 0.1], [1.0, 0.0, -0.2]])  # L1: 2, 5, 0.3
  params = {'l': {'kernel': w, 'bias': jnp.ones(3)}}
  got = pruning.layerwise_magnitude(params, masks.ones_like(params), 0.4,
                                    structure='channels')['l']
  np.testing.assert_array_equal(got['kernel'][0], [True, True, False])
  np.testing.assert_array_equal(got['bias'], [True, True, False])


def test_channel_pruning_is_iterative_on_live_units():
  params = {'l': {'kernel': jax.random.normal(jax.random.PRNGKey(0),
                                              (6, 10))}}
  mask = masks.ones_like(params)
  for want in (8, 6, 5):  # 10 -> floor(.2*10+.5)=2 off, then 2, then 1
    mask = pruning.layerwise_magnitude(params, mask, 0.2,
                                       structure='channels')
    assert int(np.asarray(mask['l']['kernel']).all(axis=0).sum()) == want


def test_bad_structures_are_refused_with_what_is_valid():
  params = {'l': {'kernel': jnp.ones((6, 3))}}
  for bad in ('2:2', '0:4', 'nm', '4:2', 'channel'):
    with pytest.raises(ValueError, match='valid structures'):
      pruning.layerwise_magnitude(params, masks.ones_like(params), 0.5,
                                  structure=bad)
  with pytest.raises(ValueError, match=r"l/kernel \(input axis 6\).*"
                     'prune_exclude'):
    pruning.layerwise_magnitude(params, masks.ones_like(params), 0.5,
                                structure='2:4')


def test_unstructured_is_the_default_and_unchanged():
  ctx = _ctx(_conv_model())
  for scope in pruning.SCOPES:
    a = pruning.by_score('magnitude', scope, ctx, 0.6)
    b = pruning.by_score('magnitude', scope, ctx, 0.6,
                         structure=structure.UNSTRUCTURED)
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize('kind', ['2:4', 'channels'])
def test_imp_keeps_the_structure_at_every_level(tmp_path, kind):
  from configs import imp_mlp_mnist1d  # pylint: disable=g-import-not-at-top
  from ticketjax.run import jobs  # pylint: disable=g-import-not-at-top
  from ticketjax.run import store  # pylint: disable=g-import-not-at-top
  config = imp_mlp_mnist1d.get_config(f'smoke,structure={kind}')
  config.progress = False
  config.imp.controls = ()
  summary = jobs.run(config, str(tmp_path))
  assert summary['structure'] == kind
  ckpt = store.Checkpoints(summary['run_dir'])
  before = None
  for level in (1, 2):
    mask = ckpt.restore_raw(f'level_{level:03d}')['ticket']['mask']
    for layer, leaves in mask.items():
      k = np.asarray(leaves['kernel'])  # [seeds, in, out]
      if kind == '2:4':
        groups = k.reshape(k.shape[0], -1, 4, k.shape[-1]).sum(axis=2)
        assert (groups == 2).all() if level == 1 else groups.max() <= 2
        if level == 2:  # then 20% (output 10%) of the survivors go
          rate = np.float32(0.1 if layer == 'output' else 0.2)
          n = before[layer].sum(axis=(1, 2))
          assert (k.sum(axis=(1, 2))
                  == n - np.floor(rate * n + np.float32(0.5))).all()
      else:
        live = k.all(axis=1)
        assert (k == live[:, None, :]).all(), layer
        np.testing.assert_array_equal(np.asarray(leaves['bias']), live)
        if layer == 'output':
          assert live.all()
        else:
          assert live.sum(axis=1).tolist() == [{1: 80, 2: 64}[level]] * 2
    before = {layer: np.asarray(leaves['kernel'])
              for layer, leaves in mask.items()}


def test_bn_scale_channels_remove_the_lowest_scales_and_their_norms():
  model = get_model('resnet20')
  params, _ = model.init(jax.random.PRNGKey(0))
  gamma = jnp.arange(16.0)[::-1] - 7.5  # |gamma|: 7.5 .. 0.5 .. 7.5
  params['stage_1_block_0']['bn_0']['scale'] = gamma
  mask = pruning.by_score(
      'bn_scale', 'layerwise',
      scores.ScoreContext(params, masks.ones_like(params)), 0.5,
      structure='channels')
  block = mask['stage_1_block_0']
  live = np.asarray(block['conv_0']['kernel']).all(axis=(0, 1, 2))
  np.testing.assert_array_equal(live, np.abs(gamma) > 3.5)  # 8 largest
  for leaf in ('scale', 'bias'):
    np.testing.assert_array_equal(block['bn_0'][leaf], live)
  assert np.asarray(mask['output']['kernel']).all()  # no BN: magnitude,
  # and the output layer keeps its units


def test_norm_layer_follows_the_models_naming():
  assert structure.norm_layer('s/conv_0/kernel') == 's/bn_0'
  assert structure.norm_layer('stem/conv/kernel') == 'stem/bn'
  assert structure.norm_layer('b/shortcut_conv/kernel') == 'b/shortcut_bn'
  assert structure.norm_layer('dense_0/kernel') is None
