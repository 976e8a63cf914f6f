"""The instability-analysis job: members, end to end, resume, IMP masks."""
import glob
import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import imp_mlp_mnist1d, lmc_mnist1d
from ticketjax.core import masks
from ticketjax.core import optim
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.lmc import core as instability
from ticketjax.methods.lmc import path as lmc
from ticketjax.methods.lmc import report as lmc_report
from ticketjax.reports import cross_run
from ticketjax.reports import path_probe
from ticketjax.run import jobs
from ticketjax.run import store as checkpoint
import testlib
from testlib import kill_when, launch_env, synthetic_dataset, tiny_mlp
import golden_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trainer():
  cfg = optim.OptimizerConfig(name='adam', learning_rate=1e-2)
  return train_lib.Trainer(tiny_mlp(), optim.make_optimizer(cfg, 100),
                           batch_size=16, eval_batch_size=32)


def test_copy_states_layout_masks_and_keys():
  trainer = _trainer()
  data = train_lib.to_device(synthetic_dataset())
  keys = jax.vmap(train_lib.split_seed_key)(train_lib.seed_keys(0, 2))
  rewind_S, _ = trainer.train(trainer.init_states(*keys), data, 5)
  ones_S = rewind_S.mask
  half_S = jax.tree.map(lambda m: m.at[..., ::2].set(False), ones_S)
  masks_NS = jax.tree.map(lambda *m: jnp.stack(m), ones_S, half_S)
  state_M = instability.copy_states(rewind_S, masks_NS, keys[1], 3)
  assert state_M.step.shape == (2 * 2 * 3,)
  for n, mask_S in enumerate((ones_S, half_S)):
    for s in range(2):
      for c in range(3):
        i = instability.member_index(n, s, c, 2, 3)
        mine = train_lib.unstack(state_M, i)
        want = masks.apply(train_lib.unstack(rewind_S.params, s),
                           train_lib.unstack(mask_S, s))
        for a, b in zip(jax.tree.leaves(mine.params), jax.tree.leaves(want)):
          np.testing.assert_array_equal(a, b)
        assert int(mine.step) == 5  # the schedule goes on from k
        np.testing.assert_array_equal(
            mine.key, instability.copy_key(keys[1][s], c))
  # seeds x copies distinct data orders, shared by every network
  assert len({tuple(np.asarray(k)) for k in state_M.key}) == 6
  pairs = instability.pairs(2, 2, 3)
  assert len(pairs) == 2 * 2 * 3 and pairs[0] == (0, 0, 0, 1)
  a_P, b_P = instability.endpoints(state_M, pairs, 2, 3)
  np.testing.assert_array_equal(a_P.key[5], state_M.key[
      instability.member_index(*pairs[5][:3], 2, 3)])
  np.testing.assert_array_equal(b_P.key[5], state_M.key[
      instability.member_index(*pairs[5][:2], pairs[5][3], 2, 3)])
  # the copies, trained in one program, equal each copy trained alone
  final_M, _ = trainer.train(state_M, data, 10)
  for i in (0, 7):
    alone, _ = trainer.train(jax.tree.map(lambda v, i=i: v[i:i + 1], state_M),
                             data, 10)
    for a, b in zip(jax.tree.leaves(final_M.params),
                    jax.tree.leaves(alone.params)):
      np.testing.assert_allclose(a[i], b[0], rtol=1e-5, atol=1e-6)
  # a pair of copies evaluated as P pairs equals the single-pair probe
  path_P = lmc.pair_path_metrics(trainer, a_P.params, b_P.params, {}, {},
                                 data.x_test, data.y_test, lmc.alphas(5))
  one = lmc.path_metrics(trainer, train_lib.unstack(a_P.params, 5),
                         train_lib.unstack(b_P.params, 5), {}, {},
                         data.x_test, data.y_test, lmc.alphas(5))
  np.testing.assert_allclose(path_P['loss'][5], one['loss'], rtol=1e-6)


