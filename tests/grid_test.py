"""Hyperparameter grids: parsing, one program, equal to separate runs."""
import json
import os

import numpy as np
import pytest

from configs import cs_mnist1d
from configs import imp_mlp_mnist1d
from ticketjax.core import grid as grid_lib
from ticketjax.core import train as train_lib
from ticketjax.methods.imp import report as imp_report
from ticketjax.reports import cross_run
from ticketjax.run import jobs
from ticketjax.run import workdir


LRS = (1e-2, 3e-3)
RATES = (0.2, 0.4)


def _imp_config(seeds=4, lr=(), rate=(), rewind_steps=()):
  c = imp_mlp_mnist1d.get_config('smoke')
  c.num_seeds = seeds
  # members in compiled groups of 4: numbers bitwise independent of how many
  # members a program holds (16 or 64 here, 4 or 16 alone; not semantic)
  c.train.member_group = 4
  c.imp.controls = ('random',)  # one control keeps the test short
  c.imp.levels = 1
  c.progress = False
  c.grid.learning_rate = tuple(lr)
  c.grid.pruning_rate = tuple(rate)
  c.grid.rewind_step = tuple(rewind_steps)
  return c


def test_points_are_the_product_first_name_slowest():
  spec = grid_lib.from_config(_imp_config(lr=LRS, rate=RATES))
  assert spec.names == ('learning_rate', 'pruning_rate')
  assert spec.points == ({'learning_rate': 1e-2, 'pruning_rate': 0.2},
                         {'learning_rate': 1e-2, 'pruning_rate': 0.4},
                         {'learning_rate': 3e-3, 'pruning_rate': 0.2},
                         {'learning_rate': 3e-3, 'pruning_rate': 0.4})
  # lineage g * S + s is seed s of point g
  assert spec.who(5, 4) == {'seed': 1, 'learning_rate': 1e-2,
                            'pruning_rate': 0.4}
  np.testing.assert_array_equal(spec.per_lineage('pruning_rate', 2),
                                np.float32([.2, .2, .4, .4, .2, .2, .4, .4]))
  assert spec.label(spec.points[2]) == 'lr=0.003 rate=0.2'
  assert grid_lib.from_config(_imp_config()).size == 1  # empty lists


