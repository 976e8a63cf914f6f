"""One report across finished runs (`python -m launch.report`; one still
running or stopped is left out, and named).

Reads the `summary.json` of every run folder under the given workdirs (or
the folders themselves) and writes, in `out_dir`:

* `accuracy.png`: final test accuracy against percent of weights remaining,
  one line per (run, method) with a band of ± one seed std: IMP tickets and
  each control branch, CS (one point per lambda), Edge-Popup (one point per
  k), dense networks as horizontal lines (`report.md` says when the runs
  drawn trained for different `train.steps`);
* `perplexity.png`: the same for language-model runs (summary `metric`
  'perplexity'), final test perplexity, exp of each member's final mean
  token loss, and its increase over the densest point of the same run
  (IMP's dense level, for its tickets and controls alike);
* `report.md`: the runs (`run_folders`: each by its own report's title,
  its `train.steps` and the config fields in which it differs from most
  runs of its job and model), the accuracy table behind the plot (both
  restricted to the series an `only` pattern matches, when given; a point
  whose members lost a whole layer says how many), per-layer densities of
  every point, then each method's own sections (its `cross_run_section`,
  `methods/registry.py`, in registry order): IMP's mask overlap between
  seeds, CS's against IMP tickets, LMC's error barriers (`lmc.png`).
Pure reading: no run folder is modified.
"""
import collections
import os
import re

import numpy as np

from ticketjax.core import stats
from ticketjax.methods import registry
from ticketjax.reports import plots as plots_lib
from ticketjax.reports import run_folders
from ticketjax.run import records as records_lib
from ticketjax.run import workdir as workdir_lib


def _stats(members, key):
  values = [m[key] for m in members]
  return float(np.mean(values)), float(np.std(values)), len(values)


def _metric(run) -> str:
  return 'perplexity' if run.get('metric') == 'perplexity' else 'accuracy'


def accuracy_series(run) -> list[dict]:
  """[{'label', 'model', 'metric', 'points': [{density, mean, std, n,
  layers}]}]: test accuracy, or test perplexity for a language model.

  The method's `series` (from the registry) groups its members into
  points; each point is aggregated here the same way for every method. A
  group marked 'reference' (a dense network) is drawn as a horizontal line.
  """
  series = []
  for group in registry.get(run['job']).series(run):  # the method's points
    out = []
    for _, ms in sorted(group['points'].items()):
      density = float(np.mean([m['density'] for m in ms]))
      if _metric(run) == 'perplexity':
        ms = [dict(m, final_test_perplexity=float(  # inf if diverged
            np.exp(np.float64(m['final_test_loss'])))) for m in ms]
      mean, std, n = _stats(ms, f'final_test_{_metric(run)}')
      layers = collections.defaultdict(list)
      for m in ms:
        for name, d in m.get('density_per_layer', {}).items():
          layers[name].append(d)
      empty = sum(1 for m in ms  # members with a layer at density 0
                  if 0.0 in m.get('density_per_layer', {}).values())
      out.append({'density': density, 'mean': mean, 'std': std, 'n': n,
                  'empty': empty,
                  'layers': {k: float(np.mean(v)) for k, v in layers.items()}})
    series.append({'label': f"{run_folders.name(run)} {group['label']}",
                   'run': run['run_dir'], 'model': run['model'],
                   'dataset': run.get('dataset', ''),
                   'metric': _metric(run),
                   'reference': bool(group.get('reference')),
                   'points': sorted(out, key=lambda p: -p['density'])})
  return series


def plot_accuracy(series, path, dense=(), metric='accuracy') -> None:
  """Test accuracy (or perplexity) against weights remaining (log x, 100%
  at the left); each sparse series a line with its ± std band, each dense
  run a dashed horizontal line at its value."""
  data = sorted({s['dataset'] for s in series} | {d['dataset'] for d in dense})
  plots_lib.accuracy_vs_density(
      path, f"Final test {metric} against weights remaining, "
      f"{', '.join(data)}",
      {s['label']: [(100 * p['density'], p) for p in s['points']]
       for s in series},
      dense=[(d['label'], d) for d in dense],
      ylabel='test perplexity' if metric == 'perplexity'
      else 'test accuracy (%)',
      scale=1 if metric == 'perplexity' else 100, figsize=(8, 5),
      log_y=metric == 'perplexity')


def _densest(series) -> dict:
  """{run: its densest point} (IMP: the dense level)."""
  densest = {}
  for s in series:
    p = s['points'][0]  # (points go from dense to sparse)
    if p['density'] > densest.get(s['run'], {'density': -1.0})['density']:
      densest[s['run']] = p
  return densest


