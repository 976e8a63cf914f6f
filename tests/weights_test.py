"""Per-layer weight statistics (`reports/weights.py`) and its launcher."""
import os

import numpy as np
import pytest

import testlib
from ticketjax.reports import path_probe
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


def test_states_through_the_launcher(tmp_path):
  """A pretrained GPT-2 folder and a fresh init of its architecture; a
  saved run member with its mask (IMP's level 1 of 2 seeds)."""
  import jax  # pylint: disable=g-import-not-at-top
  from ticketjax.models import hf_gpt2, transformer  # pylint: disable=g-import-not-at-top
  cfg = transformer.DecoderConfig(
      vocab_size=40, context=16, d_model=32, num_layers=2, num_heads=4,
      num_kv_heads=4, d_ff=64, style='gpt2')
  params = transformer.init(cfg, jax.random.PRNGKey(3))
  params = jax.tree.map(lambda w: 10 * w, params)  # not the init's scale
  folder = str(tmp_path / 'gpt2')
  hf_gpt2.save(cfg, params, folder)
  out = tmp_path / 'out'
  proc = testlib.launch('weights', [f'--state=random=random:{folder}',
                                    f'--state=trained={folder}',
                                    f'--out={out}'], REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'trained: 12 layers' in proc.stdout  # 2 blocks x 6 projections
  for name in ('weights.md', 'weights.json', 'weights_hist.png',
               'weights_layers.png'):
    assert os.path.getsize(out / name) > 0
  random_rows = weights.layer_stats(weights.load_state(f'random:{folder}')[0])
  trained_rows = weights.layer_stats(weights.load_state(folder)[0])
  for r, t in zip(random_rows, trained_rows):
    assert t['std'] == pytest.approx(10 * r['std'], rel=0.2), r['layer']
  bad = testlib.launch('weights', ['--state=oops', f'--out={tmp_path / "x"}'],
                       REPO)
  assert bad.returncode == 2 and 'NAME=SOURCE' in bad.stderr
  assert not (tmp_path / 'x').exists()


def test_a_saved_run_member_with_its_mask(tmp_path):
  from configs import early_bird_mnist1d  # pylint: disable=g-import-not-at-top
  from ticketjax.run import jobs  # pylint: disable=g-import-not-at-top
  config = early_bird_mnist1d.get_config('smoke,levels=1')
  config.progress = False
  run_dir = jobs.run(config, str(tmp_path))['run_dir']
  params, mask = weights.load_state(f'{run_dir}/checkpoints/final:0')
  rows = weights.layer_stats(params, mask)
  assert [r['layer'] for r in rows] == [
      'dense_0/kernel', 'dense_1/kernel', 'output/kernel']
  assert [r['kept'] for r in rows] == pytest.approx([0.8, 0.8, 0.8],
                                                    abs=1e-3)


def test_a_layer_that_keeps_no_weight_has_no_statistics(tmp_path):
  rng = np.random.default_rng(0)
  params = {'a': {'kernel': rng.normal(0, 2.0, (30, 40))},
            'b': {'kernel': rng.normal(0, 1.0, (40, 10))}}
  mask = {'a': {'kernel': np.zeros((30, 40), bool)},
          'b': {'kernel': np.ones((40, 10), bool)}}
  a, b = weights.layer_stats(params, mask)
  assert a['kept'] == 0.0
  assert (a['std'], a['kurtosis'], a['near_zero']) == (None, None, None)
  line = weights.summary('x', [a, b])
  assert line.startswith('x: 2 layers (1 keeps no weight, left out), mean '
                         f"std {b['std']:.4g}, ")


def test_a_run_folder_is_not_a_network(tmp_path):
  (tmp_path / 'config.json').write_text('{}')
  (tmp_path / 'records').mkdir()
  for spec in (str(tmp_path), f'{tmp_path}:0'):
    with pytest.raises(ValueError, match=(
        'is a run folder, not a network: give one of its checkpoints')):
      weights.load_state(spec)


def test_checkpoints_that_hold_no_plain_weights_are_refused():
  """By the method's declared WRAPPED_CHECKPOINTS, without building the
  model: a run from a pretrained source needs no source file (the real
  checkpoints: `edgepopup_test`, `cs_test`)."""
  pretrained = {'job': 'imp', 'model': {'name': 'pretrained', 'kwargs': {
      'source': '/nowhere/gpt2'}}}
  path_probe.check_plain(pretrained, 'RUN/checkpoints/level_002')
  path_probe.check_plain({'job': 'edgepopup'}, 'RUN/checkpoints/dense')
  path_probe.check_plain({'job': 'cs'}, 'RUN/checkpoints/ticket')
  for job, name, what in (('edgepopup', 'edgepopup', 'scores over frozen'),
                          ('cs', 'round_03', 'mask logits beside'),
                          ('cs', 'rewind', 'mask logits beside')):
    with pytest.raises(ValueError, match=(
        f"does not hold the weights of a network: checkpoint '{name}' of job "
        f"'{job}' holds {what}")):
      path_probe.check_plain({'job': job}, f'RUN/checkpoints/{name}')

