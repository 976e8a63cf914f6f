"""The cross-run report reads finished runs and writes tables and plots."""
import os
import shutil

import jax
import numpy as np
import pytest

from configs import cs_mnist1d, dense_mnist1d, imp_mlp_mnist1d
from ticketjax.core import masks
from ticketjax.methods.cs import report as cs_report
from ticketjax.reports import cross_run
from ticketjax.reports import plots
from ticketjax.reports import run_folders
from ticketjax.run import jobs
from ticketjax.run import store as checkpoint


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp('runs')
  for config in (dense_mnist1d.get_config('smoke'),
                 imp_mlp_mnist1d.get_config('smoke,levels=1')):
    config.progress = False
    jobs.run(config, str(root))
  return root


def test_imp_and_cs_tickets_of_a_density_are_compared(workdir, tmp_path):
  # CS's lambda 1e-5 keeps 18%: an IMP level at 20% is near it (a row),
  # the 80% one of the other IMP run is not (a line that says so)
  root = tmp_path / 'runs'
  shutil.copytree(workdir, root)
  imp = imp_mlp_mnist1d.get_config('smoke,levels=1,controls=none')
  imp.imp.rates.dense = imp.imp.rates.output = 0.8  # level 1 at 20%
  for config in (imp, cs_mnist1d.get_config('smoke')):
    config.progress = False
    jobs.run(config, str(root))
  runs = run_folders.find_runs([str(root)])
  run_folders.name_runs(runs)
  text = cross_run.write([str(root)], str(tmp_path / 'report'))
  (cs,) = [r for r in runs if r['job'] == 'cs']
  (near,) = [r for r in runs if r['job'] == 'imp' and r['levels'][1][
      'ticket']['density'] < 0.5]
  (far,) = [r for r in runs if r['job'] == 'imp' and r is not near]
  (row,) = [line for line in text.splitlines()
            if f"{run_folders.name(near)} level 1 (same seed)" in line]
  assert 'lambda 1e-05 vs' in row
  cs_mask = checkpoint.Checkpoints(cs['run_dir']).restore_raw('ticket')[
      'mask']
  imp_mask = checkpoint.Checkpoints(near['run_dir']).restore_raw(
      'level_001')['ticket']['mask']
  take = lambda tree, i: jax.tree.map(lambda v: np.asarray(v[i], bool), tree)
  want = np.mean([float(masks.jaccard(take(cs_mask, s), take(imp_mask, s)))
                  for s in range(2)])  # lambda 1e-5 is members 0 and 1
  assert row.split('|')[3].strip() == f'{want:.3f}'
  # runs trained for other lengths say so beside the pair
  config = run_folders.config(near)
  near['_config'] = dict(config, train=dict(config['train'], steps=1500))
  assert any(f"{run_folders.name(near)} level 1 (same seed; train.steps 40 vs "
             "1500)" in r for r in cs_report.cross_run_section(runs, ''))
  assert (f"{run_folders.name(cs)} vs {run_folders.name(far)}: no IMP level "
          "within 15% of a lambda's density") in text
  # lambda 1e-3 empties a layer of both tickets (CS's own table says so)
  (collapsed,) = [line for line in text.splitlines()
                  if line.startswith(f'| {run_folders.name(cs)} ')
                  and 'an empty layer' in line]
  assert collapsed.endswith('(an empty layer: 2/2) | 2 |')


def test_an_unfinished_run_is_left_out_and_named(workdir, tmp_path):
  """A run killed mid-search has a mid-run summary.json but no sealed
  outputs (`records/outputs.json` is `{}`): the report leaves it out."""
  root = tmp_path / 'runs'
  shutil.copytree(workdir, root)
  (imp_dir,) = root.glob('imp-*')
  (imp_dir / 'records' / 'outputs.json').write_text('{}')
  text = cross_run.write([str(root)], str(tmp_path / 'report'))
  assert [r['job'] for r in run_folders.find_runs([str(root)])] == ['dense']
  assert (f'Left out, not finished (still running, or stopped: rerun it to '
          f'finish): {imp_dir.name}') in text
  assert f'| {imp_dir.name} |' not in text
  with pytest.raises(ValueError, match='no finished runs'):
    run_folders.find_runs([str(imp_dir)])