def _smoke(arg='smoke,mlp'):
  config = lmc_mnist1d.get_config(arg)
  config.progress = False
  return config


def _launch(workdir, cache, *extra):
  env = launch_env(cache)
  return testlib.start([sys.executable, '-m', 'launch.main',
                        '--config=configs/lmc_mnist1d.py:smoke,mlp',
                        f'--workdir={workdir}', '--config.progress=False',
                        *extra], REPO, env)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  root = tmp_path_factory.mktemp('lmc')
  proc = _launch(root / 'straight', root / 'cache')
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-2000:]
  return root / 'straight', root / 'cache'


def test_smoke_end_to_end_and_idempotent(straight, capsys):
  workdir, _ = straight
  (run_dir,) = glob.glob(str(workdir / '*'))
  summary = json.load(open(os.path.join(run_dir, 'summary.json')))
  golden_lib.check('lmc_mnist1d.smoke,mlp', run_dir)
  assert summary['finished'] and summary['copies'] == 2
  for name in ('metrics.jsonl', 'report.md', 'barrier.png', 'paths.png',
               'checkpoints/rewind_k000030', 'checkpoints/copies_k000030',
               'records/k_000030.json'):
    assert os.path.exists(os.path.join(run_dir, name)), name
  assert not glob.glob(os.path.join(run_dir, 'records/*.partial*'))
  assert [(e['rewind_step'], e['network']) for e in summary['steps']] == [
      (0, 'dense'), (30, 'dense')]
  for k in (0, 30):
    rec = json.load(open(os.path.join(run_dir, f'records/k_{k:06d}.json')))
    assert len(rec['pairs']) == 2  # 2 seeds x 1 pair
    acc = {(m['seed'], m['copy']): m['test_accuracy']
           for m in rec['members']}
    for pair in rec['pairs']:
      error = np.asarray(pair['error'])
      assert len(error) == 30
      # the path's ends are the two copies themselves
      s, (a, b) = pair['seed'], pair['copies']
      np.testing.assert_allclose(error[[0, -1]],
                                 [1 - acc[s, a], 1 - acc[s, b]], atol=1e-6)
      assert pair['barrier'] == pytest.approx(
          float(lmc.error_barrier(error)), abs=1e-6)
  lines = [json.loads(x) for x in open(os.path.join(run_dir,
                                                    'metrics.jsonl'))]
  assert {x['kind'] for x in lines} == {'eval', 'pair'}
  assert '| 30 | dense | 100.00 | test |' in open(
      os.path.join(run_dir, 'report.md')).read()
  stamp = os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl'))
  assert jobs.run(_smoke(), str(workdir)) == summary
  assert os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl')) == stamp
  out, err = capsys.readouterr()
  assert 'error barrier (%)' in out and 'already done' in err


def test_cross_run_report_shows_the_barriers(straight, tmp_path):
  workdir, _ = straight
  (run_dir,) = glob.glob(str(workdir / '*'))
  summary = json.load(open(os.path.join(run_dir, 'summary.json')))
  text = cross_run.write([str(workdir)], str(tmp_path))
  assert os.path.getsize(tmp_path / 'lmc.png') > 0
  assert 'Mean ± std over seeds (ddof 0).' in text  # (2 copies: 1 pair)
  for e in summary['steps']:
    cell = stats.format_mean_std(e['barrier'], digits=2)
    assert (f"| lmc mnist1d_mlp | dense | test | {e['rewind_step']} | "
            f"{cell} |") in text, text


def _copy_run(straight, tmp_path) -> str:
  """A copy of the straight run's folder in a workdir of its own."""
  (run_dir,) = glob.glob(str(straight[0] / '*'))
  copy = os.path.join(str(tmp_path / 'w'), os.path.basename(run_dir))
  shutil.copytree(run_dir, copy)
  return copy


