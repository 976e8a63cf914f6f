"""Edge-Popup: exact top-k, straight-through gradient, frozen weights, job."""
from fractions import Fraction
import glob
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import edgepopup_cifar10
from configs import edgepopup_mnist
from configs import edgepopup_mnist1d
from ticketjax import edgepopup as ep
from ticketjax import edgepopup_run
from ticketjax import experiment, optim, pieces
from ticketjax import train as train_lib
from testlib import kill_when, launch_env, synthetic_dataset, tiny_mlp
import golden_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {'a': (3, 7), 'b': (40, 100), 'c': (5, 1, 13), 'd': (1, 1)}
KS = (0.0001, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 0.9999, 1.0)


def _expected_kept(n, k):
  return n - math.floor((1 - Fraction(repr(k))) * n)


def _scores(seed=0):
  rng = np.random.default_rng(seed)
  return {name: {'kernel': jnp.asarray(rng.normal(size=shape), jnp.float32)}
          for name, shape in SHAPES.items()}


def test_kept_count_is_exact_for_static_and_traced_k():
  scores = _scores()
  sizes = [math.prod(shape) for shape in SHAPES.values()] + [
      75_000, 4_000_000, 2**31 - 1]
  traced = jax.jit(jax.vmap(lambda k: [ep.num_kept(n, k) for n in sizes]))(
      jnp.asarray(KS, jnp.float32))
  for n, kept_K in zip(sizes, traced):
    for k, kept in zip(KS, kept_K):
      assert int(ep.num_kept(n, k)) == int(kept) == _expected_kept(n, k)
  masks_K = jax.jit(jax.vmap(ep.layer_masks, in_axes=(None, 0)))(
      scores, jnp.asarray(KS, jnp.float32))
  for i, k in enumerate(KS):
    for name, shape in SHAPES.items():
      kept = int(jnp.sum(masks_K[name]['kernel'][i]))
      assert kept == _expected_kept(math.prod(shape), k), (name, k)


@pytest.mark.parametrize('n', [10, 1000, 70_000])
def test_topk_keeps_largest_and_breaks_ties_by_position(n):
  rng = np.random.default_rng(n)
  s = rng.integers(-4, 5, size=n).astype(np.float32)  # many ties, zeros
  for kept in (0, 1, n // 3, n // 2, n - 1, n):
    order = np.argsort(np.abs(s), kind='stable')  # earlier removed first
    want = np.zeros(n, bool)
    want[order[n - kept:]] = True
    got = jax.jit(ep.topk_mask)(s, kept)
    np.testing.assert_array_equal(got, want)


def test_straight_through_gradient_by_hand():
  s = jnp.array([[0.1, -0.4], [0.3, -0.2]])
  w = jnp.array([[0.5, -0.5], [2.0, 1.0]])
  x, g = jnp.array([1.0, 2.0]), jnp.array([3.0, -1.0])

  def loss(scores):
    eff = ep.masked_weights({'kernel': scores}, {'kernel': w}, 0.5)
    return jnp.sum((x @ eff['kernel']) * g)

  # k = 0.5 keeps |s| = 0.4, 0.3: w ⊙ m = [[0, -.5], [2, 0]], x @ it =
  # [4, -.5], L = 4*3 + .5 = 12.5. dL/d(w⊙m) = outer(x, g) = [[3, -1],
  # [6, -2]]; dL/ds = sign(s) * that * w, pruned edges included.
  value, grad = jax.value_and_grad(loss)(s)
  assert float(value) == 12.5
  np.testing.assert_allclose(grad, [[1.5, -0.5], [12.0, 2.0]], rtol=1e-6)


def test_init_of_weights_scores_and_biases():
  model = tiny_mlp()
  key = jax.random.PRNGKey(3)
  params, _ = model.init(key)
  for init, scale_fan in (('signed_constant', False),
                          ('signed_constant', True),
                          ('kaiming_normal', False)):
    scores, state = ep.supermask(model, init=init, scale_fan=scale_fan).init(
        key, 0.25)
    assert set(scores) == {'dense_0', 'output'}
    assert set(scores['dense_0']) == {'kernel'}  # biases are not scored
    for layer in ('dense_0', 'output'):
      w = state['frozen'][layer]['kernel']
      fan = w.shape[0] * (0.25 if scale_fan else 1.0)
      std = math.sqrt(2.0 / fan)
      if init == 'signed_constant':
        np.testing.assert_allclose(jnp.abs(w), std, rtol=1e-6)
        np.testing.assert_array_equal(
            jnp.sign(w), jnp.where(params[layer]['kernel'] >= 0, 1, -1))
      else:
        assert 0.5 * std < float(jnp.std(w)) < 1.5 * std
      bound = 1 / math.sqrt(w.shape[0])
      assert float(jnp.max(jnp.abs(scores[layer]['kernel']))) <= bound
      np.testing.assert_array_equal(state['frozen'][layer]['bias'], 0.0)


def _sweep_trainer():
  model = ep.supermask(tiny_mlp())
  cfg = optim.OptimizerConfig(name='momentum', learning_rate=0.1,
                              weight_decay=5e-4, schedule='cosine')
  trainer = train_lib.Trainer(model, optim.make_optimizer(cfg, 20),
                              batch_size=16)

  @jax.jit
  def states(k_M):
    ik, nk = train_lib.split_seed_key(jax.random.PRNGKey(0))
    return jax.vmap(lambda k: trainer.reset(*model.init(ik, k), None, nk))(
        k_M)

  return trainer, states


def test_training_moves_scores_never_weights_and_sweep_equals_single():
  trainer, states = _sweep_trainer()
  data = train_lib.to_device(synthetic_dataset())
  ks = (0.3, 0.5, 0.9)
  start = states(jnp.asarray(ks))
  final, _ = trainer.train(start, data, 20)
  for a, b in zip(jax.tree.leaves(start.model_state),
                  jax.tree.leaves(final.model_state)):
    np.testing.assert_array_equal(a, b)  # frozen: bitwise
  assert not np.allclose(start.params['dense_0']['kernel'],
                         final.params['dense_0']['kernel'])
  masks = jax.vmap(ep.subnetwork_masks)(final.params, final.model_state)
  for i, k in enumerate(ks):
    assert int(jnp.sum(masks['dense_0']['kernel'][i])) == _expected_kept(
        8 * 16, k)
    alone = jax.tree.map(lambda x, i=i: x[i:i + 1], start)  # k alone
    one, _ = trainer.train(alone, data, 20)
    for a, b in zip(jax.tree.leaves(final.params), jax.tree.leaves(one)):
      np.testing.assert_allclose(a[i], b[0], rtol=1e-5, atol=1e-6)


def _smoke():
  config = edgepopup_mnist1d.get_config('smoke')
  config.progress = False
  return config


def _launch(workdir, cache):
  """The launcher on the smoke config; runs share a compilation cache."""
  env = launch_env(cache)
  args = [sys.executable, '-m', 'launch.main',
          '--config=configs/edgepopup_mnist1d.py:smoke',
          f'--workdir={workdir}', '--config.progress=False']
  return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  """(workdir, compilation cache) of an uninterrupted launcher smoke run."""
  root = tmp_path_factory.mktemp('edgepopup')
  proc = _launch(root / 'straight', root / 'cache')
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-2000:]
  return root / 'straight', root / 'cache'


