"""The `early_bird` job (`methods/early_bird`): searches, checks, retraining.

The stopping rule itself is tested on a hand-computed sequence in
`early_bird_test.py`; here the job's masks are recomputed independently
(retrain a seed to its declared step, prune by magnitude) and the
declaration points are checked against the recorded distances.
"""
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import early_bird_mnist1d
from testlib import assert_kill_and_resume_identical
import testlib
from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import train as train_lib
from ticketjax.methods.early_bird import core
from ticketjax.run import jobs
from ticketjax.run import setup as setup_lib
from ticketjax.run import store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _smoke(arg='smoke', **fields):
  config = early_bird_mnist1d.get_config(arg)
  config.progress = False
  for name, value in fields.items():
    setattr(config.early_bird, name, value)
  return config


def _member(tree, i):
  return jax.tree.map(lambda x: np.asarray(x[i]), tree)


def _first_declared(checks, window, epsilon):
  """The first check step whose FIFO is full and whose newest mask is
  within epsilon of all older ones, from the recorded distances."""
  for n, c in enumerate(checks, start=1):
    if n >= window and c['max_distance'] <= np.float32(epsilon):
      return c['step']
  return None


def test_one_shot_tickets_are_the_magnitude_masks_at_the_declared_step(
    tmp_path):
  config = _smoke()
  summary = jobs.run(config, str(tmp_path))
  cfg = core.EarlyBirdConfig(**config.early_bird.to_dict())
  S, K, T = config.num_seeds, 3, config.train.steps
  points = summary['search']['declared']
  assert len(points) == K * S
  saved = store.Checkpoints(summary['run_dir']).restore_raw('search')
  pieces = setup_lib.build(config)
  data = train_lib.to_device(pieces.dataset)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  init_S = pieces.trainer.init_states(init_keys, noise_keys)

  # every seed trained alone (no penalty) in chunks of check_every steps:
  # one compiled program; its weights at every check step
  every = cfg.check_every
  at_step = {}
  state = init_S
  for step in range(0, T + 1, every):
    if step:
      state, _ = pieces.trainer.train(state, data, every)
    at_step[step] = state.params
  weights_at = lambda s, step: _member(at_step[step], s)

  for p in points:
    k, s = cfg.densities.index(p['density_target']), p['seed']
    checks = [c for c in summary['search']['checks']
              if c['density_target'] == p['density_target']
              and c['seed'] == s]
    at = p['declared_step']
    assert at == _first_declared(checks, cfg.window, cfg.epsilon)
    assert at is not None and at % cfg.check_every == 0
    assert p['search_steps'] == at and p['trained_steps'] == T
    # checks stop once declared: one per check step up to the declaration
    assert [c['step'] for c in checks] == list(range(0, at + 1,
                                                     cfg.check_every))
    ones = masks_lib.ones_like(weights_at(s, 0))
    for name, step in (('early_bird', at), ('last', T)):
      want = pruning.layerwise_magnitude(weights_at(s, step), ones,
                                         1.0 - p['density_target'])
      got = _member(saved[name], k * S + s)
      for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_array_equal(np.asarray(a), b)
  # retrained: every ticket keeps its density exactly, and saves steps
  by = {(g['branch'], g['density_target']): g for g in summary['groups']}
  for d in cfg.densities:
    for branch in ('early_bird', 'full'):
      assert by[branch, d]['density']['mean'] == pytest.approx(d, abs=2e-3)
      assert by[branch, d]['density']['std'] == pytest.approx(0, abs=1e-9)
    eb = by['early_bird', d]
    assert eb['declared'] == S
    assert eb['steps_saved']['mean'] == pytest.approx(
        np.mean([(T - p['search_steps']) / T for p in points
                 if p['density_target'] == d]))
  assert by['dense', 1.0]['density']['mean'] == 1.0
  assert len(summary['members']) == (2 * K + 1) * S
  # the search's checkpoint holds masks, not a network: named as such by
  # launch.weights and launch.probe (its networks are in `final`)
  from ticketjax.reports import path_probe, weights  # pylint: disable=g-import-not-at-top
  search = os.path.join(summary['run_dir'], 'checkpoints', 'search')
  with pytest.raises(ValueError, match="'search' of job 'early_bird' holds "
                     'the masks the search found'):
    weights.load_state(search)
  with pytest.raises(ValueError, match='the masks the search found'):
    path_probe.probe_checkpoints(search, search)
  # the probe names the members of `final` in the order they trained
  final = os.path.join(summary['run_dir'], 'checkpoints', 'final')
  probe = path_probe.probe_checkpoints(f'{final}:7', f'{final}:13',
                                       num_alphas=2)
  seven = summary['members'][7]
  assert (seven['branch'], seven['density_target'], seven['seed']) == (
      'full', 0.5, 1)
  assert probe['a_member'] == 'full at density 0.5, seed 1'
  assert probe['b_member'] == 'dense, seed 1'
  assert probe['error'][0] == pytest.approx(
      1 - seven['final_test_accuracy'], abs=1e-6)