def test_finished_run_heals_missing_and_empty_outputs(straight, tmp_path,
                                                       capsys):
  run_dir = _copy_run(straight, tmp_path)
  report = open(os.path.join(run_dir, 'report.md')).read()
  stamp = os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl'))
  os.remove(os.path.join(run_dir, 'report.md'))
  open(os.path.join(run_dir, 'barrier.png'), 'w').close()  # 0 bytes
  jobs.run(_smoke(), str(tmp_path / 'w'))
  assert open(os.path.join(run_dir, 'report.md')).read() == report
  for name in ('barrier.png', 'paths.png'):
    assert os.path.getsize(os.path.join(run_dir, name)) > 0, name
  assert os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl')) == stamp
  out, err = capsys.readouterr()
  assert '| 30 | dense | 100.00 | test |' in out and 'already done' in err


def test_a_damaged_unfinished_step_is_recomputed(straight, tmp_path, capsys):
  # k = 0 cut mid-step (its partial records there, not its final ones)
  # with its save inside the step emptied: the rerun says so, trains the
  # copies again from W_k and ends with the straight run's bytes
  run_dir = _copy_run(straight, tmp_path)
  names = ('metrics.jsonl', 'summary.json', 'report.md')
  want = {n: open(os.path.join(run_dir, n), 'rb').read() for n in names}
  done = os.path.join(run_dir, 'records', 'k_000000.json')
  evals = json.load(open(done))['evals']
  os.remove(done)
  with open(done.replace('.json', '.partial.json'), 'w') as f:
    json.dump([r for r in evals if r['step'] <= 30], f)
  shutil.rmtree(os.path.join(run_dir, 'checkpoints', 'copies_k000000'))
  save = os.path.join(run_dir, 'checkpoints', 'k_000000.steps', '30')
  os.makedirs(save)
  os.remove(os.path.join(run_dir, 'summary.json'))
  jobs.run(_smoke(), str(tmp_path / 'w'))
  assert f'{save} is damaged (it is empty): recomputing it' in (
      capsys.readouterr().err)
  for n in names:  # the summary's run_dir is the copy's
    got = open(os.path.join(run_dir, n), 'rb').read()
    if n == 'summary.json':
      got, want[n] = (dict(json.loads(x), run_dir='') for x in (got, want[n]))
    assert got == want[n], n


def test_summary_leaves_diverged_pairs_out_and_counts_them():
  def member(seed, copy, acc, diverged=False):
    rec = {'network': 'dense', 'seed': seed, 'copy': copy,
           'test_accuracy': acc}
    return dict(rec, diverged=True) if diverged else rec

  def pair(seed, barrier, diverged=False):
    rec = {'network': 'dense', 'seed': seed, 'copies': [0, 1],
           'split': 'test', 'barrier': barrier, 'error': [0.1, barrier]}
    return dict(rec, diverged=True) if diverged else rec

  members = [member(0, 0, 0.9), member(0, 1, 0.8), member(1, 0, 0.7),
             member(1, 1, 0.1, diverged=True)]
  pairs = [pair(0, 0.01), pair(1, 0.5, diverged=True)]
  (entry,) = instability.summarize_step(30, ['dense'], pairs, members)
  assert entry['barrier']['values'] == [0.01] and entry['stable']
  assert entry['num_pairs'] == 1 and entry['diverged_pairs'] == 1
  assert entry['diverged_copies'] == 1
  assert entry['final_test_accuracy']['values'] == [0.9, 0.8, 0.7]
  assert entry['mean_error_curve'] == [0.1, 0.01]
  # a healthy step's summary has no diverged fields at all
  for rec in members + pairs:
    rec.pop('diverged', None)
  (healthy,) = instability.summarize_step(30, ['dense'], pairs, members)
  assert healthy['num_pairs'] == 2
  assert not {'diverged_pairs', 'diverged_copies'} & set(healthy)
  assert '(diverged pairs left out: 1)' in lmc_report.table(
      {'model': 'm', 'dataset': 'd', 'num_seeds': 2, 'copies': 2,
       'alphas': [0, 1], 'train_steps': 60, 'networks': {'dense': 1.0},
       'steps': [entry]})