def test_smoke_end_to_end_and_idempotent(straight, capsys):
  workdir, _ = straight
  (run_dir,) = glob.glob(str(workdir / '*'))
  with open(os.path.join(run_dir, 'summary.json')) as f:
    summary = json.load(f)
  golden_lib.check('edgepopup_mnist1d.smoke', run_dir)
  assert summary['finished'] and summary['num_seeds'] == 2
  for name in ('config.json', 'metrics.jsonl', 'summary.json', 'report.md',
               'accuracy.png', 'checkpoints/edgepopup_step_000040',
               'checkpoints/dense_step_000040'):
    assert os.path.exists(os.path.join(run_dir, name)), name
  assert not glob.glob(os.path.join(run_dir, '*/*_step_000030*'))
  assert [e['k'] for e in summary['k']] == [0.3, 0.7]
  for entry in summary['k']:
    for path, density in entry['density_per_layer'].items():
      n = {'dense_0/kernel': 4000, 'dense_1/kernel': 10000,
           'output/kernel': 1000}[path]
      assert density == _expected_kept(n, entry['k']) / n
  assert summary['dense']['final_test_accuracy']['n'] == 2
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  assert len(records) == 4 * (2 * 2 + 2)  # chunks x (k x seeds + dense)
  assert [(r['method'], r.get('k'), r['seed']) for r in records[:5]] == [
      ('edgepopup', 0.3, 0), ('edgepopup', 0.3, 1), ('edgepopup', 0.7, 0),
      ('edgepopup', 0.7, 1), ('edgepopup', 0.3, 0)]
  assert '| dense (trained) | 100.00 |' in open(
      os.path.join(run_dir, 'report.md')).read()
  # experiment.run finds the finished run: no work, same summary, table
  stamp = os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl'))
  again = experiment.run(_smoke(), str(workdir))
  assert again == summary
  assert os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl')) == stamp
  assert '| 0.3 | 30.00 |' in capsys.readouterr().out


def test_kill_and_resume_gives_identical_records(straight, tmp_path):
  straight_dir, cache = straight
  proc = _launch(tmp_path, cache)
  kill_when(proc, str(tmp_path / '*/checkpoints/edgepopup_step_*'))
  assert not glob.glob(str(tmp_path / '*/checkpoints/dense_step_*'))
  resumed = _launch(tmp_path, cache)
  _, err = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, err[-2000:]
  (a,) = glob.glob(str(straight_dir / '*'))
  (b,) = glob.glob(str(tmp_path / '*'))
  assert os.path.basename(a) == os.path.basename(b)
  for name in ('metrics.jsonl', 'records/edgepopup_step_000040.json',
               'records/dense_step_000040.json'):
    assert open(os.path.join(a, name)).read() == open(
        os.path.join(b, name)).read(), name
  sa, sb = (json.load(open(os.path.join(d, 'summary.json'))) for d in (a, b))
  assert sa['members'] == sb['members'] and sa['k'] == sb['k']


@pytest.mark.parametrize('field,value,match', [
    ('k', (0.0,), r'edgepopup.k must lie in \(0, 1\]'),
    ('k', (0.5, 1.5), r'edgepopup.k must lie in \(0, 1\]'),
    ('init', 'foo', "unknown edgepopup.init 'foo'.*signed_constant"),
    ('prune_rate', 0.5, r"unknown fields \['prune_rate'\] in config.edgepopup"),
])
def test_bad_config_fails_before_any_work(tmp_path, field, value, match):
  config = _smoke()
  setattr(config.edgepopup, field, value)
  with pytest.raises(ValueError, match=match):
    experiment.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('module', [edgepopup_mnist, edgepopup_cifar10])
def test_tfds_configs_validate_on_mock_data(module):
  config = module.get_config('smoke')
  edgepopup_run.edgepopup_config(config)
  with tfds.testing.mock_data(num_examples=64):
    built = pieces.build(config)
  assert built.model.name == config.model.name
