"""IMP: rewinding, controls, resume after SIGKILL, idempotence, bad configs."""
import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import imp_mlp_mnist1d
from ticketjax.core import masks
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.methods.imp import core as imp
from ticketjax.run import jobs
from ticketjax.run import store as checkpoint
from testlib import assert_kill_and_resume_identical, synthetic_dataset, tiny_mlp
import testlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trainer():
  tx = optim.make_optimizer(optim.OptimizerConfig(learning_rate=1e-2), 50)
  return train_lib.Trainer(tiny_mlp(), tx, batch_size=16)


@pytest.mark.parametrize('mode', ['init', 'step', 'lr'])
def test_survivors_equal_their_rewind_point_values(mode):
  trainer = _trainer()
  data = train_lib.to_device(synthetic_dataset())
  ik, nk = train_lib.split_seed_key(jax.random.PRNGKey(0))
  init = trainer.init_state(ik, nk)
  batch = train_lib.stack([init])
  at_k = train_lib.unstack(trainer.train(batch, data, 7)[0], 0)
  final = train_lib.unstack(trainer.train(batch, data, 30)[0], 0)
  cfg = imp.ImpConfig(levels=1, rates={'dense': 0.5, 'output': 0.2},
                      rewind=mode, rewind_step=0 if mode == 'init' else 7)
  new = imp.prune_level(cfg, 1, final.params, final.mask, final.mask,
                        jax.random.PRNGKey(1))
  rewind = at_k if mode != 'init' else init
  weights = final.params if mode == 'lr' else rewind.params
  start = imp.start_state(cfg, trainer.reset, mask=new['ticket'],
                          weights=weights, model_state={},
                          init_state=init, rewind_state=rewind,
                          final_state=final)
  for w, m, s in zip(jax.tree.leaves(weights), jax.tree.leaves(new['ticket']),
                     jax.tree.leaves(start.params)):
    np.testing.assert_array_equal(np.where(m, w, 0.0), s)  # exact
  assert int(start.step) == (0 if mode == 'init' else 7)
  if mode != 'init':  # optimizer moments come from the rewind point
    np.testing.assert_array_equal(
        jax.tree.leaves(start.opt_state)[1], jax.tree.leaves(at_k.opt_state)[1])


def test_controls_keep_the_ticket_counts():
  params = tiny_mlp().init(jax.random.PRNGKey(0))[0]
  cfg = imp.ImpConfig(levels=3, rates=0.3)
  ticket = random = masks.ones_like(params)
  for level in (1, 2, 3):
    new = imp.prune_level(cfg, level, params, ticket, random,
                          jax.random.PRNGKey(5))
    counts = {k: masks.counts(new[k])['kept'] for k in new}
    for branch in ('shuffle', 'random'):
      assert {p: int(v) for p, v in counts[branch].items()} == {
          p: int(v) for p, v in counts['ticket'].items()}
    assert not bool(jnp.any(new['random']['dense_0']['kernel']
                            & ~random['dense_0']['kernel']))  # nested
    ticket, random = new['ticket'], new['random']


def _smoke(levels=2, seeds=2):
  config = imp_mlp_mnist1d.get_config(f'smoke,levels={levels},seeds={seeds}')
  config.progress = False
  return config


