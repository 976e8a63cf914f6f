"""Continuous Sparsification: masks, beta, optimizer, sweeps, health, resume."""
import glob
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cs_mnist1d
from ticketjax.core import optim
from ticketjax.methods.cs import core as cs
from ticketjax.methods.cs import report as cs_report
from ticketjax.run import jobs
from ticketjax.run import store as checkpoint
from testlib import assert_kill_and_resume_identical
from testlib import assert_weights_tool_reads, tiny_mlp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('s_init', [0.0, 0.3, -0.2])
def test_soft_mask_is_exactly_one_at_init(s_init):
  cfg = cs.CsConfig(s_init=s_init)
  model = cs.wrap_model(tiny_mlp(), cfg)
  params, state = model.init(jax.random.PRNGKey(0))
  soft = cs.soft_masks(params['logits'], params['weights'], state['beta'],
                       s_init, cfg.prunable)
  assert len(soft) == 2  # the two kernels, not the biases
  for m in soft:
    np.testing.assert_array_equal(m, np.ones_like(m))
  # so the wrapped model computes exactly what the plain model computes
  x = jnp.ones((4, 8))
  np.testing.assert_array_equal(
      model.apply(params, state, x, train=False)[0],
      tiny_mlp().apply(params['weights'], {}, x, train=False)[0])


def test_hard_mask_is_logits_above_zero():
  weights = tiny_mlp().init(jax.random.PRNGKey(0))[0]
  logits = cs.init_logits(weights, 0.0, cs.CsConfig().prunable)
  s = np.array([[0.5, -0.1, 0.0], [1e-7, -3.0, 2.0]] * 8)  # (16, 3)
  logits['output']['kernel'] = jnp.asarray(s, jnp.float32)
  mask = cs.hard_mask(logits, weights, cs.CsConfig().prunable)
  np.testing.assert_array_equal(mask['output']['kernel'], s > 0)
  assert not mask['dense_0']['kernel'].any()  # s = s_init = 0: not > 0
  assert mask['dense_0']['bias'].all() and mask['output']['bias'].all()


def test_beta_schedule_reaches_beta_max_at_the_end_of_a_round():
  betas = [cs.beta_at(e, 5, 200.0) for e in range(5)]
  assert betas[0] == 1.0 and betas[-1] == 200.0
  np.testing.assert_allclose(np.diff(np.log(betas)), np.log(200.0) / 4)


def test_between_rounds_logits_are_clamped_at_s_init():
  s = {'a': jnp.array([-1.0, 0.01, 0.5])}
  out = cs.next_round_logits(s, 10.0, 0.2)
  np.testing.assert_allclose(out['a'], [-10.0, 0.1, 0.2])


def test_penalty_is_lambda_times_sum_of_soft_masks():
  cfg = cs.CsConfig(s_init=0.0)
  model = cs.wrap_model(tiny_mlp(), cfg)
  params, state = model.init(jax.random.PRNGKey(0))
  n = 8 * 16 + 16 * 3
  state = dict(state, lam=jnp.float32(0.5))
  np.testing.assert_allclose(cs.make_penalty(cfg)(params, state), 0.5 * n)
  params['logits']['output']['kernel'] = -100 * jnp.ones((16, 3))
  np.testing.assert_allclose(cs.make_penalty(cfg)(params, state),
                             0.5 * 8 * 16, rtol=1e-6)