def test_kill_mid_step_and_resume_gives_identical_records(straight,
                                                          tmp_path):
  """Killed at the save inside step k = 0 after its first chunk (a save
  after every chunk), the analysis resumes from that save."""
  straight_dir, cache = straight
  proc = _launch(tmp_path, cache, '--config.train.checkpoint_every_s=0')
  kill_when(proc, str(tmp_path / '*/checkpoints/k_000000.steps/30'))
  assert not glob.glob(str(tmp_path / '*/records/k_000000.json'))
  resumed = _launch(tmp_path, cache)
  _, err = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, err[-2000:]
  assert 'resuming k_000000 from its save at step 30' in err, err[-2000:]
  (a,) = glob.glob(str(straight_dir / '*'))
  (b,) = glob.glob(str(tmp_path / '*'))
  for name in ('metrics.jsonl', 'records/k_000000.json',
               'records/k_000030.json'):
    assert open(os.path.join(a, name)).read() == open(
        os.path.join(b, name)).read(), name


@pytest.mark.parametrize('field,value,match', [
    ('copies', 1, 'lmc.copies must be >= 2'),
    ('rewind_steps', (0, 60), r'lmc.rewind_steps must lie in \[0, '),
    ('rewind_steps', (20, 0), 'increasing distinct ints'),
    ('splits', ('val',), 'lmc.splits must be distinct names from'),
    ('imp_levels', (1,), 'lmc.imp_levels needs lmc.imp_run'),
    ('num_alphas', 1, 'lmc.num_alphas must be >= 2'),
    ('dense', False, 'nothing to analyse'),
    ('random_masks', True, 'give lmc.imp_levels'),
])
def test_bad_config_fails_before_any_work(tmp_path, field, value, match):
  config = _smoke()
  setattr(config.lmc, field, value)
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


@pytest.fixture(scope='module')
def imp_run_dir(tmp_path_factory):
  config = imp_mlp_mnist1d.get_config('smoke')
  config.progress = False
  config.imp.controls = ()
  summary = jobs.run(config, str(tmp_path_factory.mktemp('imp')))
  return summary['run_dir']


def _imp_lmc(imp_run_dir):
  config = _smoke('smoke,mlp,levels=1,rewind=0/20')
  config.train.steps = 40
  config.train.eval_every = 20
  config.lmc.imp_run = imp_run_dir
  return config


def test_imp_masks_are_analysed_on_the_dense_trajectory(imp_run_dir,
                                                        tmp_path):
  summary = jobs.run(_imp_lmc(imp_run_dir), str(tmp_path))
  imp_summary = json.load(open(os.path.join(imp_run_dir, 'summary.json')))
  (level1,) = [e for e in imp_summary['levels'] if e['level'] == 1]
  assert summary['networks']['level_001'] == pytest.approx(
      level1['ticket']['density'], rel=1e-6)
  assert summary['networks']['level_001'] < 0.85
  assert {e['network'] for e in summary['steps']} == {'dense', 'level_001'}
  # every copy of the ticket kept its mask: zero where IMP pruned
  raw = checkpoint.Checkpoints(summary['run_dir']).restore_raw(
      'copies_k000020')
  imp_raw = checkpoint.Checkpoints(imp_run_dir).restore_raw('level_001')
  for name in ('dense_0', 'output'):
    mask = imp_raw['ticket']['mask'][name]['kernel'][1]
    member = instability.member_index(1, 1, 1, 2, 2)  # level_001, seed 1
    np.testing.assert_array_equal(raw['mask'][name]['kernel'][member], mask)
    assert not np.any(raw['params'][name]['kernel'][member][~mask])
  # k = 0 starts from the IMP run's step-0 weights: its ticket's start
  rewind = checkpoint.Checkpoints(summary['run_dir']).restore_raw(
      'rewind_k000000')
  imp_init = checkpoint.Checkpoints(imp_run_dir).restore_raw('rewind_init')
  np.testing.assert_array_equal(rewind['params']['dense_0']['kernel'],
                                imp_init['params']['dense_0']['kernel'])


