"""One report across finished runs (`python -m launch.report`; one still
running or stopped is left out, and named).

Reads the `summary.json` of every run folder under the given workdirs (or
the folders themselves) and writes, in `out_dir`:

* `accuracy.png`: final test accuracy against percent of weights remaining,
  one line per (run, method) with a band of ± one seed std: IMP tickets and
  each control branch, CS (one point per lambda), Edge-Popup (one point per
  k), dense runs as points at 100%;
* `perplexity.png`: the same for language-model runs (summary `metric`
  'perplexity'), final test perplexity, exp of each member's final mean
  token loss, and its increase over the densest point of the same run
  (IMP's dense level, for its tickets and controls alike);
* `lmc.png`: error barrier against rewind step for every LMC run/network;
* `report.md`: the runs (each by its own report's title, its
  `train.steps` and the config fields in which it differs from most runs
  of its job and model), the accuracy table behind the plot (both
  restricted to the series an `only` pattern matches, when given; a point
  whose members lost a whole layer says how many),
  per-layer densities of every point, and mask overlap (Jaccard over
  prunable kernels) between the seeds of each IMP level (of each grid
  point) and between IMP and CS tickets of the same model and seed at the
  nearest density (within 15%; a pair with none says so), read from the
  runs' checkpoints (grid runs take no part in IMP vs CS).
Pure reading: no run folder is modified.
"""
import collections
import glob
import os
import re

import jax
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.methods import registry
from ticketjax.methods.lmc import report as lmc_report
from ticketjax.reports import plots as plots_lib
from ticketjax.run import records as records_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib


def unfinished(run_dir: str) -> bool:
  """Whether the run in `run_dir` has not finished (still running, or
  killed): its `summary.json` is a mid-run one, and its
  `records/outputs.json` (`lifecycle.SUMS`) is `{}` until the run seals its
  final outputs."""
  path = os.path.join(run_dir, 'records', 'outputs.json')
  try:
    return os.path.exists(path) and not records_lib.read_json(path)
  except ValueError:  # damaged: the run's next launch recomputes its outputs
    return False


def find_runs(paths, left_out: list | None = None) -> list[dict]:
  """Summaries of the finished run folders in (or at) `paths`, sorted by
  folder; the unfinished ones' folders are appended to `left_out`."""
  runs = []
  for path in paths:
    if os.path.isfile(path):
      raise ValueError(f'workdir {path} is a file; give a folder of run '
                       'folders, or a run folder')
    if not os.path.isdir(path):
      raise ValueError(f'no such workdir: {path!r}')
    files = sorted(glob.glob(os.path.join(path, '*', 'summary.json')))
    if os.path.exists(os.path.join(path, 'summary.json')):
      files.insert(0, os.path.join(path, 'summary.json'))
    for f in files:
      run_dir = os.path.dirname(os.path.abspath(f))
      if unfinished(run_dir):
        if left_out is not None:
          left_out.append(run_dir)
        continue
      summary = records_lib.read_json(f)
      summary['run_dir'] = run_dir
      runs.append(summary)
  if not runs:
    raise ValueError(f'no finished runs (*/summary.json, sealed in '
                     f'records/outputs.json) under {paths}')
  return runs


def _name(run) -> str:
  """'imp mnist1d_mlp', and ' #2', ' #3', ... for a later run of the same
  job and model (`name_runs` numbers them in folder order)."""
  return run.get('_name') or f"{run['job']} {run.get('model', '')}"


def _config(run) -> dict:
  """The run's config.json ({} without one), read once."""
  if '_config' not in run:
    path = os.path.join(run['run_dir'], 'config.json')
    run['_config'] = (records_lib.read_json(path) if os.path.exists(path)
                      else {})
  return run['_config']


def _steps(run) -> str:
  """The run's `train.steps` (per level or stage), from its config.json;
  'none' for a method that trains nothing from it (`BUILDS = False`)."""
  if not getattr(registry.get(run['job']), 'BUILDS', True):
    return 'none'
  return str((_config(run).get('train') or {}).get('steps', ''))


def _flat(tree, prefix='') -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def differences(runs) -> dict:
  """{run_dir: 'imp.rewind=step, imp.rewind_step=13'}: the config fields
  in which a run differs from most runs of its job and model, with its
  values; a field without a majority value is listed for every run. From
  config.json, without the fields no run folder's hash holds (num_seeds,
  data_dir, ...; `workdir.NON_SEMANTIC`), a field left out at its default
  taken at it, '-' for one a run lacks; '' for a run alone of its kind or
  like most."""
  groups = collections.defaultdict(list)
  for run in runs:
    groups[run['job'], _model_label(run)].append(run)
  out = {}
  for group in groups.values():
    flat = [{**_flat(workdir_lib.DROPPED_AT_DEFAULT),
             **_flat(workdir_lib.semantic_config(_config(r)))}
            for r in group]
    keys = sorted({k for f in flat for k in f})
    value = lambda f, k: repr(f.get(k, '-'))
    common = {}
    for k in keys:
      top, count = collections.Counter(value(f, k) for f in flat
                                       ).most_common(1)[0]
      common[k] = top if 2 * count > len(flat) else None
    for run, f in zip(group, flat):
      shown = {**f, **_flat(_config(run))}  # as written (a grid's ints)
      out[run['run_dir']] = ', '.join(
          f'{k}={_shown(k, shown)}' for k in keys
          if value(f, k) != common[k])
  return out