def test_logits_have_own_optimizer_and_no_weight_decay():
  cfg = cs.CsConfig()
  params, _ = cs.wrap_model(tiny_mlp(), cfg).init(jax.random.PRNGKey(0))
  params['logits'] = jax.tree.map(lambda s: s + 1.0, params['logits'])
  tx = cs.make_optimizer(optim.OptimizerConfig(
      name='momentum', learning_rate=0.1, weight_decay=0.5), 10,
      mask_learning_rate=0.01)
  state = tx.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  ones = jax.tree.map(lambda x: jnp.ones(x.shape, jnp.bool_), params)
  updates, _ = tx.update(zeros, state, params, mask=ones)
  # zero gradient: weights move by weight decay, logits do not move
  np.testing.assert_allclose(updates['weights']['output']['kernel'],
                             -0.1 * 0.5 * params['weights']['output']['kernel'],
                             rtol=1e-6)
  for u in jax.tree.leaves(updates['logits']):
    np.testing.assert_array_equal(u, 0.0)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, state, params, mask=ones)
  np.testing.assert_allclose(updates['logits']['output']['kernel'], -0.01)
  # a different kind for the logits: plain SGD there, Adam on the weights
  tx = cs.make_optimizer(optim.OptimizerConfig(name='adam', learning_rate=0.1),
                         10, mask_learning_rate=0.5, mask_optimizer='sgd')
  grads = jax.tree.map(lambda x: 0.01 * jnp.ones_like(x), params)
  updates, _ = tx.update(grads, tx.init(params), params, mask=ones)
  np.testing.assert_allclose(updates['logits']['output']['kernel'], -0.005,
                             rtol=1e-6)
  np.testing.assert_allclose(updates['weights']['output']['kernel'], -0.1,
                             rtol=1e-3)  # Adam's first step: -lr * sign


def _smoke(seeds=2, lambdas=None, rounds=1):
  c = cs_mnist1d.get_config(f'smoke,seeds={seeds}')
  c.progress = False
  if lambdas is not None:
    c.cs.lambdas = lambdas
  c.cs.rounds = rounds
  return c


def test_cs_smoke_end_to_end_and_idempotent(tmp_path, capsys):
  config = _smoke(rounds=2)
  summary = jobs.run(config, str(tmp_path))
  (run_dir,) = glob.glob(str(tmp_path / 'cs-*'))
  for name in ('config.json', 'metrics.jsonl', 'summary.json', 'report.md',
               'accuracy.png', 'checkpoints/rewind', 'checkpoints/round_01',
               'checkpoints/ticket'):
    assert os.path.exists(os.path.join(run_dir, name)), name
  assert_weights_tool_reads(run_dir, config, plain=['ticket'],
                            wrapped=['rewind', 'round_00', 'round_01'])
  assert len(summary['members']) == 2 * len(config.cs.lambdas)
  records = [json.loads(line) for line in open(
      os.path.join(run_dir, 'metrics.jsonl'))]
  betas = {r['beta'] for r in records if r['stage'].startswith('round')}
  assert betas == {config.cs.beta_max}  # beta ends every round at beta_max
  # larger lambda, sparser ticket
  d = [e['density']['mean'] for e in summary['by_lambda']]
  assert d[0] > d[-1]
  assert summary['sequential_steps'] == 2 * 2 * 35 + 40
  out = capsys.readouterr().out  # (TFDS may print before the table)
  assert ('CS lambda sweep: mnist1d_mlp on mnist1d, lambdas 1e-05, 0.001, 2 '
          'seeds; ± is ±1 std over 2 seeds (ddof 0)\n\n| lambda |') in out
  # no member diverged; lambda 1e-3 keeps 0.02%: both seeds' networks lose
  # whole layers (layer collapse), which the table says
  assert [e['collapsed'] for e in summary['by_lambda']] == [0, 2]
  assert [0.0 in m['density_per_layer'].values()
          for m in summary['members']] == [False, False, True, True]
  assert '| 0.001 | 0.02 ± 0.02 |' in out
  assert '| collapsed 2/2 (an empty layer) |' in out
  assert 'diverged' not in out
  stamps = {name: os.path.getmtime(os.path.join(run_dir, name))
            for name in ('checkpoints/ticket', 'metrics.jsonl')}
  again = jobs.run(config, str(tmp_path))
  assert again['members'] == summary['members']
  assert 'already done' in capsys.readouterr().err
  # a lost report and an emptied plot come back; nothing else is redone
  os.remove(os.path.join(run_dir, 'report.md'))
  open(os.path.join(run_dir, 'accuracy.png'), 'w').close()
  jobs.run(config, str(tmp_path))
  out, err = capsys.readouterr()
  assert 'already done' in err and 'CS lambda sweep' in out
  assert os.path.getsize(os.path.join(run_dir, 'accuracy.png')) > 0
  report_md = open(os.path.join(run_dir, 'report.md')).read()
  assert report_md.startswith('# CS lambda sweep') and '| 0.001 |' in report_md
  assert stamps == {name: os.path.getmtime(os.path.join(run_dir, name))
                    for name in stamps}
  config.num_seeds = 3  # same run folder, other member count: refused
  with pytest.raises(ValueError, match='cannot grow to more seeds'):
    jobs.run(config, str(tmp_path))
  assert json.load(open(os.path.join(run_dir, 'summary.json')))[
      'members'] == summary['members']