def test_report_across_runs(workdir, tmp_path):
  text = cross_run.write([str(workdir)], str(tmp_path))
  assert os.path.exists(tmp_path / 'accuracy.png')
  assert not os.path.exists(tmp_path / 'lmc.png')  # no LMC run here
  (imp_run,) = [r for r in run_folders.find_runs([str(workdir)])
                if r['job'] == 'imp']
  for branch in ('ticket', 'reinit', 'shuffle', 'random'):
    assert f' {branch} | mnist1d_mlp |' in text
  assert ' dense | mnist1d_mlp | 100.00 |' in text
  # the seed-vs-seed overlap of level 1 is the Jaccard of the saved masks
  mask_S = checkpoint.Checkpoints(imp_run['run_dir']).restore_raw(
      'level_001')['ticket']['mask']
  want = float(masks.jaccard(
      jax.tree.map(lambda v: np.asarray(v[0], bool), mask_S),
      jax.tree.map(lambda v: np.asarray(v[1], bool), mask_S)))
  (row,) = [line for line in text.splitlines()
            if 'level 1: seed vs seed' in line]
  assert row.split('|')[3].strip() == f'{want:.3f}'
  # and its chance level: random masks of the same per-layer counts
  kernels = [v for p, v in zip(masks.leaf_paths(mask_S),
                                jax.tree.leaves(mask_S))
             if p.endswith('kernel')]  # (biases: all kept, not counted)
  kept = lambda i: [np.asarray(v[i]).sum() for v in kernels]
  sizes = [v[0].size for v in kernels]
  both = sum(a * b / n for a, b, n in zip(kept(0), kept(1), sizes))
  chance = both / (sum(kept(0)) + sum(kept(1)) - both)
  assert row.split('|')[4].strip() == f'{chance:.3f}'
  assert 'dense_0/kernel 80.0' in text  # per-layer density of level 1
  # each run described by its own report's title
  assert ('| IMP mnist1d_mlp on mnist1d: layerwise_magnitude pruning at rates'
          ' dense 0.2 / output 0.1, rewound to init, 2 seeds | 40 | 2 |') in text


def test_runs_of_one_kind_say_where_they_differ():
  def run(name, **imp):
    config = {'job': 'imp', 'seed': 0, 'train': {'steps': 40},
              'imp': {'rewind': 'init', 'levels': 2, **imp}}
    return {'job': 'imp', 'model': 'm', 'run_dir': name, '_config': config}
  runs = [run('a'), run('b', rewind='step', rewind_step=13), run('c'),
          run('d', levels=5, structure='unstructured'),
          dict(run('e'), model='other')]
  # (a structure given at its default is the same as none given)
  assert run_folders.differences(runs) == {
      'a': '', 'b': 'imp.rewind=step, imp.rewind_step=13', 'c': '',
      'd': 'imp.levels=5', 'e': ''}
  # without a majority value, the field is listed for every run
  assert run_folders.differences([run('a', rates=0.2), run('b', rates=0.4)]) == {
      'a': 'imp.rates=0.2', 'b': 'imp.rates=0.4'}
  # a run without a grid among grid runs: 'none', not '[]'; a language
  # model's tokenizer left out is characters, not '-'
  grids = [dict(run(n), _config={**run(n)['_config'], 'grid': {
      'learning_rate': lr}, 'data': {'tokenizer': tok} if tok else {}})
           for n, lr, tok in (('a', [0.1, 0.2], 'bpe.json'),
                              ('b', [0.1, 0.2], 'bpe.json'), ('c', [], ''))]
  assert run_folders.differences(grids)['c'] == (
      'data.tokenizer=char, grid.learning_rate=none')