# what a field a config leaves out means (its configs add it only when set)
_ABSENT = {'data.tokenizer': 'char'}


def _shown(key: str, config: dict) -> str:
  """A field's value in the runs table: 'none' for an empty list (a grid
  name without values), the meaning of a field left out (`_ABSENT`), else
  '-' for one the run's config lacks."""
  if key not in config:
    return _ABSENT.get(key, '-')
  value = config[key]
  return 'none' if isinstance(value, (list, tuple)) and not value else str(
      value)


def _title(run) -> str:
  """What the run is, in its own report's title (method, model, data,
  rule, rates, rewind mode, seeds), from its summary and config.json ('',
  a run folder without one, which no run of ticketjax leaves)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  if not _config(run):
    return ''
  config = ml_collections.ConfigDict(_config(run))
  return registry.get(run['job']).report(run, [], config).title


def _model_label(run) -> str:
  """The model's name; for 'pretrained', with its source's file or folder
  name, e.g. 'pretrained(finetuned)' (from the run's config.json)."""
  model = run.get('model', '')
  if model != 'pretrained' or not _config(run):
    return model
  kwargs = _config(run).get('model', {}).get('kwargs') or {}
  source = str(kwargs.get('source', 'smollm2')).rstrip('/')
  return f'{model}({os.path.basename(source)})'


def name_runs(runs) -> None:
  """Gives each run a readable name: job and model (a pretrained model's
  source), numbered when several runs share them (no hash fragments)."""
  seen = collections.Counter()
  for run in runs:
    base = f"{run['job']} {_model_label(run)}".strip()
    seen[base] += 1
    run['_name'] = base if seen[base] == 1 else f'{base} #{seen[base]}'


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
    series.append({'label': f"{_name(run)} {group['label']}",
                   'run': run['run_dir'], 'model': run['model'],
                   'dataset': run.get('dataset', ''),
                   'metric': _metric(run),
                   'reference': bool(group.get('reference')),
                   'points': sorted(out, key=lambda p: -p['density'])})
  return series


def _imp_masks(run, level):
  raw = store.Checkpoints(run['run_dir']).restore_raw(f'level_{level:03d}')
  return raw['ticket']['mask']


def _take(tree, i):
  return jax.tree.map(lambda v: np.asarray(v)[i], tree)


def _jaccard(a, b) -> float:
  return float(masks_lib.jaccard(jax.tree.map(np.bool_, a),
                                 jax.tree.map(np.bool_, b)))


def overlaps(runs) -> list[list]:
  """Rows: (what, density %, mean Jaccard, pairs) from the checkpoints."""
  rows = []
  imps = [r for r in runs if r['job'] == 'imp']
  for run in imps:  # a grid run: the seeds of each point, lineage g*S + s
    points = run.get('points') or [{'label': '', 'levels': run['levels']}]
    num_seeds = run['num_seeds']
    for g, point in enumerate(points):
      for entry in point['levels'][1:]:
        level = entry['level']
        mask_S = _imp_masks(run, level)
        seeds = range(g * num_seeds, (g + 1) * num_seeds)
        vals = [_jaccard(_take(mask_S, a), _take(mask_S, b))
                for a in seeds for b in seeds if a < b]
        if vals:
          where = ' '.join(filter(None, (_name(run), point['label'])))
          rows.append([f'{where} level {level}: seed vs seed',
                       f"{100 * entry['ticket']['density']:.2f}",
                       f'{np.mean(vals):.3f}', len(vals)])
  imps = [r for r in imps if 'points' not in r]  # one setting per seed
  for cs in [r for r in runs if r['job'] == 'cs']:
    raw = store.Checkpoints(cs['run_dir']).restore_raw('ticket')
    num_seeds = cs['num_seeds']
    for imp in [r for r in imps if r['model'] == cs['model']]:
      near = 0
      for li, lam in enumerate(cs['lambdas']):
        mine = [m for m in cs['members'] if m['lambda'] == lam]
        density = float(np.mean([m['density'] for m in mine]))
        entry = min(imp['levels'], key=lambda e: abs(
            e['ticket']['density'] - density))
        if abs(entry['ticket']['density'] - density) > 0.15 * density:
          continue  # no IMP level near this density
        near += 1
        imp_S = _imp_masks(imp, entry['level'])
        seeds = min(num_seeds, imp['num_seeds'])
        vals = [_jaccard(_take(raw['mask'], li * num_seeds + s),
                         _take(imp_S, s)) for s in range(seeds)]
        steps = (_steps(cs), _steps(imp))  # per round and per level
        rows.append([f"{_name(cs)} lambda {lam:g} vs {_name(imp)} level "
                     f"{entry['level']} (same seed"
                     + (f'; train.steps {steps[0]} vs {steps[1]}'
                        if steps[0] != steps[1] else '') + ')',
                     f"{100 * density:.2f} / "
                     f"{100 * entry['ticket']['density']:.2f}",
                     f'{np.mean(vals):.3f}', len(vals)])
      if not near:  # say why the pair has no row
        rows.append([f'{_name(cs)} vs {_name(imp)}: no IMP level within 15% '
                     "of a lambda's density", '', '', 0])
  return rows


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
      scale=1 if metric == 'perplexity' else 100, figsize=(8, 5))


