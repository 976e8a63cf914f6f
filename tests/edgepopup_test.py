"""Edge-Popup: exact top-k, straight-through gradient, frozen weights, job."""
from fractions import Fraction

import functools
import glob
import json
import math
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import edgepopup_cifar10
from configs import edgepopup_mnist
from configs import edgepopup_mnist1d
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.methods.edgepopup import core as ep
from ticketjax.methods.edgepopup import job as edgepopup_run
from ticketjax.methods.edgepopup import report
from ticketjax.run import jobs
from ticketjax.run import health
from ticketjax.run import setup as setup_lib
from ticketjax.run import store
import testlib
from testlib import assert_weights_tool_reads, kill_when, launch_env
from testlib import synthetic_dataset, tiny_mlp
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


def _launch(workdir, cache, *extra):
  """The launcher on the smoke config; runs share a compilation cache."""
  env = launch_env(cache)
  return testlib.start([sys.executable, '-m', 'launch.main',
                        '--config=configs/edgepopup_mnist1d.py:smoke',
                        f'--workdir={workdir}', '--config.progress=False',
                        *extra], REPO, env)


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
               'accuracy.png', 'curves.png', 'records/edgepopup.json',
               'records/dense.json'):
    assert os.path.exists(os.path.join(run_dir, name)), name
  # each phase's final states; no save inside a phase is left
  assert sorted(os.listdir(os.path.join(run_dir, 'checkpoints'))) == [
      'dense', 'edgepopup']
  assert_weights_tool_reads(run_dir, _smoke(), plain=['dense'],
                            wrapped=['edgepopup'])
  assert [e['k'] for e in summary['k']] == [0.3, 0.7]
  for entry in summary['k']:
    assert 'diverged' not in entry
    for path, density in entry['density_per_layer'].items():
      n = {'dense_0/kernel': 4000, 'dense_1/kernel': 10000,
           'output/kernel': 1000}[path]
      assert density == _expected_kept(n, entry['k']) / n
  assert summary['dense']['final_test_accuracy']['n'] == 2
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  assert len(records) == 4 * (2 * 2 + 2)  # chunks x (k x seeds + dense)
  assert not any('diverged' in r for r in records)
  assert [(r['method'], r.get('k'), r['seed']) for r in records[:5]] == [
      ('edgepopup', 0.3, 0), ('edgepopup', 0.3, 1), ('edgepopup', 0.7, 0),
      ('edgepopup', 0.7, 1), ('edgepopup', 0.3, 0)]
  report = open(os.path.join(run_dir, 'report.md')).read()
  assert '| dense (trained) | 100.00 |' in report
  assert '![curves](curves.png)' in report
  # jobs.run finds the finished run: no work, same summary, table
  stamp = os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl'))
  again = jobs.run(_smoke(), str(workdir))
  assert again == summary
  assert os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl')) == stamp
  out, err = capsys.readouterr()
  assert '| 0.3 | 30.00 |' in out and 'already done' in err
  # a missing report and an empty plot are written again, nothing else
  os.remove(os.path.join(run_dir, 'report.md'))
  open(os.path.join(run_dir, 'accuracy.png'), 'w').close()
  assert jobs.run(_smoke(), str(workdir)) == summary
  assert open(os.path.join(run_dir, 'report.md')).read() == report
  assert os.path.getsize(os.path.join(run_dir, 'accuracy.png')) > 0
  assert os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl')) == stamp
  assert 'already done' in capsys.readouterr().err
  # fewer seeds than the run holds: refused, like more
  fewer = _smoke()
  fewer.num_seeds = 1
  with pytest.raises(ValueError, match='holds a search with 2 seeds'):
    jobs.run(fewer, str(workdir))


def test_kill_and_resume_gives_identical_records(straight, tmp_path):
  """Killed once its step-20 save inside the edgepopup phase is complete
  (a save after every chunk), and given a record past that save (a kill
  between records and save): the resumed run drops that record, resumes
  from the save and ends as the uninterrupted one."""
  straight_dir, cache = straight
  proc = _launch(tmp_path, cache, '--config.train.checkpoint_every_s=0')
  kill_when(proc, str(tmp_path / '*/checkpoints/edgepopup.steps/20'))
  assert not glob.glob(str(tmp_path / '*/checkpoints/dense*'))
  (b,) = glob.glob(str(tmp_path / '*'))
  latest = max(int(n) for n in os.listdir(os.path.join(
      b, 'checkpoints', 'edgepopup.steps')) if n.isdigit())
  path = os.path.join(b, 'records', 'edgepopup.partial.json')
  cut = json.load(open(path))
  cut.append({**cut[-1], 'step': latest + 1, 'test_accuracy': -1.0})
  with open(path, 'w') as f:
    json.dump(cut, f)
  resumed = _launch(tmp_path, cache)
  _, err = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, err[-2000:]
  assert f'resuming edgepopup from its save at step {latest}' in err, err
  (a,) = glob.glob(str(straight_dir / '*'))
  assert os.path.basename(a) == os.path.basename(b)
  for name in ('metrics.jsonl', 'records/edgepopup.json',
               'records/dense.json'):
    assert open(os.path.join(a, name)).read() == open(
        os.path.join(b, name)).read(), name
  sa, sb = (json.load(open(os.path.join(d, 'summary.json'))) for d in (a, b))
  assert sa['members'] == sb['members'] and sa['k'] == sb['k']