def test_edge_popup_draws_its_dense_network_as_a_reference_line():
  from ticketjax.methods.edgepopup import report  # pylint: disable=g-import-not-at-top
  members = [{'method': 'edgepopup', 'k': 0.5, 'density': 0.5},
             {'method': 'dense', 'density': 1.0}]
  assert {s['label']: s['reference'] for s in report.series(
      {'members': members})} == {'Edge-Popup': False, 'dense-trained': True}


def test_a_run_given_twice_counts_once_and_no_report_goes_into_a_run(
    workdir, tmp_path):
  (imp_dir,) = workdir.glob('imp-*')
  once = cross_run.write([str(workdir)], str(tmp_path / 'once'))
  assert cross_run.write([str(workdir), str(imp_dir), f'{workdir}/'],
                         str(tmp_path / 'twice')) == once
  before = (imp_dir / 'report.md').read_bytes()
  for out in (imp_dir, imp_dir / 'report'):
    with pytest.raises(ValueError, match='the run folder .* would be '
                       'overwritten'):
      cross_run.write([str(workdir)], str(out))
  assert (imp_dir / 'report.md').read_bytes() == before
  assert not (imp_dir / 'report').exists()


def test_runs_of_other_lengths_are_named(workdir):
  runs = run_folders.find_runs([str(workdir)])  # dense 60 steps, IMP 40
  text = cross_run.write([str(workdir)], str(workdir.parent / 'lengths'))
  assert ('The runs drawn below trained for different numbers of steps, so '
          'their points are not one budget: train.steps 40: imp mnist1d_mlp'
          '; train.steps 60: dense mnist1d_mlp.') in text
  assert {run_folders.steps(r) for r in runs} == {'40', '60'}


def test_bad_paths_fail_clearly(tmp_path):
  with pytest.raises(ValueError, match='no such workdir'):
    cross_run.write([str(tmp_path / 'missing')], str(tmp_path / 'o'))
  with pytest.raises(ValueError, match='no finished runs'):
    cross_run.write([str(tmp_path)], str(tmp_path / 'o'))


def test_only_keeps_the_series_it_matches(workdir, tmp_path):
  text = cross_run.write([str(workdir)], str(tmp_path), only=r'ticket$')
  assert ' ticket | mnist1d_mlp |' in text
  for branch in ('reinit', 'shuffle', 'random'):
    assert f' {branch} | mnist1d_mlp |' not in text
  with pytest.raises(ValueError, match='matches no series; the labels'):
    cross_run.write([str(workdir)], str(tmp_path / 'o'), only='nothing')
  with pytest.raises(ValueError, match='not a regular expression'):
    cross_run.write([str(workdir)], str(tmp_path / 'o'), only='(')
  assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('points, ticks', [
    # a few densities (PaI, DST, Early-Bird): those, and 100
    ([50, 20, 10, 5, 2], [100, 50, 20, 10, 5, 2]),
    ([20, 20, 10, 5], [100, 20, 10, 5]),
    ([51.2, 50, 10], [100, 51.2, 10]),  # 50 within 15% of 51.2: one tick
    # over three decades, labels 100 / 80.7 would run together; 70 and
    # 18.3 next to 30 still part
    ([80.7, 70, 5, 0.06], [100, 70, 5, 0.06]),
    ([70, 30, 18.3, 0.06], [100, 70, 30, 18.3, 0.06]),
    # many (IMP's 20% levels down to 6.9%): 7 of them, the sparsest too
    ([100 * 0.8 ** i for i in range(13)],
     [100, 64, 40.96, 26.21, 16.78, 10.74, 6.872]),
    ([100 * 0.8 ** i for i in range(12)],  # (8.6% rejoins the ticks)
     [100, 64, 40.96, 26.21, 16.78, 8.59]),
])
def test_density_axis_ticks_mark_the_plotted_densities(points, ticks):
  plt = plots.pyplot()
  fig, ax = plt.subplots()
  plots.density_axis(ax, min(points), points)
  np.testing.assert_allclose(ax.get_xticks(), ticks, rtol=1e-3)
  plt.close(fig)