def test_imp_smoke_end_to_end_extend_and_idempotent(tmp_path, capsys):
  summary = jobs.run(_smoke(levels=1), str(tmp_path))
  run_dir = summary['run_dir']
  assert summary['levels_done'] == 2
  lvl1 = summary['levels'][1]
  assert set(lvl1) == {'level', 'ticket', 'reinit', 'shuffle', 'random'}
  assert lvl1['ticket']['density'] < 1.0
  for name in ('config.json', 'metrics.jsonl', 'summary.json', 'report.md',
               'accuracy.png', 'checkpoints/rewind_init',
               'checkpoints/level_001'):
    assert os.path.exists(os.path.join(run_dir, name)), name
  member = summary['members'][-1]
  assert {'early_stop_step', 'best_test_accuracy', 'density_per_layer',
          'final_test_accuracy', 'final_test_loss'} <= set(member)
  stamp = os.path.getmtime(os.path.join(run_dir, 'checkpoints/level_001'))
  # run again: found done, the table printed, no file written again
  files = ('metrics.jsonl', 'summary.json', 'report.md', 'accuracy.png')
  stamps = [os.stat(os.path.join(run_dir, f)).st_mtime_ns for f in files]
  capsys.readouterr()
  assert jobs.run(_smoke(levels=1), str(tmp_path)) == summary
  out, err = capsys.readouterr()
  assert f'already done: {run_dir}' in err and '| level |' in out
  assert [os.stat(os.path.join(run_dir, f)).st_mtime_ns
          for f in files] == stamps
  # more levels extend the same run folder; finished levels are skipped
  more = jobs.run(_smoke(levels=2), str(tmp_path))
  assert more['run_dir'] == run_dir and more['levels_done'] == 3
  assert os.path.getmtime(
      os.path.join(run_dir, 'checkpoints/level_001')) == stamp
  assert more['members'][:len(summary['members'])] == summary['members']


def test_more_seeds_extend_the_run_and_vmapped_equals_per_seed(tmp_path,
                                                               capsys):
  """Seed 0 alone, then extended to 2 seeds (the smoke cap) in place; seed
  1 alone; and both seeds vmapped from scratch.

  The extension keeps seed 0's numbers bitwise and its seed 1 equals the
  run holding seed 1 alone; the vmapped search equals the per-seed ones.
  """
  one = jobs.run(_smoke(levels=1, seeds=1), str(tmp_path / 'w'))
  old_level1 = open(os.path.join(one['run_dir'],
                                 'records/level_001.json')).read()
  capsys.readouterr()
  two = jobs.run(_smoke(levels=1, seeds=2), str(tmp_path / 'w'))
  assert two['run_dir'] == one['run_dir'] and two['num_seeds'] == 2
  assert (f"extending the search in {two['run_dir']} from 1 to 2 seeds: "
          'only the new seeds train') in capsys.readouterr().err
  run_dir = two['run_dir']
  assert not os.path.exists(os.path.join(run_dir, 'extend'))
  ckpt = checkpoint.Checkpoints(run_dir)
  for name in ('rewind_init', 'level_000', 'level_001'):
    assert ckpt.leading_size(name) == 2, name
  assert json.load(open(os.path.join(run_dir, 'config.json')))[
      'num_seeds'] == 2
  by_seed = lambda ms, s: sorted([m for m in ms if m['seed'] == s],
                                 key=lambda m: (m['level'], m['branch']))
  assert by_seed(two['members'], 0) == by_seed(one['members'], 0)
  old_evals = json.loads(old_level1)['evals']
  new_evals = json.load(open(os.path.join(
      run_dir, 'records/level_001.json')))['evals']
  assert new_evals[:len(old_evals)] == old_evals
  config = _smoke(levels=1, seeds=1)
  config.first_seed = 1  # seed 1 alone
  alone = jobs.run(config, str(tmp_path / 'alone'))
  for m in alone['members']:
    m['seed'] += 1
  assert by_seed(two['members'], 1) == by_seed(alone['members'], 1)
  # fewer seeds than the run holds: a clear error, nothing touched
  stamp = os.path.getmtime(os.path.join(run_dir, 'summary.json'))
  with pytest.raises(ValueError, match='holds a search with 2 seeds'):
    jobs.run(_smoke(levels=1, seeds=1), str(tmp_path / 'w'))
  assert os.path.getmtime(os.path.join(run_dir, 'summary.json')) == stamp
  # both seeds in one program from scratch equal the per-seed searches
  vmapped = jobs.run(_smoke(levels=1, seeds=2), str(tmp_path / 'v'))
  for seed, single in ((0, one), (1, alone)):
    mine, theirs = by_seed(vmapped['members'], seed), by_seed(
        single['members'], seed)
    assert len(mine) == len(theirs) == 1 + 4  # level 0, level 1 x 4
    for a, b in zip(mine, theirs):
      assert (a['level'], a['branch']) == (b['level'], b['branch'])
      assert a['density_per_layer'] == b['density_per_layer']
      np.testing.assert_allclose(a['final_test_accuracy'],
                                 b['final_test_accuracy'], atol=2e-3)