def test_a_phase_of_the_older_layout_is_trained_again(straight, tmp_path,
                                                      capsys):
  """A run folder left unfinished by the code before the phases were
  stages (records/<phase>.json a list of evaluation records, the phase's
  newest save in checkpoints/<phase>/<step>/): the phase is trained
  again, which stderr says, and the run ends as the straight one."""
  workdir, _ = straight
  (src,) = glob.glob(str(workdir / '*'))
  run_dir = tmp_path / 'w' / os.path.basename(src)
  shutil.copytree(src, run_dir)
  path = run_dir / 'records' / 'edgepopup.json'
  path.write_text(json.dumps(json.loads(path.read_text())['evals']))
  old = run_dir / 'checkpoints' / 'edgepopup'
  os.rename(old, run_dir / 'checkpoints' / '40')
  os.makedirs(old)
  os.rename(run_dir / 'checkpoints' / '40', old / '40')
  for name in ('summary.json', 'metrics.jsonl'):
    os.remove(run_dir / name)
  capsys.readouterr()
  jobs.run(_smoke(), str(tmp_path / 'w'))
  err = capsys.readouterr().err
  assert err.count('is of an older layout: training edgepopup again') == 1
  assert (run_dir / 'metrics.jsonl').read_text() == open(
      os.path.join(src, 'metrics.jsonl')).read()
  assert os.listdir(old) != ['40'] and store.problem(str(old)) is None


def _who(record: dict) -> tuple:
  """(method, k, seed): who a record or member summary belongs to."""
  return record['method'], record.get('k'), record['seed']


def _records(ks, seeds, bad=None):
  """Records of 2 evaluations per member; member `bad`'s loss goes NaN."""
  out = []
  for step in (10, 20):
    whos = [{'method': 'edgepopup', 'k': k, 'seed': s} for k in ks
            for s in range(seeds)] + [{'method': 'dense', 'seed': s}
                                      for s in range(seeds)]
    for i, who in enumerate(whos):
      loss = math.nan if step == 20 and bad == _who(who) else 1.0
      out.append({**who, 'step': step, 'train_loss': loss,
                  'train_accuracy': 0.5, 'test_loss': 1.0,
                  'test_accuracy': 0.5 + 0.01 * i + 0.1 * (step == 20)})
  return out


def _summary(lines, ks, seeds):
  """The summary of these records, phase by phase as `Run.train_stage`
  writes them (a k's members keep a fraction k of their weights)."""
  health.flag_diverged(lines, key=_who)
  records = {}
  for phase in ('edgepopup', 'dense'):
    evals = [r for r in lines if r['method'] == phase]
    whos = {_who(r): r for r in evals}  # in member order
    records[phase] = {'evals': evals, 'members': [
        {'method': m, 'seed': s, **({'k': k} if k else {}),
         'density': k or 1.0,
         **({'density_per_layer': {'w': k}} if k else {}),
         **health.member_stats([r for r in evals
                                if _who(r) == (m, k, s)])}
        for m, k, s in whos]}
  summary = report.summarize(records, ks)
  summary.update({'model': 'mlp', 'dataset': 'mnist1d', 'steps': 20,
                  'num_seeds': seeds, 'init': 'signed_constant'})
  return summary