def test_random_mask_control_has_each_tickets_per_layer_counts(imp_run_dir,
                                                               tmp_path):
  config = _imp_lmc(imp_run_dir)
  config.lmc.random_masks = True
  summary = jobs.run(config, str(tmp_path))
  assert {e['network'] for e in summary['steps']} == {
      'dense', 'level_001', 'level_001_random'}
  raw = checkpoint.Checkpoints(summary['run_dir']).restore_raw(
      'copies_k000020')
  for s in range(2):
    ticket = instability.member_index(1, s, 0, 2, 2)
    rand = instability.member_index(2, s, 0, 2, 2)
    for name in raw['mask']:
      t, r = (raw['mask'][name]['kernel'][i] for i in (ticket, rand))
      assert t.sum() == r.sum() and (t != r).any(), name
  assert summary['networks']['level_001_random'] == pytest.approx(
      summary['networks']['level_001'])


@pytest.mark.parametrize('change,match', [
    (lambda c: setattr(c.optimizer, 'learning_rate', 0.5),
     r"differs from this config in \['optimizer'\]"),
    (lambda c: setattr(c.lmc, 'imp_levels', (1, 5)),
     r'IMP levels \[5\] are not finished'),
    (lambda c: setattr(c, 'num_seeds', 3), 'has 2 seeds but'),
])
def test_imp_run_mismatch_fails_before_any_work(imp_run_dir, tmp_path,
                                                change, match):
  config = _imp_lmc(imp_run_dir)
  change(config)
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


@pytest.fixture(scope='module')
def imp_grid_dir(tmp_path_factory):
  """An IMP smoke run (2 levels, 3 seeds) over rewind steps 20 and 0, in
  that order (imp.rewind 'step'): lineage g * 3 + s is seed s of point g."""
  config = imp_mlp_mnist1d.get_config('smoke,seeds=3')
  config.progress = False
  config.imp.controls = ()
  config.grid.rewind_step = (20, 0)
  config.imp.rewind = 'step'
  summary = jobs.run(config, str(tmp_path_factory.mktemp('imp_grid')))
  return summary['run_dir']


def test_each_rewind_step_analyses_the_tickets_rewound_to_it(imp_grid_dir,
                                                             tmp_path):
  """The paper's protocol: with an IMP grid over rewind steps, k's tickets
  are the grid point's that rewound to k (lineages g * 3 + s of the IMP
  run's 3 seeds; the analysis takes 2). Level 1's masks are the same at
  every k (pruned from the one dense training); level 2's come from
  tickets trained from W_0 or W_20."""
  config = _imp_lmc(imp_grid_dir)
  config.lmc.imp_levels = (2,)
  config.lmc.random_masks = True
  summary = jobs.run(config, str(tmp_path))
  assert summary['tickets_per_rewind_step'] is True
  assert summary['tickets'] == ('layerwise_magnitude pruning at rates dense '
                                '0.2 / output 0.1, rewound to the grid\'s '
                                'steps 20 / 0')
  assert ("IMP tickets by layerwise_magnitude pruning at rates dense 0.2 / "
          "output 0.1, rewound to the grid's steps 20 / 0; the IMP tickets "
          'of each k were rewound to k') in lmc_report.title(summary)
  imp_mask = checkpoint.Checkpoints(imp_grid_dir).restore_raw(
      'level_002')['ticket']['mask']
  ckpt = checkpoint.Checkpoints(summary['run_dir'])
  copies = {k: ckpt.restore_raw(f'copies_k{k:06d}')['mask'] for k in (0, 20)}
  differ = False
  for name in ('dense_0', 'dense_1', 'output'):
    for point, k in enumerate((20, 0)):
      for s in range(2):
        for c in range(2):
          member = instability.member_index(1, s, c, 2, 2)  # level_002
          np.testing.assert_array_equal(
              copies[k][name]['kernel'][member],
              imp_mask[name]['kernel'][point * 3 + s])
    ticket = instability.member_index(1, 0, 0, 2, 2)
    rand = instability.member_index(2, 0, 0, 2, 2)
    differ |= bool((copies[0][name]['kernel'][ticket]
                    != copies[20][name]['kernel'][ticket]).any())
    # the random control has the ticket's counts at every k
    for k in (0, 20):
      assert (copies[k][name]['kernel'][rand].sum()
              == copies[k][name]['kernel'][ticket].sum())
  assert differ  # rewound to 0 and to 20, IMP kept other weights
  # W_k is the grid point's own rewind state, the tickets' start (W_0:
  # its init)
  imp = checkpoint.Checkpoints(imp_grid_dir)
  for point, k, saved in ((0, 20, 'rewind_step'), (1, 0, 'rewind_init')):
    mine = ckpt.restore_raw(f'rewind_k{k:06d}')
    np.testing.assert_array_equal(mine['step'], [k, k])
    for a, b in zip(jax.tree.leaves(mine),
                    jax.tree.leaves(imp.restore_raw(saved))):
      np.testing.assert_array_equal(a, np.asarray(b)[3 * point:3 * point + 2])