def test_points_with_an_empty_layer_are_marked(tmp_path, monkeypatch):
  drawn = {}
  monkeypatch.setattr(plots, 'save', lambda fig, ax, *a, **k: drawn.update(
      labels=ax.get_legend_handles_labels()[1],
      crosses=[l.get_xydata().tolist() for l in ax.get_lines()
               if l.get_marker() == 'x']))
  point = lambda mean, empty: {'mean': mean, 'std': 0.01, 'n': 2,
                               'empty': empty}
  plots.accuracy_vs_density(str(tmp_path / 'a.png'), 't', {
      'cs': [(18.3, point(0.34, 0)), (0.06, point(0.11, 2))]})
  assert 'a member has an empty layer' in drawn['labels']
  assert drawn['crosses'] == [[[0.06, 11.0]]]


def test_perplexity_rows_compare_with_their_runs_dense_level(tmp_path):
  """A control series of an LM IMP run starts below 100%: its change in
  perplexity is against the run's dense level, not its own first point."""
  point = lambda d, m: {'density': d, 'mean': m, 'std': 0.0, 'n': 2,
                        'empty': 0, 'layers': {}}
  series = [{'label': f'imp gpt {b}', 'run': '/w/imp-a', 'model': 'gpt',
             'dataset': 'text', 'metric': 'perplexity', 'reference': False,
             'points': pts}
            for b, pts in (('ticket', [point(1.0, 10.0), point(0.8, 11.0)]),
                           ('reinit', [point(0.8, 12.0)]))]
  text = '\n'.join(cross_run._series_section(series, 'perplexity',
                                             str(tmp_path)))
  assert '| imp gpt reinit | gpt | 80.00 | 12.00 ± 0.00 | +20.0 | 2 |' in text
  assert '| imp gpt ticket | gpt | 80.00 | 11.00 ± 0.00 | +10.0 | 2 |' in text


def test_a_method_adds_its_own_section(tmp_path, monkeypatch):
  """A plug-in's `cross_run_section` gets every finished run, named, and
  its parts land in the report: no shared file names the method."""
  import sys  # pylint: disable=g-import-not-at-top
  import types  # pylint: disable=g-import-not-at-top
  from ticketjax.methods import registry  # pylint: disable=g-import-not-at-top
  from ticketjax.run import records  # pylint: disable=g-import-not-at-top
  plugin = types.ModuleType('fake_method')
  plugin.series = lambda summary: []
  plugin.cross_run_section = lambda runs, out_dir: [
      '\n## Fake\n', ', '.join(run_folders.name(r) for r in runs)]
  monkeypatch.setitem(sys.modules, 'fake_method', plugin)
  monkeypatch.setitem(registry.METHODS, 'fake', 'fake_method')
  for name in ('fake-a', 'fake-b'):
    (tmp_path / 'runs' / name).mkdir(parents=True)
    records.write_json(str(tmp_path / 'runs' / name / 'summary.json'),
                       {'job': 'fake', 'model': 'm', 'num_seeds': 1})
  text = cross_run.write([str(tmp_path / 'runs')], str(tmp_path / 'out'))
  assert '## Fake\n\nfake m, fake m #2\n' in text


def test_a_perplexity_plot_with_no_finite_point_still_draws(tmp_path):
  # (one diverged one-shot series kept by --only: exp of an inf loss)
  point = {'density': 0.5, 'mean': float('inf'), 'std': 0.0, 'n': 1,
           'empty': 0}
  cross_run.plot_accuracy([{'label': 'x', 'dataset': 'd', 'points': [point]}],
                          str(tmp_path / 'p.png'), metric='perplexity')
  assert (tmp_path / 'p.png').stat().st_size > 0


@pytest.mark.parametrize('n, note', [(1, 'one seed per point: no band'),
                                     (2, plots.BAND)])
def test_the_title_says_what_the_band_is(tmp_path, monkeypatch, n, note):
  said = {}
  monkeypatch.setattr(plots, 'save', lambda *a, **k: said.update(k))
  point = {'mean': 0.5, 'std': 0.01, 'n': n, 'empty': 0}
  plots.accuracy_vs_density(str(tmp_path / 'a.png'), 't',
                            {'x': [(50.0, point)]})
  assert said['note'] == note