def _launch(workdir, levels, *flags):
  return [sys.executable, '-m', 'launch.main',
          f'--config=configs/imp_mlp_mnist1d.py:smoke,levels={levels}',
          f'--workdir={workdir}', '--config.progress=False', *flags]


def test_kill_and_resume_gives_identical_results(tmp_path):
  """Killed inside a level, right after its save at step 20 (a save after
  every chunk), the search resumes from that save."""
  assert_kill_and_resume_identical(
      lambda w: _launch(w, 2, '--config.train.checkpoint_every_s=0'),
      tmp_path, 'checkpoints/level_00[12].steps/20', REPO,
      resumes='from its save at step 20')


@pytest.mark.parametrize('k,stop,trains,lost', [
    (15, 10, [5, 10, 10, 5], False),  # before the rewind step
    (15, 25, [10, 5], False),  # past it
    (15, 25, [10, 5, 10, 10, 5], 'deleted'),  # past it, its states gone:
    (15, 25, [10, 5, 10, 10, 5], 'damaged'),  # level 0 from step 0
    ((10, 25), 20, [5, 10, 5], False),  # a grid: between its two steps
])
def test_level_0_resumes_from_a_save_before_or_past_its_rewind_step(
    tmp_path, monkeypatch, k, stop, trains, lost):
  """Rewound to step 15 (chunks end at 10, 15, 25, 35, 40), or a grid of
  steps 10 and 25 (10, 20, 25, 35, 40), and stopped after level 0's save
  at `stop`, the search trains level 0 on from there and ends with the
  bytes of a search never stopped; without `checkpoints/rewind_step`
  (`lost`) a save past the rewind step is dropped and level 0 trains from
  its start, and so with it damaged (reported). A save of fewer seeds
  than the rerun asks for is dropped."""

  def config():
    c = _smoke(levels=0)  # the dense level alone
    c.train.checkpoint_every_s, c.train.eval_every = 0.0, 10
    c.imp.rewind = 'step'
    if isinstance(k, tuple):
      c.grid.rewind_step = k
    else:
      c.imp.rewind_step = k
    return c

  straight = jobs.run(config(), str(tmp_path / 'straight'))
  testlib.run_until_save(config(), str(tmp_path / 'stopped'), monkeypatch,
                         'level_000', stop)
  (run_dir,) = (tmp_path / 'stopped').glob('imp-*')
  if lost == 'deleted':
    shutil.rmtree(run_dir / 'checkpoints' / 'rewind_step')
  elif lost:
    testlib.flip_a_bit(testlib.largest_file(str(
        run_dir / 'checkpoints' / 'rewind_step')))
  trained = testlib.count_training(monkeypatch)
  resumed = jobs.run(config(), str(tmp_path / 'stopped'))
  assert trained == trains
  assert resumed['members'] == straight['members']
  metrics = lambda s: open(os.path.join(s['run_dir'], 'metrics.jsonl')).read()
  assert metrics(resumed) == metrics(straight)
  for name in ('rewind_step', 'level_000'):  # the same arrays
    a, b = (checkpoint.Checkpoints(r['run_dir']).restore_raw(name)
            for r in (resumed, straight))
    jax.tree.map(np.testing.assert_array_equal, a, b)
  if stop != 25 or lost:
    return
  # stopped with 1 seed, rerun with 2: the 1-seed save is dropped
  one = config()
  one.num_seeds = 1
  testlib.run_until_save(one, str(tmp_path / 'grown'), monkeypatch,
                         'level_000', stop)
  grown = jobs.run(config(), str(tmp_path / 'grown'))
  assert metrics(grown) == metrics(straight)


