"""IMP on a character GPT (configs/imp_gpt_shakespeare.py) on pydoc text:
perplexity per level (also at the early-stopping step), and a killed run
resumes to the same bits."""
import json
import math
import os
import sys

import pytest

from testlib import assert_kill_and_resume_identical

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(workdir):
  # rewinding to step 10: the rewind point is a checkpoint too
  return [sys.executable, '-m', 'launch.main',
          '--config=configs/imp_gpt_shakespeare.py:smoke,levels=1,k=10',
          f'--workdir={workdir}', '--config.progress=False']


def test_kill_and_resume_of_lm_imp_gives_identical_results(tmp_path):
  sa = assert_kill_and_resume_identical(_launch, tmp_path,
                                        'checkpoints/level_000', REPO)
  # perplexity is exp of each member's final mean token loss
  assert sa['metric'] == 'perplexity'
  level1 = sa['levels'][1]['ticket']
  losses = [m['final_test_loss'] for m in sa['members']
            if m['level'] == 1 and m['branch'] == 'ticket']
  assert level1['final_test_perplexity']['mean'] == pytest.approx(
      sum(math.exp(v) for v in losses) / len(losses), rel=1e-12)
  assert abs(level1['density'] - 0.8) < 1e-3
  # the early-stopping point's perplexity: exp of the test loss of the
  # evaluation at each member's early-stopping step
  evals = [json.loads(line) for line in
           open(os.path.join(sa['run_dir'], 'metrics.jsonl'))]
  stops = [math.exp(next(r['test_loss'] for r in evals if r['level'] == 1
                         and r['branch'] == m['branch']
                         and r['seed'] == m['seed']
                         and r['step'] == m['early_stop_step']))
           for m in sa['members'] if m['level'] == 1
           and m['branch'] == 'ticket']
  assert level1['early_stop_test_perplexity']['values'] == pytest.approx(
      stops, rel=1e-12)
  # the run's plot and tables speak of perplexity, not accuracy
  names = os.listdir(sa['run_dir'])
  assert 'perplexity.png' in names and 'accuracy.png' not in names
  report = open(os.path.join(sa['run_dir'], 'report.md')).read()
  assert 'the test perplexity there' in report
  assert 'test acc' not in report


def test_a_summary_from_before_the_early_stop_perplexity_still_reports():
  from ticketjax.methods.imp import report  # pylint: disable=g-import-not-at-top
  agg = {'early_stop_step': {'mean': 20.0, 'std': 0.0, 'n': 2},
         'early_stop_test_accuracy': {'mean': 0.15, 'std': 0.0, 'n': 2}}
  assert report._stop_cell(agg, 'perplexity') == '20 ± 0 (n/a)'
  assert report._stop_cell(agg) == '20 ± 0 (15.0 ± 0.0)'


def test_a_language_model_grid_reports_perplexity_at_every_point():
  import ml_collections  # pylint: disable=g-import-not-at-top
  from ticketjax.core import grid as grid_lib  # pylint: disable=g-import-not-at-top
  from ticketjax.methods.imp import report  # pylint: disable=g-import-not-at-top
  grid = grid_lib.from_config(ml_collections.ConfigDict(
      {'job': 'imp', 'grid': {'learning_rate': [0.003, 0.001]}}))
  members, evals = [], []
  for lr in (0.003, 0.001):
    for level, branch in ((0, 'ticket'), (1, 'ticket'), (1, 'reinit')):
      for seed in (0, 1):
        who = {'level': level, 'branch': branch, 'seed': seed,
               'learning_rate': lr}
        loss = 3.0 + seed / 10 + level / 5 + lr
        members.append({**who, 'density': 1.0 - 0.2 * level,
                        'final_test_accuracy': 0.1,
                        'best_test_accuracy': 0.1, 'final_test_loss': loss,
                        'early_stop_step': 20,
                        'early_stop_test_accuracy': 0.1})
        evals.append({**who, 'step': 20, 'test_loss': loss})
  summary = report.summarize(members, grid, perplexity=True, evals=evals)
  summary.update({'metric': 'perplexity', 'num_seeds': 2})
  text = report.table(summary)
  # each point's tables are in perplexity: final, and at the early stop
  assert text.count('ticket test perplexity') == 2
  assert text.count('the test perplexity there') == 2
  assert 'test acc' not in text
  ppl = (math.exp(3.201) + math.exp(3.301)) / 2  # lr=0.001, level 1
  assert f'20 ± 0 ({ppl:.2f}' in text.split('### lr=0.001')[1]
  # the dense level's row too (its ticket alone), the tickets' reference
  ppl0 = (math.exp(3.001) + math.exp(3.101)) / 2
  (row,) = [line for line in text.split('### lr=0.001')[1].splitlines()
            if line.startswith(f'| 0 | 100.00 | 20 ± 0 ({ppl0:.2f} ± ')]
  assert row.endswith(') |  |')  # no control at level 0
