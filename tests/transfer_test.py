"""Ticket transfer: source tickets trained on target data (MNIST-1D here;
the Fashion-MNIST -> MNIST run is in docs/results.md)."""
import json
import os
import shutil

import pytest

from configs import common
from configs import imp_mlp_mnist1d
from configs import transfer_lenet300_fashion_mnist_to_mnist_5k as transfer
from ticketjax.run import jobs
from ticketjax.run import lock


@pytest.fixture(scope='module')
def imp_runs(tmp_path_factory):
  """(source, target) IMP smoke runs of the same MLP, seeds and init; the
  target trained at another learning rate (so other tickets)."""
  root = str(tmp_path_factory.mktemp('imp'))
  source = imp_mlp_mnist1d.get_config('smoke')
  target = imp_mlp_mnist1d.get_config('smoke')
  target.optimizer.learning_rate = 3e-3
  dirs = []
  for config in (source, target):
    config.progress = False
    dirs.append(jobs.run(config, root)['run_dir'])
  return dirs


def _config(source, target, levels=(1, 2)):
  c = transfer.get_config('smoke')
  common.mnist1d_mlp_protocol(c, 100)
  c.train.steps, c.train.eval_every = 40, 20
  c.transfer.source_run, c.transfer.target_run = source, target
  c.transfer.levels = levels
  c.progress = False
  return c


def _members(run_dir):
  with open(os.path.join(run_dir, 'summary.json')) as f:
    return json.load(f)['members']


def test_every_branch_has_its_masks_and_the_run_resumes_done(imp_runs,
                                                             tmp_path):
  source, target = imp_runs
  summary = jobs.run(_config(source, target), str(tmp_path))
  assert summary['branches'] == ['transferred', 'target', 'reinit', 'random']
  assert len(summary['members']) == 2 * 4 * 2
  mine = {(m['level'], m['branch'], m['seed']): m for m in summary['members']}
  for name, run in (('transferred', source), ('target', target)):
    tickets = {(m['level'], m['seed']): m for m in _members(run)
               if m['branch'] == 'ticket'}
    for (level, seed), ticket in tickets.items():
      if level:  # the IMP ticket's exact per-layer densities
        assert mine[level, name, seed]['density_per_layer'] == ticket[
            'density_per_layer']
  for level in (1, 2):
    for seed in (0, 1):
      t = mine[level, 'transferred', seed]
      for other in ('reinit', 'random'):  # same counts per layer
        assert mine[level, other, seed]['density_per_layer'] == t[
            'density_per_layer']
      # same mask and data, other init: another network
      assert mine[level, 'reinit', seed]['final_test_loss'] != t[
          'final_test_loss']
  assert 'Ticket transfer mnist1d -> mnist1d' in open(
      os.path.join(summary['run_dir'], 'report.md')).read()
  assert jobs.run(_config(source, target), str(tmp_path)) == summary


@pytest.mark.parametrize('which,value,match', [
    ('source', 'nope', 'not an IMP run folder'),
    ('levels', (1, 7), r'IMP levels \[7\] are not finished'),
    ('seeds', 9, 'has 2 seeds but this run asks for 9'),
    ('width', 50, "differs from this config in \\['model'\\]"),
    ('data', {'name': 'fashion_mnist'}, "transfer.target_run .* was "
     "trained on 'fashion_mnist', not on this run's data 'mnist1d'"),
    ('data', {'val_size': 123, 'data_dir': '/elsewhere'},
     r"trained on 'mnist1d' read otherwise: data.val_size 123 \(this run: "
     r"\d+\); the target"),  # data_dir is not compared: where it lives
])
def test_bad_transfer_inputs_fail_before_any_write(imp_runs, tmp_path, which,
                                                   value, match):
  source, target = imp_runs
  config = _config(value if which == 'source' else source, target,
                   value if which == 'levels' else (1, 2))
  if which == 'seeds':
    config.num_seeds = value
  if which == 'width':
    common.mnist1d_mlp_protocol(config, value)
  if which == 'data':  # a target run of other data (e.g. runs given swapped,
    # or another split of the same data set)
    other = str(tmp_path / 'other' / os.path.basename(target))
    shutil.copytree(target, other)
    with open(os.path.join(other, 'config.json')) as f:
      theirs = json.load(f)
    theirs['data'].update(value)
    with open(os.path.join(other, 'config.json'), 'w') as f:
      json.dump(theirs, f)
    config.transfer.target_run = other
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(tmp_path / 'w'))
  lock.release_all()
  assert not (tmp_path / 'w').exists()


def test_a_damaged_source_ticket_is_named_before_any_write(imp_runs,
                                                           tmp_path):
  source, target = imp_runs
  copy = str(tmp_path / 'source')
  shutil.copytree(source, copy)
  level = os.path.join(copy, 'checkpoints', 'level_002')
  files = [os.path.join(r, f) for r, _, fs in os.walk(level) for f in fs
           if not f.endswith('.sha256')]
  with open(max(files, key=os.path.getsize), 'r+b') as f:
    f.truncate(10)
  with pytest.raises(ValueError, match='level_002 cannot be used'):
    jobs.run(_config(copy, target), str(tmp_path / 'w'))
  lock.release_all()
  assert not (tmp_path / 'w').exists()


def test_a_tokenizer_is_compared_by_its_contents(imp_runs, tmp_path):
  # the target run read a tokenizer file elsewhere: the same bytes pass,
  # other bytes are other data
  from ticketjax.methods.transfer import job  # pylint: disable=g-import-not-at-top
  from ticketjax.run import records, workdir  # pylint: disable=g-import-not-at-top
  source, target = imp_runs
  theirs, mine = tmp_path / 'theirs.json', tmp_path / 'mine.json'
  theirs.write_text('{"vocab": 1}')
  mine.write_text('{"vocab": 1}')
  other = str(tmp_path / 'target')
  shutil.copytree(target, other)
  with open(os.path.join(other, 'config.json')) as f:
    config_json = json.load(f)
  config_json['data']['tokenizer'] = str(theirs)
  with open(os.path.join(other, 'config.json'), 'w') as f:
    json.dump(config_json, f)
  records.write_json(os.path.join(other, workdir.INPUTS),
                     {'data.tokenizer': records.content_sum(str(theirs))})
  config = _config(source, other)
  config.data.tokenizer = str(mine)
  job._imp_run(other, 'transfer.target_run', config, 2, (1,), own_data=True)
  mine.write_text('{"vocab": 2}')
  with pytest.raises(ValueError, match='read otherwise: data.tokenizer'):
    job._imp_run(other, 'transfer.target_run', config, 2, (1,),
                 own_data=True)
