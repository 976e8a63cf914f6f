"""IMP on a character GPT (configs/imp_gpt_shakespeare.py) on pydoc text:
perplexity per level, and a killed run resumes to the same bits."""
import math
import os
import sys

import pytest

from testlib import assert_kill_and_resume_identical

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(workdir):
  # rewinding to step 10: the rewind point is a checkpoint too
  return [sys.executable, '-m', 'launch.main',
          '--config=configs/imp_gpt_shakespeare.py:smoke,levels=2,k=10',
          f'--workdir={workdir}', '--config.progress=False']


def test_kill_and_resume_of_lm_imp_gives_identical_results(tmp_path):
  sa = assert_kill_and_resume_identical(_launch, tmp_path,
                                        'checkpoints/level_001', REPO)
  # perplexity is exp of each member's final mean token loss
  assert sa['metric'] == 'perplexity'
  level2 = sa['levels'][2]['ticket']
  losses = [m['final_test_loss'] for m in sa['members']
            if m['level'] == 2 and m['branch'] == 'ticket']
  assert level2['final_test_perplexity']['mean'] == pytest.approx(
      sum(math.exp(v) for v in losses) / len(losses), rel=1e-12)
  assert abs(level2['density'] - 0.64) < 1e-3