def test_imp_grids_lmc_cannot_read_fail_before_any_work(imp_grid_dir,
                                                       tmp_path):
  config = _imp_lmc(imp_grid_dir)
  config.lmc.rewind_steps = (0, 10)
  with pytest.raises(ValueError, match=(
      r'lmc.rewind_steps \[10\] are not rewind steps of the IMP grid .*'
      r'rewound to \[20, 0\]')):
    jobs.run(config, str(tmp_path / 'w'))
  # a grid over another name: its points differ in more than W_k
  other = tmp_path / 'imp-other'
  other.mkdir()
  imp_cfg = json.load(open(os.path.join(imp_grid_dir, 'config.json')))
  imp_cfg['grid']['learning_rate'] = [0.01, 0.001]
  (other / 'config.json').write_text(json.dumps(imp_cfg))
  config = _imp_lmc(str(other))
  with pytest.raises(ValueError, match=r"is a grid over \['learning_rate', "
                     r"'rewind_step'\] .* of a grid over rewind_step alone"):
    jobs.run(config, str(tmp_path / 'w'))
  # W_k of a point: its init at k = 0 (a grid of k = 0 alone saves no
  # rewind_step), else its rewind_step, which must be intact
  no_step = tmp_path / 'imp-no-step'
  shutil.copytree(imp_grid_dir, no_step)
  shutil.rmtree(no_step / 'checkpoints' / 'rewind_step')
  config = _imp_lmc(str(no_step))
  with pytest.raises(ValueError, match=(
      r'checkpoint .*imp-no-step/checkpoints/rewind_step cannot be used: it '
      'is missing')):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()
  config.lmc.rewind_steps = (0,)
  summary = jobs.run(config, str(tmp_path / 'k0'))
  np.testing.assert_array_equal(
      checkpoint.Checkpoints(summary['run_dir']).restore_raw(
          'rewind_k000000')['params']['dense_0']['kernel'],
      checkpoint.Checkpoints(imp_grid_dir).restore_raw('rewind_init')[
          'params']['dense_0']['kernel'][3:5])