def test_channel_tickets_on_the_batchnorm_cnn(tmp_path):
  config = _smoke('smoke,cnn')
  config.train.steps, config.train.eval_every = 100, 50
  summary = jobs.run(config, str(tmp_path))
  saved = store.Checkpoints(summary['run_dir']).restore_raw('search')
  cfg = core.EarlyBirdConfig(**config.early_bird.to_dict())
  S = config.num_seeds
  for k, d in enumerate(cfg.densities):  # 75 channels, global
    want = 75 - int(np.floor(np.float32(1 - d) * 75 + 0.5))
    for name in ('early_bird', 'last'):
      for s in range(S):
        mask = _member(saved[name], k * S + s)
        units = [mask[f'conv_{i}']['kernel'].any(axis=(0, 1))
                 for i in range(3)]
        assert sum(int(u.sum()) for u in units) == want
        for i, u in enumerate(units):  # a cut channel loses its BN too
          np.testing.assert_array_equal(mask[f'bn_{i}']['scale'], u)
          np.testing.assert_array_equal(mask[f'bn_{i}']['bias'], u)
        assert mask['output']['kernel'].all()
        # live: the kernel taps from kept channels into kept channels (and
        # the output's rows that read the 5 positions of a kept channel);
        # none where a layer keeps no channel (global pruning empties
        # conv_1 of one seed at 30%)
        u0, u1, u2 = (int(u.sum()) for u in units)
        live = (5 * 1 * u0 + 3 * u0 * u1 + 3 * u1 * u2 + 5 * u2 * 10
                if u0 and u1 and u2 else 0)
        member = summary['members'][
            (name == 'last') * len(cfg.densities) * S + k * S + s]
        assert member['live_density'] == pytest.approx(
            live / (5 * 25 + 2 * 3 * 25 * 25 + 125 * 10))
  eb = [g for g in summary['groups'] if g['branch'] == 'early_bird']
  assert [g['units']['mean'] for g in eb] == pytest.approx(
      [52 / 75, 37 / 75, 22 / 75])
  assert 'live weights (%)' in (
      pathlib.Path(summary['run_dir']) / 'report.md').read_text()
  assert summary['l1'] == 1e-4 and summary['structure'] == 'channels'


def test_l1_penalty_is_network_slimmings_subgradient():
  from ticketjax import models
  model = models.get_model('mnist1d_cnn', batch_norm=True)
  params, _ = model.init(jax.random.PRNGKey(0))
  params['bn_1']['scale'] = params['bn_1']['scale'].at[:5].set(-0.3)
  assert core.scale_leaves(params) == [f'bn_{i}/scale' for i in range(3)]
  grads = jax.grad(core.l1_penalty(1e-4, params))(params, {})
  for path, g in zip(masks_lib.leaf_paths(grads), jax.tree.leaves(grads)):
    layer, leaf = path.split('/')
    if leaf == 'scale':
      np.testing.assert_allclose(g, 1e-4 * np.sign(params[layer]['scale']))
    else:
      assert not np.any(g), path
  with pytest.raises(ValueError, match='has none after a convolution'):
    core.l1_penalty(1e-4, models.get_model('mnist1d_mlp').init(
        jax.random.PRNGKey(0))[0])


def test_early_bird_imp_prunes_each_level_where_it_settles(tmp_path):
  config = _smoke('smoke,levels=2')
  summary = jobs.run(config, str(tmp_path))
  S, T = config.num_seeds, config.train.steps
  ckpt = store.Checkpoints(summary['run_dir'])
  before = None
  for level in (1, 2):
    points = [p for p in summary['search']['declared']
              if p['level'] == level]
    steps = [p['declared_step'] for p in points]
    assert None not in steps
    # the level trains until its last seed declares, no further
    assert all(p['trained_steps'] == max(steps) < T for p in points)
    masks = ckpt.restore_raw(f'level_{level}')['early_bird']
    for s in range(S):
      m = _member(masks, s)
      for path, leaf in zip(masks_lib.leaf_paths(m), jax.tree.leaves(m)):
        if not path.endswith('kernel'):
          continue
        n = leaf.size if before is None else int(
            _member(before, s)[path.split('/')[0]]['kernel'].sum())
        assert int(leaf.sum()) == n - int(np.floor(np.float32(0.2) * n
                                                    + 0.5)), path
        if before is not None:  # nested: level 2 prunes level 1's mask
          assert not np.any(leaf & ~_member(before, s)[
              path.split('/')[0]]['kernel'])
    if before is not None:  # distances count level 1's survivors only
      checks = [c for c in summary['search']['checks']
                if c['level'] == level and c['seed'] == 0]
      prev = _member(before, 0)
      live = sum(int(prev[layer]['kernel'].sum()) for layer in prev)
      assert all(c['max_distance'] is None or
                 round(c['max_distance'] * live) == pytest.approx(
                     c['max_distance'] * live, abs=1e-3) for c in checks)
    before = masks
    (g,) = [g for g in summary['groups'] if g.get('level') == level]
    assert g['program_steps'] == max(steps)
    assert g['density_target'] == pytest.approx(0.8 ** level)
  assert summary['levels'] == 2