@pytest.mark.filterwarnings('ignore:overflow encountered in cast')
def test_a_diverged_lambda_is_flagged_and_the_others_are_untouched(tmp_path):
  """lambda 1e39 overflows float32: the penalty is inf, the search's logits
  and then its weights turn NaN, and the ticket, rewound to after epoch 0,
  inherits NaN biases. The other lambda must come out exactly as in a run
  without the overflowing one (same member layout: lambda 1e-3 instead)."""
  def sweep(lambdas, name):
    config = _smoke(lambdas=lambdas)
    config.cs.rewind_epoch = 1  # the rewind point lies after the overflow
    summary = jobs.run(config, str(tmp_path / name))
    run_dir = summary['run_dir']
    records = [json.loads(line) for line in open(
        os.path.join(run_dir, 'metrics.jsonl'))]
    return summary, records, open(os.path.join(run_dir, 'report.md')).read()

  sick, sick_records, sick_report = sweep((1e-5, 1e39), 'sick')
  well, well_records, well_report = sweep((1e-5, 1e-3), 'well')
  assert [m.get('diverged', False) for m in sick['members']] == [
      False, False, True, True]
  bad = [r for r in sick_records if r['lambda'] == 1e39]
  assert all(r['diverged'] for r in bad if r['stage'] == 'ticket')
  assert sick['by_lambda'][1]['diverged'] == 2
  assert sick['by_lambda'][1]['final_test_accuracy']['n'] == 0
  # (its NaN logits keep no weight: an empty mask, counted as collapsed)
  assert ('| 1e+39 | - | - | diverged 2/2, collapsed 2/2 (an empty layer) |'
          in sick_report)
  assert '| 1e-05 |' in sick_report and '| ok |' in sick_report
  # the healthy lambda: records, members and means bitwise as without it
  def healthy(records):
    return [r for r in records if r['lambda'] == 1e-5]
  assert healthy(sick_records) == healthy(well_records)
  assert healthy(sick['members']) == healthy(well['members'])
  assert sick['by_lambda'][0] == well['by_lambda'][0]
  # a run without divergence carries no trace of the divergence check
  for rec in well_records + well['members'] + well['by_lambda']:
    assert 'diverged' not in rec
  assert 'diverged' not in well_report


def test_summary_and_table_leave_a_diverged_seed_out():
  def member(seed, acc, **flag):
    return {'lambda': 0.1, 'seed': seed, 'density': 0.5,
            'final_test_accuracy': acc, 'best_test_accuracy': acc, **flag}
  members = [member(0, 0.6), member(1, 0.1, diverged=True)]
  summary = {'model': 'mlp', 'dataset': 'data', 'num_seeds': 2,
             'lambdas': [0.1], 'sequential_steps': 10, 'member_steps': 20,
             'members': members,
             'by_lambda': cs_report.summarize(members, (0.1,))}
  (entry,) = summary['by_lambda']
  assert entry['diverged'] == 1
  assert entry['final_test_accuracy']['values'] == [0.6]
  assert '| 0.1 | 50.00 | 60.0 | diverged 1/2 |' in (
      cs_report.table(summary))
  assert cs_report.series(summary)[0]['points'] == {0.1: [members[0]]}
  members[1].pop('diverged')  # healthy: no count, no health column
  (entry,) = cs_report.summarize(members, (0.1,))
  assert 'diverged' not in entry and entry['final_test_accuracy']['n'] == 2
  assert entry['collapsed'] == 0
  assert 'health' not in cs_report.table(dict(summary, by_lambda=[entry]))
  # a seed with an empty layer is counted as collapsed, not left out
  members[1]['density_per_layer'] = {'dense_0': 0.8, 'dense_1': 0.0}
  (entry,) = cs_report.summarize(members, (0.1,))
  assert entry['collapsed'] == 1 and entry['final_test_accuracy']['n'] == 2
  assert ('| 50.00 ± 0.00 | 35.0 ± 25.0 | collapsed 1/2 (an empty layer) |'
          in cs_report.table(dict(summary, by_lambda=[entry])))