def test_a_run_path_spelled_otherwise_finds_the_same_folder(imp_run_dir,
                                                            tmp_path,
                                                            monkeypatch,
                                                            capsys):
  # config.json stores the IMP run's absolute path: the same analysis
  # asked from another directory, or with a trailing slash, is done
  imp = tmp_path / 'runs' / os.path.basename(imp_run_dir)
  shutil.copytree(imp_run_dir, imp)
  monkeypatch.chdir(imp.parent)
  first = jobs.run(_imp_lmc(imp.name), str(tmp_path / 'w'))
  stored = json.load(open(os.path.join(first['run_dir'], 'config.json')))
  assert stored['lmc']['imp_run'] == str(imp)
  monkeypatch.chdir(tmp_path)
  capsys.readouterr()
  again = jobs.run(_imp_lmc(f'{imp}/'), str(tmp_path / 'w'))
  assert again['run_dir'] == first['run_dir']
  assert 'already done' in capsys.readouterr().err
  # a finished analysis shows its table without the IMP run it read
  shutil.rmtree(imp)
  assert jobs.run(_imp_lmc(str(imp)), str(tmp_path / 'w')) == first


def test_an_imp_run_with_other_augmentation_is_refused(imp_run_dir,
                                                       tmp_path):
  # its copies would train on other batches than the tickets' trajectory
  other = tmp_path / 'imp-augmented'
  other.mkdir()
  imp_cfg = json.load(open(os.path.join(imp_run_dir, 'config.json')))
  imp_cfg['data']['augment'] = 'crop_flip'
  (other / 'config.json').write_text(json.dumps(imp_cfg))
  with pytest.raises(ValueError, match=r"differs from this config in "
                     r"\['data.augment'\]"):
    jobs.run(_imp_lmc(str(other)), str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_imp_run_that_is_not_an_imp_folder(tmp_path):
  config = _imp_lmc(str(tmp_path))
  with pytest.raises(ValueError, match='is not an IMP run folder'):
    jobs.run(config, str(tmp_path / 'w'))


def test_probe_between_saved_copies_matches_the_job(straight, tmp_path,
                                                    capsys):
  workdir, _ = straight
  (run_dir,) = glob.glob(str(workdir / '*'))
  ckpt = os.path.join(run_dir, 'checkpoints', 'copies_k000030')
  result = path_probe.main(f'{ckpt}:2', f'{ckpt}:3', out_dir=str(tmp_path))
  rec = json.load(open(os.path.join(run_dir, 'records/k_000030.json')))
  (pair,) = [p for p in rec['pairs'] if p['seed'] == 1]  # members 2 and 3
  np.testing.assert_allclose(result['error'], pair['error'], atol=1e-6)
  assert result['barrier'] == pytest.approx(pair['barrier'], abs=1e-6)
  assert result['mask_jaccard'] == 1.0
  assert os.path.exists(tmp_path / 'probe.png')
  assert 'error barrier:' in capsys.readouterr().out
  with pytest.raises(ValueError, match=r'has members 0\.\.3, got 7'):
    path_probe.main(f'{ckpt}:0', f'{ckpt}:7')
  with pytest.raises(ValueError, match='no checkpoint folder'):
    path_probe.main(f'{ckpt}_missing:0', f'{ckpt}:1')
  with pytest.raises(ValueError, match='mask must be one of'):
    path_probe.main(f'{ckpt}:0', f'{ckpt}:1', mask='c')


def test_probe_names_the_seed_and_grid_point_of_an_imp_member():
  from configs import imp_mlp_mnist1d  # pylint: disable=g-import-not-at-top
  config = imp_mlp_mnist1d.get_config('smoke,lr=1e-2/3e-3').to_dict()
  label = lambda name, i: path_probe._member_label(
      config, f'/w/imp-x/checkpoints/{name}', i)
  assert label('level_001', 3) == 'seed 1 at grid point lr=0.003'
  assert label('rewind_init', 0) == 'seed 0 at grid point lr=0.01'
  plain = imp_mlp_mnist1d.get_config('smoke').to_dict()
  assert path_probe._member_label(
      plain, '/w/imp-x/checkpoints/level_002', 1) == 'seed 1'
  lmc = lmc_mnist1d.get_config('smoke,mlp').to_dict()  # 2 seeds, 2 copies
  assert path_probe._member_label(
      lmc, '/w/lmc-x/checkpoints/copies_k000010', 1) == 'dense, seed 0, copy 1'