def _launch(workdir):
  return [sys.executable, '-m', 'launch.main',
          '--config=configs/early_bird_mnist1d.py:smoke,levels=2',
          f'--workdir={workdir}', '--config.progress=False']


def test_kill_and_resume_gives_identical_results(tmp_path):
  assert_kill_and_resume_identical(_launch, tmp_path, 'checkpoints/level_1',
                                   REPO)


@pytest.mark.parametrize('arg,stage,stop', [
    ('smoke', 'search', 50),  # one-shot: trains its search to step 200
    ('smoke,levels=2', 'level_1', 10),  # stops where it settles
])
def test_a_search_stopped_after_a_save_inside_resumes_from_it(
    tmp_path, monkeypatch, capsys, arg, stage, stop):
  """Stopped right after its save at `stop` (a save after every check of
  10 steps), the search trains on from there with its FIFOs, Early-Bird
  masks, declarations and records: the rerun trains what the straight run
  trained but the search's first stop / 10 chunks, and the run ends with
  the bytes of a run never stopped."""
  def config():
    c = _smoke(arg)
    c.train.checkpoint_every_s = 0.0
    return c

  trained = testlib.count_training(monkeypatch)
  straight = jobs.run(config(), str(tmp_path / 'straight'))
  chunks = list(trained)
  testlib.run_until_save(config(), str(tmp_path / 'stopped'), monkeypatch,
                         stage, stop)
  trained[:] = []
  capsys.readouterr()
  resumed = jobs.run(config(), str(tmp_path / 'stopped'))
  assert f'resuming {stage} from its save at step {stop}' in (
      capsys.readouterr().err)
  assert chunks[:stop // 10] == [10] * (stop // 10)  # the search's first
  assert trained == chunks[stop // 10:]
  read = lambda s, name: open(os.path.join(s['run_dir'], name)).read()
  for name in ('metrics.jsonl', f'records/{stage}.json'):
    assert read(resumed, name) == read(straight, name), name
  a, b = (store.Checkpoints(r['run_dir']).restore_raw(stage)
          for r in (resumed, straight))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not [n for n in os.listdir(os.path.join(resumed['run_dir'],
                                                 'checkpoints'))
              if n.endswith('.steps')]


@pytest.mark.parametrize('field,value,match', [
    ('score', 'bn_scale', "set early_bird.structure='channels'"),
    ('l1', 1e-4, 'has none after a convolution'),
    ('check_every', 10_000, 'exceeds train.steps'),
    ('densities', (0.5, 1.0), r'lie outside \(0, 1\)'),
    ('structure', '2:4', 'unstructured or channels'),
    ('window', 1, 'window must be >= 2'),
])
def test_bad_early_bird_config_fails_before_any_work(tmp_path, field, value,
                                                     match):
  with pytest.raises(ValueError, match=match):
    jobs.run(_smoke(**{field: value}), str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists() or not any(
      (tmp_path / 'w').rglob('*.json'))


def test_channel_bits_count_units_not_weights():
  """The distance of channel masks is over channels (the paper's), and the
  output layer, never cut, is left out."""
  cfg = core.EarlyBirdConfig(structure='channels', score='bn_scale',
                             scope='global')
  mask = {'conv_0': {'kernel': jnp.ones((3, 1, 4), bool).at[..., 1].set(
      False)}, 'output': {'kernel': jnp.ones((8, 2), bool)}}
  np.testing.assert_array_equal(core.bits(cfg, mask), [1, 0, 1, 1])


def test_a_member_that_never_declares_keeps_its_last_mask(tmp_path):
  config = _smoke('smoke', epsilon=0.0, densities=(0.5,))  # never settles
  summary = jobs.run(config, str(tmp_path))
  saved = store.Checkpoints(summary['run_dir']).restore_raw('search')
  for p in summary['search']['declared']:
    assert p['declared_step'] is None
    assert p['search_steps'] == p['trained_steps'] == config.train.steps
  for a, b in zip(jax.tree.leaves(saved['early_bird']),
                  jax.tree.leaves(saved['last'])):
    np.testing.assert_array_equal(a, b)
  (g,) = [g for g in summary['groups'] if g['branch'] == 'early_bird']
  assert g['declared'] == 0 and g['steps_saved']['mean'] == 0.0
