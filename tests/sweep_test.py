"""Sweeps: jobs from one file run in order, resumable, with one report."""
import os

import pytest

from configs import cs_mnist1d
from configs import dense_mnist1d
from configs import early_bird_mnist1d
from configs import imp_mlp_mnist1d
from configs import pai_mnist1d
from launch import sweep as sweep_launcher
from ticketjax.run import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dense(arg):
  config = dense_mnist1d.get_config(arg)
  config.progress = False
  return config


def test_sweep_runs_jobs_in_order_then_reports_and_reruns_nothing(tmp_path):
  configs = [_dense('smoke'), _dense('smoke,cnn')]  # the model axis
  first = sweep.run_sweep(configs, str(tmp_path))
  assert [s['model'] for s in first] == ['mnist1d_mlp', 'mnist1d_cnn']
  report = (tmp_path / 'report' / 'report.md').read_text()
  assert 'dense | mnist1d_mlp | 100.00 |' in report
  assert 'dense | mnist1d_cnn | 100.00 |' in report
  stamps = [os.path.getmtime(os.path.join(s['run_dir'], 'metrics.jsonl'))
            for s in first]
  again = sweep.run_sweep(configs, str(tmp_path))  # finished jobs skipped
  assert [os.path.getmtime(os.path.join(s['run_dir'], 'metrics.jsonl'))
          for s in again] == stamps


def test_a_bad_entry_fails_before_any_job_runs(tmp_path):
  bad = _dense('smoke')
  bad.optimizer.name = 'lion'
  with pytest.raises(ValueError,
                     match=r'sweep entry 2 of 2 \(dense\): .*lion'):
    sweep.run_sweep([_dense('smoke'), bad], str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()
  with pytest.raises(ValueError, match='the sweep has no jobs'):
    sweep.run_sweep([], str(tmp_path / 'w'))


def _imp_rewind_past_the_end():
  config = imp_mlp_mnist1d.get_config('smoke')
  config.imp.rewind = 'step'
  config.imp.rewind_step = 10**6
  return config


def _cs_rewind_past_the_end():
  config = cs_mnist1d.get_config('smoke')  # epoch 1 is past train.steps
  config.cs.rewind_epoch = 1
  config.train.steps = 2
  return config


def _early_bird_l1_without_batchnorm():
  config = early_bird_mnist1d.get_config('smoke')  # the MLP
  config.early_bird.l1 = 1e-4
  return config


@pytest.mark.parametrize('make,match', [
    (lambda: pai_mnist1d.get_config('smoke,score=bn_scale'),
     'no prunable kernel of this model has one'),
    (_imp_rewind_past_the_end, 'rewind'),
    (_cs_rewind_past_the_end, 'cs.rewind_epoch 1 is step'),
    (_early_bird_l1_without_batchnorm, 'early_bird.l1 penalizes BatchNorm'),
], ids=['pai-bn_scale-without-batchnorm', 'imp-rewind', 'cs-rewind',
        'early_bird-l1-without-batchnorm'])
def test_entries_are_checked_against_their_model_before_any_job_runs(
    tmp_path, make, match):
  # what a job checks against its built model and data (`check_built`)
  with pytest.raises(ValueError,
                     match=r'sweep entry 2 of 2 \(\w+\): .*' + match):
    sweep.run_sweep([_dense('smoke'), make()], str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_the_shipped_sweep_file_checks(tmp_path):
  configs = sweep_launcher.load_sweep(
      os.path.join(REPO, 'configs', 'sweep_mnist1d.py') + ':smoke')
  assert [c.job for c in configs] == ['imp', 'cs', 'edgepopup']
  sweep.check(configs)
  with pytest.raises(ValueError, match='no sweep file'):
    sweep_launcher.load_sweep(str(tmp_path / 'missing.py'))