@pytest.mark.parametrize('field,value,match', [
    ('grid.learning_rate', (1e-2, -1.0), 'must be > 0'),
    ('grid.pruning_rate', (0.2, 1.0), r'\[0, 1\)'),
    ('grid.weight_decay', (-1e-4,), '>= 0'),
    ('grid.learning_rate', (1e-2, 1e-2), 'repeats'),
    ('grid.learning_rate', ('fast',), 'list of numbers'),
    ('grid.rewind_step', (0, 2.5), 'whole numbers'),
    ('grid.rewind_step', (-5,), r'\[-5\] are outside training'),
    ('grid.rewind_step', (0, 5), "needs imp.rewind 'step' or 'lr'"),
])
def test_bad_grid_fails_before_any_work(tmp_path, field, value, match):
  config = _imp_config()
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_unknown_name_and_job_without_grids_fail_clearly(tmp_path):
  config = _imp_config()
  with config.unlocked():
    config.grid.momentum = (0.9, 0.99)
  with pytest.raises(ValueError, match="unknown grid name 'momentum'"):
    jobs.run(config, str(tmp_path))
  cs = cs_mnist1d.get_config('smoke')
  cs.grid.learning_rate = LRS
  with pytest.raises(ValueError, match="'cs' job takes no grid.*cs.lambdas"):
    jobs.run(cs, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_empty_grid_keeps_the_hash_and_a_grid_changes_it():
  plain = _imp_config()
  with plain.unlocked():
    del plain['grid']  # a config from before grids existed
  assert workdir.config_hash(_imp_config()) == workdir.config_hash(plain)
  one = workdir.config_hash(_imp_config(lr=(1e-2,)))
  assert one != workdir.config_hash(plain)
  assert one == workdir.config_hash(_imp_config(lr=(0.01,)))


def _records(run_dir):
  with open(os.path.join(run_dir, 'metrics.jsonl'), encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def test_lr_by_rate_grid_is_one_program_equal_to_separate_runs(
    tmp_path, monkeypatch):
  """Issue 6, must-show 2: a 2 x 2 grid, 4 seeds each, one program; its
  off-diagonal points (each rate, each learning rate, and a swap of rows
  and columns would show) equal separate runs."""
  calls = []
  real_train = train_lib.Trainer.train

  def counting_train(self, state_S, data, num_steps):
    calls.append(int(state_S.step.shape[0]))
    return real_train(self, state_S, data, num_steps)

  monkeypatch.setattr(train_lib.Trainer, 'train', counting_train)
  summary = jobs.run(_imp_config(lr=LRS, rate=RATES),
                           str(tmp_path / 'grid'))
  # every training call of a level holds all 16 searches (x 2 branches at
  # level 1): 2 chunks per level, one compiled program per level
  assert calls == [16, 16, 32, 32]
  monkeypatch.setattr(train_lib.Trainer, 'train', real_train)
  grid_records = _records(summary['run_dir'])
  assert len(grid_records) == 2 * 16 + 2 * 32
  assert [p['label'] for p in summary['points']] == [
      'lr=0.01 rate=0.2', 'lr=0.01 rate=0.4', 'lr=0.003 rate=0.2',
      'lr=0.003 rate=0.4']
  assert 'lr=0.003 rate=0.4' in open(
      os.path.join(summary['run_dir'], 'report.md'), encoding='utf-8').read()

  key = lambda r: (r['level'], r['branch'], r['seed'], r['step'])
  for point in summary['points'][1:3]:
    lr, rate = point['point']['learning_rate'], point['point']['pruning_rate']
    config = _imp_config()
    config.optimizer.learning_rate = lr
    with config.unlocked():
      del config.imp['rates']  # the MLP config's F&C mapping
      config.imp.rates = rate
    alone = jobs.run(config, str(tmp_path / 'alone'))
    mine = sorted(({k: v for k, v in r.items()
                    if k not in ('learning_rate', 'pruning_rate')}
                   for r in grid_records if r['learning_rate'] == lr
                   and r['pruning_rate'] == rate), key=key)
    assert mine == sorted(_records(alone['run_dir']), key=key)
    assert point['levels'] == alone['levels']
    ticket = point['levels'][1]['ticket']
    hidden = [m['density_per_layer'] for m in summary['members']
              if m['level'] == 1 and m['branch'] == 'ticket'
              and m['pruning_rate'] == rate][0]
    assert all(d == pytest.approx(1 - rate, abs=2e-3)
               for d in hidden.values())
    assert ticket['density'] == pytest.approx(1 - rate, abs=2e-3)

  # the cross-run report: a series and seed-vs-seed overlaps per point
  text = cross_run.write([str(tmp_path / 'grid')], str(tmp_path / 'rep'))
  assert 'ticket lr=0.003 rate=0.4' in text
  assert 'lr=0.01 rate=0.2 level 1: seed vs seed' in text

  # a grid run cannot grow to more seeds; the folder is left as it was
  before = sorted(os.listdir(summary['run_dir']))
  with pytest.raises(ValueError,
                     match='holds a grid search with 4 seeds.*cannot grow'):
    jobs.run(_imp_config(seeds=5, lr=LRS, rate=RATES), str(tmp_path / 'grid'))
  assert sorted(os.listdir(summary['run_dir'])) == before


def _rewind_config(rewind_steps=(), k=0):
  config = _imp_config(seeds=2, rewind_steps=rewind_steps)
  config.train.steps = 10
  config.train.eval_every = 5
  config.imp.rewind = 'step'
  config.imp.rewind_step = k
  return config


def test_rewind_step_grid_fails_past_the_end_of_training(tmp_path):
  with pytest.raises(ValueError, match=r'\[40\] are outside training'):
    jobs.run(_rewind_config((0, 40)), str(tmp_path))
  assert not os.listdir(tmp_path)


def test_rewind_step_grid_equals_separate_runs(tmp_path):
  """Each member starts level 1 at its own rewind step (0 or 5 of 10
  steps) in one program; the k=5 members wait out the first chunk."""
  summary = jobs.run(_rewind_config((0, 5)), str(tmp_path / 'grid'))
  assert [p['label'] for p in summary['points']] == ['k=0', 'k=5']
  grid_records = _records(summary['run_dir'])
  key = lambda r: (r['level'], r['branch'], r['seed'], r['step'])
  level1_steps = lambda k: sorted({
      r['step'] for r in grid_records
      if r['level'] == 1 and r['rewind_step'] == k})
  assert level1_steps(0) == [5, 10]
  assert level1_steps(5) == [10]  # no record while waiting
  # the k=5 point, the one that waits (k=0 trains as any grid member does)
  alone = jobs.run(_rewind_config(k=5), str(tmp_path / 'alone'))
  mine = sorted(({n: v for n, v in r.items() if n != 'rewind_step'}
                 for r in grid_records if r['rewind_step'] == 5), key=key)
  assert mine == sorted(_records(alone['run_dir']), key=key)
  assert summary['points'][1]['levels'] == alone['levels']


def test_diverged_points_are_flagged_and_the_other_is_untouched(tmp_path,
                                                               capsys):
  """lr=1e30 diverges at once, and lr=1e3 is at a loss of ~1e11 by the
  first evaluation (nothing healthy to compare with): both points' members
  are flagged in the records, the summary and the printed table, the run
  ends normally, every file is strict JSON, and the healthy point's records
  equal a separate run's."""
  summary = jobs.run(_imp_config(seeds=2, lr=(1e-2, 1e3, 1e30)),
                     str(tmp_path / 'grid'))
  records = _records(summary['run_dir'])
  bad = [r for r in records if r['learning_rate'] in (1e3, 1e30)]
  assert bad and all(r.get('diverged') for r in bad)
  good = [r for r in records if r['learning_rate'] == 1e-2]
  assert not any('diverged' in r for r in good)
  healthy, *diverged = summary['points']
  for point in diverged:
    for entry in point['levels']:
      assert entry['ticket']['diverged'] == entry['ticket']['members'] == 2
  assert all('diverged' not in e['ticket'] for e in healthy['levels'])
  # per bad point: level 0's ticket, level 1's ticket and random control
  assert capsys.readouterr().out.count('diverged 2/2') == 2 * 3
  text = open(os.path.join(summary['run_dir'], 'report.md'),
              encoding='utf-8').read()
  assert 'diverged 2/2' in text
  # the cross-run report's series hold the healthy members only: none of
  # the diverged point's
  series = imp_report.series(summary)
  assert series and all(not m.get('diverged') and m['learning_rate'] == 1e-2
                        for s in series for ms in s['points'].values()
                        for m in ms)
  def no_constants(name):
    raise ValueError(f'not strict JSON: {name}')
  with open(os.path.join(summary['run_dir'], 'summary.json')) as f:
    json.load(f, parse_constant=no_constants)
  config = _imp_config(seeds=2)
  config.optimizer.learning_rate = 1e-2
  alone = jobs.run(config, str(tmp_path / 'alone'))
  key = lambda r: (r['level'], r['branch'], r['seed'], r['step'])
  assert sorted(({k: v for k, v in r.items() if k != 'learning_rate'}
                 for r in good), key=key) == sorted(
                     _records(alone['run_dir']), key=key)