def test_diverged_member_is_flagged_counted_and_left_out(tmp_path):
  ks, seeds = (0.3, 0.7), 2
  healthy = _summary(_records(ks, seeds), ks, seeds)
  lines = _records(ks, seeds, bad=('edgepopup', 0.7, 1))
  summary = _summary(lines, ks, seeds)
  assert [r['seed'] for r in lines if r.get('diverged')] == [1]
  assert summary['k'][0] == healthy['k'][0]  # k = 0.3 is untouched
  assert summary['dense'] == healthy['dense']
  k07 = summary['k'][1]
  assert (k07['diverged'], k07['members'], k07['density']) == (1, 2, 0.7)
  assert k07['final_test_accuracy']['values'] == [healthy['k'][1][
      'final_test_accuracy']['values'][0]]
  flagged = [m for m in summary['members'] if m.get('diverged')]
  assert [_who(m) for m in flagged] == [('edgepopup', 0.7, 1)]
  text = report.table(summary)
  assert '| 0.3 | 30.00 | 60.5 ± 0.5 |' in text and '| ok |' in text
  assert ('| 0.7 | 70.00 | 62.0 | 62.0 | 50.0 | '
          'diverged 1/2 |') in text
  assert text.count('diverged') == 1
  assert 'health' not in report.table(healthy)  # no column when all are
  # every member of a row diverged: no numbers, and the plots still draw
  lines = _records((0.5,), 1, bad=('edgepopup', 0.5, 0))
  summary = _summary(lines, (0.5,), 1)
  assert '| 0.5 | 50.00 | - | - | - | diverged 1/1 |' in report.table(summary)
  for name, draw in report.plots(summary, lines).items():
    draw(str(tmp_path / name))
    assert (tmp_path / name).stat().st_size > 0


def test_sanity_controls_evaluate_shuffled_reinit_and_inverted_masks(
    tmp_path):
  config = _smoke()
  config.edgepopup.controls = ('shuffle', 'reinit', 'invert')
  config.edgepopup.dense_baseline = False
  summary = jobs.run(config, str(tmp_path))
  records = [json.loads(line) for line in open(
      os.path.join(summary['run_dir'], 'metrics.jsonl'))]
  controls = [r for r in records if 'branch' in r]
  K, S = len(config.edgepopup.k), config.num_seeds
  assert len(controls) == 3 * K * S
  assert {r['step'] for r in controls} == {config.train.steps}
  for e in summary['k']:
    assert set(e['controls']) == {'shuffle', 'reinit', 'invert'}
  # the controls' subnetworks, rebuilt: same kept counts, other weights
  run = edgepopup_run.EdgePopupRun(config, str(tmp_path))
  state = run.final_state()
  keys = jnp.tile(run.init_keys, (K, 1))
  fresh = run._states('edgepopup', jax.vmap(lambda k: jax.random.fold_in(  # pylint: disable=protected-access
      k, ep.REINIT_TAG))(run.init_keys), run.noise_keys)
  orig = jax.vmap(ep.subnetwork_masks)(state.params, state.model_state)
  for name in ('shuffle', 'invert', 'reinit'):
    scores, st = jax.vmap(functools.partial(ep.control, name))(
        state.params, state.model_state, keys, fresh.model_state)
    got = jax.vmap(ep.subnetwork_masks)(scores, st)
    for a, b in zip(jax.tree.leaves(orig), jax.tree.leaves(got)):
      np.testing.assert_array_equal(a.sum(axis=tuple(range(1, a.ndim))),
                                    b.sum(axis=tuple(range(1, b.ndim))))
      if name == 'reinit':
        np.testing.assert_array_equal(a, b)
      else:
        assert (a != b).any(), name
  for a, b in zip(jax.tree.leaves(state.model_state['frozen']),
                  jax.tree.leaves(st['frozen'])):
    assert a.shape == b.shape
  assert any((np.asarray(a) != np.asarray(b)).any() for a, b in zip(
      jax.tree.leaves(state.model_state['frozen']),
      jax.tree.leaves(st['frozen'])))


@pytest.mark.parametrize('field,value,match', [
    ('k', (0.0,), r'edgepopup.k must lie in \(0, 1\]'),
    ('k', (0.5, 1.5), r'edgepopup.k must lie in \(0, 1\]'),
    ('init', 'foo', "unknown edgepopup.init 'foo'.*signed_constant"),
    ('prune_rate', 0.5, r"unknown fields \['prune_rate'\] in config.edgepopup"),
    ('controls', ('shuffle', 'shuffle'), 'a name repeats; valid controls'),
])
def test_bad_config_fails_before_any_work(tmp_path, field, value, match):
  config = _smoke()
  setattr(config.edgepopup, field, value)
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('module', [edgepopup_mnist, edgepopup_cifar10])
def test_tfds_configs_validate_on_mock_data(module):
  config = module.get_config('smoke')
  edgepopup_run.edgepopup_config(config)
  with tfds.testing.mock_data(num_examples=64):
    built = setup_lib.build(config)
  assert built.model.name == config.model.name


def test_series_leaves_out_diverged_members():
  ks, seeds = (0.3,), 2
  summary = _summary(_records(ks, seeds, bad=('dense', None, 0)), ks, seeds)
  series = report.series(summary)
  assert [(s['label'], {k: len(v) for k, v in s['points'].items()})
          for s in series] == [('Edge-Popup', {0.3: 2}),
                               ('dense-trained', {1.0: 1})]
