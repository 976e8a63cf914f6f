"""Pruning at initialization (`methods/pai`): the first method added as a
plug-in (one folder, one config, this test and one registry line)."""
import json
import os

import numpy as np
import pytest

from configs import pai_mnist1d
from ticketjax.reports import cross_run
from ticketjax.run import jobs
from ticketjax.run import store


def _smoke(**pai):
  config = pai_mnist1d.get_config('smoke')
  config.progress = False
  for name, value in pai.items():
    setattr(config.pai, name, value)
  return config


def _kept(params_mask, density):
  """Per-layer kept counts pruning by `density` must give."""
  return {path: m.size - int(np.floor(np.float32(1 - density) * m.size + 0.5))
          for path, m in params_mask.items()}


@pytest.mark.parametrize('score', ['magnitude', 'random', 'snip', 'grasp',
                                   'synflow'])
def test_pai_smoke_prunes_exactly_trains_and_reports(tmp_path, score):
  # synflow: 100 rounds by default, ending at exactly the one-round counts
  summary = jobs.run(_smoke(score=score), str(tmp_path))
  run_dir = summary['run_dir']
  assert summary['score'] == score and len(summary['members']) == 2 * 2
  final = store.Checkpoints(run_dir).restore_raw('final')
  masks = final['mask']
  for i, m in enumerate(summary['members']):  # density-major, seed-minor
    assert (m['density_target'], m['seed']) == ((0.5, 0.1)[i // 2], i % 2)
    kernels = {f'{layer}/kernel': np.asarray(masks[layer]['kernel'][i])
               for layer in masks}
    want = _kept(kernels, m['density_target'])
    assert {k: int(v.sum()) for k, v in kernels.items()} == want
    assert m['density_per_layer'] == pytest.approx(
        {k: want[k] / kernels[k].size for k in want})
    # no layer empties; gradient scores may cut an output (class) off
    assert m['empty_layers'] == 0 and 1 <= m['connected_outputs'] <= 10
    if score == 'magnitude':
      assert m['connected_outputs'] == 10
  # pruned weights stay exactly zero through training
  for layer in masks:
    w, msk = final['params'][layer]['kernel'], masks[layer]['kernel']
    assert not np.any(np.asarray(w)[~np.asarray(msk)])
  for name in ('report.md', 'accuracy.png', 'curves.png', 'metrics.jsonl'):
    assert os.path.getsize(os.path.join(run_dir, name)) > 0, name
  assert f'Pruning by {score} at init' in open(
      os.path.join(run_dir, 'report.md')).read()


def test_a_finished_run_is_found_and_heals_its_plots(tmp_path, capsys):
  first = jobs.run(_smoke(), str(tmp_path))
  run_dir = first['run_dir']
  ckpt = os.path.join(run_dir, 'checkpoints', 'final')
  stamp = os.path.getmtime(ckpt)
  open(os.path.join(run_dir, 'accuracy.png'), 'w').close()  # emptied
  os.remove(os.path.join(run_dir, 'report.md'))
  capsys.readouterr()
  again = jobs.run(_smoke(), str(tmp_path))
  assert again == json.load(open(os.path.join(run_dir, 'summary.json')))
  assert again == first and os.path.getmtime(ckpt) == stamp
  assert os.path.getsize(os.path.join(run_dir, 'accuracy.png')) > 0
  assert os.path.exists(os.path.join(run_dir, 'report.md'))
  assert 'already done' in capsys.readouterr().err
  # the cross-run report finds the method through the registry
  text = cross_run.write([str(tmp_path)], str(tmp_path / 'report'))
  assert 'pai mnist1d_mlp PaI magnitude at init (layerwise)' in text


def test_vmapped_density_sweep_equals_separate_runs(tmp_path):
  """With members in compiled groups (not semantic), density 10% of a
  two-density sweep has exactly the records of a run of 10% alone."""
  both, alone = _smoke(), _smoke(densities=(0.1,))
  for config in (both, alone):
    config.train.member_group = 2
  jobs.run(both, str(tmp_path / 'both'))
  jobs.run(alone, str(tmp_path / 'alone'))
  read = lambda name: [json.loads(line) for line in open(
      next((tmp_path / name).glob('pai-*/metrics.jsonl')))]
  assert [r for r in read('both') if r['density_target'] == 0.1] == read(
      'alone')


@pytest.mark.parametrize('field,value,match', [
    ('score', 'grasp2', "unknown score 'grasp2'"),
    ('scope', 'rows', "unknown pruning scope 'rows'"),
    ('densities', (0.5, 1.5), r'lie outside \(0, 1\]'),
    ('densities', (), 'empty'),
    ('structure', '4:2', 'valid structures'),
    ('structure', '3:6', r'dense_0/kernel \(input axis 40\)'),
    ('structure', '1:4', r'pai.densities \[0.5\] exceed what 1:4 keeps'),
    ('controls', ('shuffle', 'flip'), "valid|'invert'"),
    ('prune_at', 'later', "valid values are \\['init', 'trained'\\]"),
])
def test_bad_pai_config_fails_before_any_work(tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    jobs.run(_smoke(**{field: value}), str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def _masks(run_dir):
  final = store.Checkpoints(run_dir).restore_raw('final')
  return {f'{layer}/kernel': np.asarray(final['mask'][layer]['kernel'])
          for layer in final['mask']}


def test_sanity_controls_shuffle_reinit_and_invert_the_masks(tmp_path):
  summary = jobs.run(_smoke(controls=('shuffle', 'reinit', 'invert')),
                     str(tmp_path))
  members = summary['members']
  assert [(m['branch'], m['density_target'], m['seed']) for m in members] == [
      (b, d, s) for b in ('original', 'shuffle', 'reinit', 'invert')
      for d in (0.5, 0.1) for s in (0, 1)]
  masks = _masks(summary['run_dir'])
  for i in range(4):  # original member i; its controls at i + 4k
    for path, m in masks.items():
      orig, shuf, reinit, inv = (m[i + 4 * k] for k in range(4))
      assert shuf.sum() == orig.sum() and (shuf != orig).any(), path
      np.testing.assert_array_equal(reinit, orig)
      assert inv.sum() == orig.sum(), path
      if members[i]['density_target'] == 0.5:  # the lowest half: the rest
        np.testing.assert_array_equal(inv, ~orig)
  table = open(os.path.join(summary['run_dir'], 'report.md')).read()
  assert '| invert | 10 |' in table and '| reinit | 50 |' in table


def test_one_shot_after_training_prunes_the_trained_weights(tmp_path):
  summary = jobs.run(_smoke(prune_at='trained'), str(tmp_path))
  run_dir = summary['run_dir']
  dense = store.Checkpoints(run_dir).restore_raw('dense')
  masks = _masks(run_dir)
  for i, m in enumerate(m for m in summary['members']
                        if m['branch'] == 'original'):
    trained = {path: np.abs(np.asarray(
        dense['params'][path.split('/')[0]]['kernel'][m['seed']]))
               for path in masks}
    for path, w in trained.items():  # the largest trained |w| are kept
      kept = masks[path][i]
      assert w[kept].min() >= w[~kept].max(), path
  rows = summary['by_density']
  assert rows[0]['branch'] == 'dense' and rows[0]['density']['mean'] == 1.0
  assert 'after training' in open(os.path.join(run_dir, 'report.md')).read()


def test_layer_collapse_is_counted(tmp_path):
  # 15,000 weights pooled, 0.02% kept: 3 weights cannot span three layers
  summary = jobs.run(_smoke(densities=(0.0002,), scope='global'),
                     str(tmp_path))
  for m in summary['members']:
    assert m['empty_layers'] >= 1 and m['connected_outputs'] == 0
  assert summary['by_density'][0]['collapsed'] == 2
  assert 'collapsed 2/2' in open(
      os.path.join(summary['run_dir'], 'report.md')).read()


def test_channels_report_the_weights_that_still_compute(tmp_path):
  # MNIST-1D MLP 40-100-100-10 with a residual stream: half the units of
  # each hidden layer kept leaves dense_1's rows from removed units and
  # the output's rows from units neither hidden layer keeps
  summary = jobs.run(_smoke(structure='channels', densities=(0.5,)),
                     str(tmp_path))
  for m in summary['members']:
    assert m['density'] == pytest.approx(8000 / 15000)
    assert m['live_density'] < m['density']
  (group,) = summary['by_density']
  assert group['live_density']['mean'] == pytest.approx(np.mean(
      [m['live_density'] for m in summary['members']]))
  # counted from the saved masks: dense_0's kept units feed dense_1's kept
  # units, and the output reads every unit of the residual stream one of
  # the two hidden layers writes
  final = store.Checkpoints(summary['run_dir']).restore_raw('final')['mask']
  for i, m in enumerate(summary['members']):
    k0, k1, out = (np.asarray(final[n]['kernel'][i])
                   for n in ('dense_0', 'dense_1', 'output'))
    a, b = k0.any(axis=0), k1.any(axis=0)
    live = k0.sum() + k1[a][:, b].sum() + out[a | b].sum()
    assert m['live_density'] == pytest.approx(live / 15000)
  text = open(os.path.join(summary['run_dir'], 'report.md')).read()
  assert '| target (% of units) | weights remaining (%) | live weights (%) |' \
      in text and 'Live weights: the kept weights on some path' in text


def test_two_four_structure_keeps_two_of_every_four_inputs(tmp_path):
  summary = jobs.run(_smoke(structure='2:4'), str(tmp_path))
  for i, m in enumerate(summary['members']):
    for path, mask in _masks(summary['run_dir']).items():
      k = mask[i]
      groups = k.reshape(k.shape[0] // 4, 4, k.shape[1]).sum(axis=1)
      if m['density_target'] == 0.5:
        assert (groups == 2).all(), path
      else:
        assert groups.max() <= 2 and k.sum() == _kept({path: k}, 0.1)[path]


def test_more_seeds_are_refused_with_the_valid_count(tmp_path):
  jobs.run(_smoke(), str(tmp_path))
  config = _smoke()
  config.num_seeds = 3
  with pytest.raises(ValueError, match='num_seeds=2'):
    jobs.run(config, str(tmp_path))


def test_the_title_says_the_rounds_and_which_control_is_unstructured():
  from ticketjax.methods.pai import job as pai_job  # pylint: disable=g-import-not-at-top
  summary = {'score': 'synflow', 'scope': 'global', 'structure': '2:4',
             'prune_at': 'init', 'model': 'mlp', 'dataset': 'data',
             'steps': 40, 'num_seeds': 1,
             'by_density': [{'branch': 'original'}, {'branch': 'shuffle'}]}
  config = pai_mnist1d.get_config('smoke,score=synflow,structure=2:4')
  title = lambda: pai_job.title(summary,
                                pai_job.pai_config(config).num_rounds)
  assert title() == (
      'Pruning by synflow at init in 100 rounds (global, 2:4; the shuffle '
      'control unstructured), mlp on data, 40 steps, 1 seed')
  config.pai.rounds = 1
  summary.update(structure='unstructured', num_seeds=2)
  assert title() == (
      'Pruning by synflow at init (global), mlp on data, 40 steps, 2 seeds')