@pytest.mark.parametrize('field,value,match', [
    ('imp.rewind', 'warm', 'unknown rewind mode'),
    ('imp.rule', 'snip', 'unknown pruning rule'),
    ('imp.rewind_step', 40, 'past the end of training'),
    ('imp.controls', ('reinit', 'flip'), 'unknown controls'),
    # `--config.imp.prune_exclude=(output,shortcut)`: the shell took the
    # quotes, the flag parser made it one string
    ('imp.prune_exclude', ('(output,shortcut)',), 'one string, not a tuple'),
    ('imp.prune_exclude', ('(output)',), 'one string, not a tuple'),
])
def test_bad_imp_config_fails_before_any_work(tmp_path, field, value, match):
  config = _smoke()
  section, name = field.split('.')
  if name == 'rewind_step':
    config.imp.rewind = 'step'
  setattr(config[section], name, value)
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_bad_rates_fail_before_any_work(tmp_path):
  config = _smoke()
  config.imp.rates.dense = 1.0
  with pytest.raises(ValueError, match=r'\[0, 1\)'):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_invert_control_keeps_the_lowest_trained_magnitudes(tmp_path):
  from configs import imp_mlp_mnist1d  # pylint: disable=g-import-not-at-top
  from ticketjax.run import jobs  # pylint: disable=g-import-not-at-top
  params = tiny_mlp().init(jax.random.PRNGKey(0))[0]
  mask = masks.ones_like(params)
  cfg = imp.ImpConfig(levels=1, controls=('invert',))
  new = imp.prune_level(cfg, 1, params, mask, mask, jax.random.PRNGKey(1))
  for path, w, t, inv in zip(masks.leaf_paths(params),
                             jax.tree.leaves(params),
                             jax.tree.leaves(new['ticket']),
                             jax.tree.leaves(new['invert'])):
    if masks.is_kernel(path, w):
      w, t, inv = np.abs(np.asarray(w)), np.asarray(t), np.asarray(inv)
      assert inv.sum() == t.sum()
      assert w[inv].max() <= w[~inv].min(), path
  with pytest.raises(ValueError, match="'invert' control inverts"):
    imp.ImpConfig(levels=1, rule='random', controls=('invert',)).validate(
        10)
  # end to end: a branch of its own, with the ticket's per-layer counts
  config = imp_mlp_mnist1d.get_config('smoke,levels=1')
  config.progress = False
  config.imp.controls = ('invert',)
  summary = jobs.run(config, str(tmp_path))
  by = {(m['branch'], m['seed']): m for m in summary['members']
        if m['level'] == 1}
  for s in range(2):
    assert (by[('invert', s)]['density_per_layer']
            == by[('ticket', s)]['density_per_layer'])
  assert 'invert test acc (%)' in open(
      f"{summary['run_dir']}/report.md").read()


def test_channel_tickets_report_their_live_weights(tmp_path):
  # whole units removed leave the next layer's weights from them in the
  # mask: each channel ticket also records the kept weights that compute
  config = imp_mlp_mnist1d.get_config('smoke,levels=1,structure=channels')
  config.progress = False
  config.imp.controls = ('reinit',)
  summary = jobs.run(config, str(tmp_path))
  level1 = [m for m in summary['members'] if m['level'] == 1]
  for m in summary['members']:
    assert m['level'] == 1 or m['live_density'] == 1.0
  for m in level1:
    assert 0.0 < m['live_density'] < m['density']
  ticket = summary['levels'][1]['ticket']
  assert ticket['live_density'] == pytest.approx(np.mean(
      [m['live_density'] for m in level1 if m['branch'] == 'ticket']))
  text = open(f"{summary['run_dir']}/report.md").read()
  assert 'ticket live weights (%)' in text
  assert 'channels; output layer kept' in text