def test_vmapped_lambda_sweep_equals_single_lambda_runs(tmp_path):
  both = jobs.run(_smoke(seeds=1, lambdas=(1e-5, 1e-3)),
                        str(tmp_path / 'a'))
  one = jobs.run(_smoke(seeds=1, lambdas=(1e-3,)), str(tmp_path / 'b'))
  (a,) = [m for m in both['members'] if m['lambda'] == 1e-3]
  (b,) = one['members']
  np.testing.assert_allclose(a['density'], b['density'], atol=1e-3)
  np.testing.assert_allclose(a['final_test_accuracy'],
                             b['final_test_accuracy'], atol=5e-3)


STEPS_PER_EPOCH = 35  # the smoke's MNIST-1D: 3,500 training examples / 100


def _launch(workdir):
  return [sys.executable, '-m', 'launch.main',
          '--config=configs/cs_mnist1d.py:smoke', f'--workdir={workdir}',
          '--config.progress=False', '--config.cs.rounds=2']


def test_kill_and_resume_gives_identical_results(tmp_path):
  """Killed inside search round 1, right after its save at the end of the
  round's first epoch (a save after every epoch), the search resumes from
  that save."""
  assert_kill_and_resume_identical(
      lambda w: _launch(w) + ['--config.train.checkpoint_every_s=0'],
      tmp_path, f'checkpoints/round_01.steps/{3 * STEPS_PER_EPOCH}', REPO,
      resumes=f'resuming round_01 from its save at step {3 * STEPS_PER_EPOCH}')


def test_sanity_controls_train_next_to_the_tickets(tmp_path):
  config = _smoke()
  config.cs.controls = ('shuffle', 'reinit', 'invert')
  summary = jobs.run(config, str(tmp_path))
  L = len(config.cs.lambdas)
  members = summary['members']
  assert [m['branch'] for m in members] == [
      b for b in ('original', 'shuffle', 'reinit', 'invert')
      for _ in range(2 * L)]
  raw = checkpoint.Checkpoints(summary['run_dir']).restore_raw('ticket')
  last = checkpoint.Checkpoints(summary['run_dir']).restore_raw('round_00')
  M = 2 * L
  for name in raw['mask']:
    masks = np.asarray(raw['mask'][name]['kernel'])
    for i in range(M):
      orig, shuf, reinit, inv = (masks[i + k * M] for k in range(4))
      assert shuf.sum() == orig.sum() and inv.sum() == orig.sum(), name
      np.testing.assert_array_equal(reinit, orig)
      logits = np.asarray(last['params']['logits'][name]['kernel'][i])
      if 0 < orig.sum() < orig.size:  # inverted: the lowest logits kept
        assert logits[inv].max() <= logits[~inv].min(), name
  for e in summary['by_lambda']:
    assert set(e['controls']) == {'shuffle', 'reinit', 'invert'}
  # the step count covers the search's members, not the controls
  assert (f"over all {M} members of the search (the controls not counted): "
          f"{summary['member_steps']}") in cs_report.table(summary)
  report = open(os.path.join(summary['run_dir'], 'report.md')).read()
  assert '| invert test acc (%) |' in report


@pytest.mark.parametrize('field,value,match', [
    ('lambdas', (1e-5, -1.0), 'lambdas must be >= 0'),
    ('beta_max', 0.5, 'beta_max must be >= 1'),
    ('epochs_per_round', 1, 'epochs_per_round must be >= 2'),
    ('rewind_epoch', 5, 'rewind_epoch must be in'),
    ('temperature', 3.0, 'unknown fields'),
    ('mask_optimizer', 'rmsprop', 'unknown cs.mask_optimizer'),
    ('controls', ('shuffle', 'random'),
     r"unknown \['random'\]; valid controls are .'shuffle', 'reinit'"),
])
def test_bad_cs_config_fails_before_any_work(tmp_path, field, value, match):
  config = _smoke()
  config.cs[field] = value
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()