def plot_lmc(runs, path) -> None:
  plt = plots_lib.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  steps = []
  for run in runs:
    steps += lmc_report.draw_barriers(ax, run, f'{_name(run)} ')
  lmc_report.finish_barrier_axes(ax, steps)
  ax.set_title(plots_lib.title('Error barrier against rewind step, every '
                               'LMC run'), fontsize='small')
  plots_lib.write(fig, path)


def _series_section(series, metric: str, out_dir: str) -> list[str]:
  """The plot and tables of one metric's series (none: nothing)."""
  if not series:
    return []
  dense = [{'label': s['label'], 'dataset': s['dataset'], **s['points'][0]}
           for s in series if s['reference']]
  records_lib.write_atomic(
      os.path.join(out_dir, f'{metric}.png'), lambda path: plot_accuracy(
          [s for s in series if not s['reference']], path, dense, metric))
  rows, layer_rows = [], []
  densest = {}  # per run: its densest point (IMP: the dense level)
  for s in series:
    p = s['points'][0]
    if p['density'] > densest.get(s['run'], {'density': -1.0})['density']:
      densest[s['run']] = p
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
          f'\n![{metric}]({metric}.png)\n',
          f'\n## Per-layer density (%), {metric} runs\n'
          if metric == 'perplexity' else '\n## Per-layer density (%)\n',
          stats.markdown_table(['method', 'total (%)', 'layers'], layer_rows)]


def write(paths, out_dir: str, only: str = '') -> str:
  """Writes the cross-run report into `out_dir`; returns its markdown.

  `only`, a regular expression, keeps the accuracy series whose label
  ('<job> <model>[ #n] <method's label>', as the table shows them) it
  matches (`re.search`); ValueError when it is not one or matches none.
  """
  try:
    pattern = re.compile(only) if only else None
  except re.error as e:
    raise ValueError(f'--only {only!r} is not a regular expression: '
                     f'{e}') from None
  left_out = []
  runs = find_runs(paths, left_out)  # (reads only)
  workdir_lib.check_folder(out_dir, 'report folder (--out)')
  name_runs(runs)
  series = [s for r in runs for s in accuracy_series(r)]
  if pattern:
    kept = [s for s in series if pattern.search(s['label'])]
    if not kept:
      raise ValueError(f'--only {only!r} matches no series; the labels are '
                       f"{sorted(s['label'] for s in series)}")
    series = kept
  os.makedirs(out_dir, exist_ok=True)
  differ = differences(runs)
  parts = ['# ticketjax runs\n', stats.markdown_table(
      ['name', 'run', 'what (its report\'s title)', 'train.steps', 'seeds',
       'differs from most runs of its job and model in'],
      [[_name(r), os.path.basename(r['run_dir']), _title(r), _steps(r),
        r.get('num_seeds', ''), differ[r['run_dir']]] for r in runs])]
  if left_out:
    parts.append('\nLeft out, not finished (still running, or stopped: '
                 'rerun it to finish): '
                 + ', '.join(os.path.basename(d) for d in left_out) + '\n')
  for metric in ('accuracy', 'perplexity'):
    parts += _series_section([s for s in series if s['metric'] == metric],
                             metric, out_dir)
  overlap_rows = overlaps(runs)
  if overlap_rows:
    parts += ['\n## Mask overlap (Jaccard over prunable kernels)\n',
              'IMP vs CS: IMP runs of one setting (a grid run takes no '
              'part), at the level nearest each lambda\'s density.\n',
              stats.markdown_table(
                  ['masks', 'weights remaining (%)', 'Jaccard', 'pairs'],
                  overlap_rows)]
  lmc_runs = [r for r in runs if r['job'] == 'lmc']
  if lmc_runs:
    records_lib.write_atomic(os.path.join(out_dir, 'lmc.png'),
                             lambda path: plot_lmc(lmc_runs, path))
    rows = [[_name(r), e['network'], e['split'], e['rewind_step'],
             stats.format_mean_std(e['barrier'], digits=2)]
            for r in lmc_runs for e in r['steps']]
    parts += ['\n## Instability (error barrier, %)\n',
              stats.markdown_table(
                  ['run', 'network', 'split', 'rewind step', 'barrier (%)'],
                  rows), '\n![lmc](lmc.png)\n']
  text = '\n'.join(parts) + '\n'
  records_lib.write_text(os.path.join(out_dir, 'report.md'), text)
  return text