def _series_section(series, metric: str, out_dir: str,
                    densest: dict | None = None) -> list[str]:
  """The plot and tables of one metric's series (none: nothing).

  A perplexity's change is against its run's point in `densest` (by
  default the densest of `series`; `write` gives those of every series, so
  that a series kept by `--only` is still against its run's dense one).
  """
  if not series:
    return []
  densest = densest or _densest(series)
  dense = [{'label': s['label'], 'dataset': s['dataset'], **s['points'][0]}
           for s in series if s['reference']]
  records_lib.write_atomic(
      os.path.join(out_dir, f'{metric}.png'), lambda path: plot_accuracy(
          [s for s in series if not s['reference']], path, dense, metric))
  rows, layer_rows = [], []
  for s in series:
    first = densest[s['run']]
    for p in s['points']:
      if metric == 'perplexity':  # and its increase over the densest point
        rows.append([s['label'], s['model'], f"{100 * p['density']:.2f}",
                     stats.format_mean_std(p, scale=1, digits=2),
                     f"{100 * (p['mean'] / first['mean'] - 1):+.1f}", p['n']])
      else:
        rows.append([s['label'], s['model'], f"{100 * p['density']:.2f}",
                     stats.format_mean_std(p, digits=2)
                     + (f" (an empty layer: {p['empty']}/{p['n']})"
                        if p.get('empty') else ''), p['n']])
      if p['layers']:
        layer_rows.append([s['label'], f"{100 * p['density']:.2f}",
                           ', '.join(f'{k} {100 * v:.1f}' for k, v in
                                     sorted(p['layers'].items()))])
  header = ['method', 'model', 'weights remaining (%)']
  header += (['test perplexity', "vs the run's densest point (%)"]
             if metric == 'perplexity' else ['test acc (%)'])
  return [f'\n## {metric.capitalize()} against weights remaining\n',
          f'Final test {metric}: mean ± std over the seeds (ddof 0), whose '
          'number is the last column.\n',
          stats.markdown_table(header + ['seeds'], rows),
          f'\n![{metric}]({metric}.png)\n'] + ([
              f'\n## Per-layer density (%), {metric} runs\n'
              if metric == 'perplexity' else '\n## Per-layer density (%)\n',
              stats.markdown_table(['method', 'total (%)', 'layers'],
                                   layer_rows)] if layer_rows else [])


def write(paths, out_dir: str, only: str = '') -> str:
  """Writes the cross-run report into `out_dir`; returns its markdown.

  `only`, a regular expression, keeps the accuracy series whose label
  ('<job> <model>[ #n] <method's label>', as the table shows them) it
  matches (`re.search`) in the plot and the accuracy and per-layer tables
  (the runs table and the methods' sections cover every run); ValueError
  when it is not one or matches none.
  """
  try:
    pattern = re.compile(only) if only else None
  except re.error as e:
    raise ValueError(f'--only {only!r} is not a regular expression: '
                     f'{e}') from None
  left_out = []
  runs = run_folders.find_runs(paths, left_out)  # (reads only)
  workdir_lib.check_folder(out_dir, 'report folder (--out)')
  run_folders.check_out(out_dir)
  run_folders.name_runs(runs)
  series = [s for r in runs for s in accuracy_series(r)]
  densest = _densest(series)
  if pattern:
    kept = [s for s in series if pattern.search(s['label'])]
    if not kept:
      raise ValueError(f'--only {only!r} matches no series; the labels are '
                       f"{sorted(s['label'] for s in series)}")
    series = kept
  os.makedirs(out_dir, exist_ok=True)
  differ = run_folders.differences(runs)
  parts = ['# ticketjax runs\n', stats.markdown_table(
      ['name', 'run', 'what (its report\'s title)', 'train.steps', 'seeds',
       'differs from most runs of its job and model in'],
      [[run_folders.name(r), os.path.basename(r['run_dir']),
        run_folders.title(r), run_folders.steps(r),
        r.get('num_seeds', ''), differ[r['run_dir']]] for r in runs])]
  if left_out:
    parts.append('\nLeft out, not finished (still running, or stopped: '
                 'rerun it to finish): '
                 + ', '.join(os.path.basename(d) for d in left_out) + '\n')
  budgets = collections.defaultdict(list)  # train.steps -> runs drawn
  for r in runs:
    if any(s['run'] == r['run_dir'] for s in series):
      budgets[run_folders.steps(r)].append(run_folders.name(r))
  budgets.pop('none', None)  # (one-shot runs train nothing)
  if len(budgets) > 1:
    parts.append('\nThe runs drawn below trained for different numbers of '
                 'steps, so their points are not one budget: ' + '; '.join(
                     f"train.steps {k}: {', '.join(v)}"
                     for k, v in sorted(budgets.items(), key=lambda kv: (
                         len(kv[0]), kv[0]))) + '.\n')
  for metric in ('accuracy', 'perplexity'):
    parts += _series_section([s for s in series if s['metric'] == metric],
                             metric, out_dir, densest)
  for job in [j for j in registry.METHODS if j in {r['job'] for r in runs}]:
    section = getattr(registry.get(job), 'cross_run_section', None)
    if section is not None:  # the method's own tables and figures
      parts += section(runs, out_dir)
  text = '\n'.join(parts) + '\n'
  records_lib.write_text(os.path.join(out_dir, 'report.md'), text)
  return text
