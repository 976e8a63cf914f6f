"""Per-layer weight statistics (`reports/weights.py`) and its launcher."""
import os
import subprocess
import sys

import numpy as np
import pytest

from ticketjax.reports import weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gaussian_and_heavy_tailed_layers():
  rng = np.random.default_rng(0)
  params = {'a': {'kernel': rng.normal(0, 2.0, (300, 400))},
            'b': {'kernel': rng.laplace(0, 1.0, (300, 400)),
                  'bias': np.zeros(400)}}
  mask = {'a': {'kernel': np.arange(300 * 400).reshape(300, 400) % 4 != 0},
          'b': {'kernel': np.ones((300, 400), bool),
                'bias': np.ones(400, bool)}}
  a, b = weights.layer_stats(params, mask)
  assert (a['layer'], b['layer']) == ('a/kernel', 'b/kernel')  # no biases
  assert a['kept'] == 0.75 and b['kept'] == 1.0
  assert a['std'] == pytest.approx(2.0, rel=0.01)
  assert a['kurtosis'] == pytest.approx(0.0, abs=0.05)
  # P(|z| < 0.1) = 0.0797 for a Gaussian; a Laplace has excess kurtosis 3
  assert a['near_zero'] == pytest.approx(0.0797, abs=0.005)
  assert b['kurtosis'] == pytest.approx(3.0, abs=0.2)
  assert b['near_zero'] > a['near_zero']


def test_states_from_runs_and_the_launcher(tmp_path):
  from configs import imp_gpt_shakespeare  # pylint: disable=g-import-not-at-top
  from ticketjax.run import jobs  # pylint: disable=g-import-not-at-top
  config = imp_gpt_shakespeare.get_config('smoke')
  config.progress = False
  run_dir = jobs.run(config, str(tmp_path / 'w'))['run_dir']
  dense = f'{run_dir}/checkpoints/level_000:1'
  ticket = f'{run_dir}/checkpoints/level_001:1'
  out = tmp_path / 'out'
  proc = subprocess.run(
      [sys.executable, '-m', 'launch.weights', f'--state=dense={dense}',
       f'--state=ticket={ticket}', f'--out={out}'], cwd=REPO,
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'ticket: 12 layers' in proc.stdout  # 2 blocks x 6 projections
  for name in ('weights.md', 'weights.json', 'weights_hist.png',
               'weights_layers.png'):
    assert os.path.getsize(out / name) > 0
  params, mask = weights.load_state(ticket)
  rows = weights.layer_stats(params, mask)
  assert [r['kept'] for r in rows] == pytest.approx([0.8] * 12, abs=1e-3)
  assert np.asarray(params['block_00']['attn']['query']['kernel']).ndim == 2
  bad = subprocess.run(
      [sys.executable, '-m', 'launch.weights', '--state=oops',
       f'--out={tmp_path / "x"}'], cwd=REPO, capture_output=True,
      text=True, timeout=600)
  assert bad.returncode == 2 and 'NAME=SOURCE' in bad.stderr
  assert not (tmp_path / 'x').exists()
