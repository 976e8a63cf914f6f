"""IMP on a character GPT (configs/imp_gpt_shakespeare.py) on pydoc text:
perplexity per level, and a killed run resumes to the same bits."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest

from testlib import kill_when, launch_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(workdir):
  # rewinding to step 10: the rewind point is a checkpoint too
  return [sys.executable, '-m', 'launch.main',
          '--config=configs/imp_gpt_shakespeare.py:smoke,levels=2,k=10',
          f'--workdir={workdir}', '--config.progress=False']


def test_kill_and_resume_of_lm_imp_gives_identical_results(tmp_path):
  env = launch_env(tmp_path / 'cache')
  straight = subprocess.run(_launch(tmp_path / 'straight'), cwd=REPO,
                            env=env, capture_output=True, text=True,
                            timeout=600)
  assert straight.returncode == 0, straight.stderr[-2000:]
  assert 'ticket test perplexity' in straight.stdout
  proc = subprocess.Popen(_launch(tmp_path / 'killed'), cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  kill_when(proc, str(tmp_path / 'killed/*/checkpoints/level_001'))
  resumed = subprocess.run(_launch(tmp_path / 'killed'), cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  (a,) = glob.glob(str(tmp_path / 'straight/*/summary.json'))
  (b,) = glob.glob(str(tmp_path / 'killed/*/summary.json'))
  sa, sb = json.load(open(a)), json.load(open(b))
  assert sa['members'] == sb['members']
  assert open(a.replace('summary.json', 'metrics.jsonl')).read() == open(
      b.replace('summary.json', 'metrics.jsonl')).read()
  # perplexity is exp of each member's final mean token loss
  assert sa['metric'] == 'perplexity'
  level2 = sa['levels'][2]['ticket']
  losses = [m['final_test_loss'] for m in sa['members']
            if m['level'] == 2 and m['branch'] == 'ticket']
  assert level2['final_test_perplexity']['mean'] == pytest.approx(
      sum(math.exp(v) for v in losses) / len(losses), rel=1e-12)
  assert abs(level2['density'] - 0.64) < 1e-3
