"""Tables and plots of a search: accuracy against weights remaining.

`summarize` aggregates per-member level summaries into mean ± std over seeds
per (level, branch), and per grid point for a hyperparameter grid
(`{'points': [{'point', 'label', 'levels'}]}`), leaving diverged members
out of the means and counting them; `table` renders Frankle & Carbin's view
of it (percent of weights remaining, test accuracy of the ticket and each
control, the early-stop iteration; one table per grid point); `report` gives
the title, the table and the run's figures:
  accuracy.png  test accuracy against percent of weights remaining, log x,
                a band of ± one seed std per branch, the dense network as a
                line (for a grid, the ticket of every point); a language
                model's is `perplexity.png`, of test perplexity;
  curves.png    test accuracy and loss against step: the dense level, and
                every branch of the middle and the last level;
  layers.png    each layer's ticket density against level.
Every title names the model, data, rule, rates and rewind mode
(`describe`) and what the band is.
"""
import collections
import math
import os

import numpy as np

from ticketjax.core import grid as grid_lib
from ticketjax.core import stats
from ticketjax.methods.imp import core as imp_core
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle

BRANCH_ORDER = ('ticket', 'finetune', 'reinit', 'shuffle', 'random', 'invert')


def summarize(members: list[dict], grid=None, perplexity: bool = False,
              evals: list[dict] = ()) -> dict:
  """{'levels': [{level, branch -> stats}]} from per-member summaries.

  With a `grid.GridSpec` that has names: {'grid': {name: values},
  'points': [{'point': {name: value}, 'label': str, 'levels': [...]}]}.
  With `perplexity` (a language model) each branch also gets
  'final_test_perplexity', exp of each member's final mean token loss,
  and with a validation split 'early_stop_test_perplexity', the same at
  its early-stopping step (the test loss there, from the evaluation
  records `evals`).
  """
  if perplexity:
    members = _with_early_stop_loss(members, evals,
                                    grid.names if grid is not None else ())
  if grid is not None and grid.names:
    return {'grid': {n: sorted({p[n] for p in grid.points})
                     for n in grid.names},
            'points': [{'point': dict(p), 'label': grid.label(p),
                        **_summarize_levels([
                            m for m in members
                            if all(m[n] == p[n] for n in grid.names)],
                                            perplexity)}
                       for p in grid.points]}
  return _summarize_levels(members, perplexity)


def _with_early_stop_loss(members, evals, names) -> list[dict]:
  """Each member that has an early-stopping step, with its test loss
  there ('early_stop_test_loss'): the evaluation of its level, branch,
  seed and grid point at that step."""
  def who(r):
    return (r['level'], r['branch'], r['seed'], *(r[n] for n in names))
  loss = {(who(r), r['step']): r['test_loss'] for r in evals}
  return [dict(m, early_stop_test_loss=loss[who(m), m['early_stop_step']])
          if 'early_stop_step' in m else m for m in members]


def _summarize_levels(members: list[dict], perplexity: bool = False
                      ) -> dict:
  by_level = collections.defaultdict(lambda: collections.defaultdict(list))
  for rec in members:
    by_level[rec['level']][rec['branch']].append(rec)
  levels = []
  for level in sorted(by_level):
    entry = {'level': level}
    for branch, everyone in by_level[level].items():
      recs = [r for r in everyone if not r.get('diverged')]
      entry[branch] = agg = {
          'density': float(np.mean([r['density'] for r in everyone])),
          'final_test_accuracy': stats.mean_std(
              [r['final_test_accuracy'] for r in recs]),
          'best_test_accuracy': stats.mean_std(
              [r['best_test_accuracy'] for r in recs]),
      }
      if perplexity:
        agg['final_test_perplexity'] = stats.mean_std(
            [math.exp(r['final_test_loss']) for r in recs])
      if recs and all('early_stop_step' in r for r in recs):
        agg['early_stop_step'] = stats.mean_std(
            [r['early_stop_step'] for r in recs])
        agg['early_stop_test_accuracy'] = stats.mean_std(
            [r['early_stop_test_accuracy'] for r in recs])
        if perplexity:
          agg['early_stop_test_perplexity'] = stats.mean_std(
              [math.exp(r['early_stop_test_loss']) for r in recs])
      live = [r['live_density'] for r in recs
              if math.isfinite(r.get('live_density', math.nan))]
      if live:  # channel tickets (`connectivity.live_density`)
        agg['live_density'] = float(np.mean(live))
      diverged = sum(bool(r.get('diverged')) for r in everyone)
      if diverged:  # healthy runs' summaries carry no such key
        agg['diverged'] = diverged
        agg['members'] = len(everyone)
    levels.append(entry)
  return {'levels': levels}


def _branches(summary):
  present = {b for entry in summary['levels'] for b in entry if b != 'level'}
  return [b for b in BRANCH_ORDER if b in present]


def describe(config) -> str:
  """'layerwise_magnitude pruning at rates dense 0.2 / output 0.1,
  rewound to init': the search's rule, rates and rewind mode, from its
  config (a grid's rates or rewind steps: 'the grid's'; from a pretrained
  source: 'rewound to the source weights (<its file or folder name>)');
  'dense training only'
  without pruning levels."""
  imp, grid = config.imp, config.get('grid') or {}
  if not imp.get('levels', 1):
    return 'dense training only (no pruning level)'
  source = (config.get('model') or {}).get('kwargs', {}).get('source')
  rates = imp.get('rates', 0.2)
  values = lambda name: ' / '.join(f'{float(v):g}' for v in grid[name])
  if grid.get('pruning_rate'):
    rates = f"the grid's rates {values('pruning_rate')}"
  elif hasattr(rates, 'items'):
    rates = 'rates ' + ' / '.join(  # no comma: a title wraps at commas
        f'{k} {float(v):g}' for k, v in dict(rates).items()
        if not (k == 'output' and imp.get('structure') == 'channels'))
  else:
    rates = f'rates {float(rates):g}'
  k = imp.get('rewind_step', 0)
  step = (f"the grid's steps {values('rewind_step')}"
          if grid.get('rewind_step') else f'step {k}')
  source = source and os.path.basename(str(source).rstrip('/'))
  rewind = {'init': (f'rewound to the source weights ({source})' if source
                    else 'rewound to init'),
            'step': f'rewound to {step}',
            'lr': f'learning rate rewound to {step}',
            'finetune': f'fine-tuned for train.steps - {k} steps',
            }.get(imp.get('rewind', 'init'), imp.get('rewind'))
  return f"{imp.get('rule', 'layerwise_magnitude')}{_structure(imp)} " \
      f'pruning at {rates}, {rewind}'


def _structure(imp) -> str:
  """' (2:4; the shuffle and random controls unstructured)': a mask
  structure, and what it leaves out (its controls keep only the per-layer
  counts; channels never cut the output layer)."""
  structure = imp.get('structure', 'unstructured')
  if structure == 'unstructured':
    return ''
  notes = ['output layer kept'] if structure == 'channels' else []
  loose = [c for c in ('shuffle', 'random')
           if c in imp.get('controls', imp_core.CONTROLS)]
  if loose:
    notes.append(f"the {' and '.join(loose)} control"
                 f"{'s' if len(loose) > 1 else ''} unstructured")
  return f" ({'; '.join([structure, *notes])})"


def title(summary: dict, described: str = '') -> str:
  """'IMP <model> on <data>: <rule, rates, rewind>, <n> seeds'."""
  grid = ' per grid point' if 'points' in summary else ''
  what = f': {described}' if described else ''
  n = summary.get('num_seeds', '?')
  return (f"IMP {summary.get('model', '')} on {summary.get('dataset', '')}"
          f"{what}, {n} seed{'' if n == 1 else 's'}{grid}")


def table(summary: dict, described: str = '') -> str:
  """Markdown table: one row per level, mean ± std over seeds (percent).

  A grid gets one such table per point, under the point's values. The
  first line says what the search was and what the numbers are.
  """
  head = (title(summary, described) + f' (final-step test {_metric(summary)}'
          ', mean ± std over seeds, ddof 0)')
  levels = [e for p in summary.get('points', [summary]) for e in p['levels']]
  note = (health.LIVE_NOTE if any('live_density' in e['ticket']
                                  for e in levels) else '')
  if 'points' in summary:
    return head + ''.join(
        f"\n\n### {entry['label']}\n\n" + _level_table(entry, summary)
        + _early_stop_table(entry, summary)
        for entry in summary['points']) + note
  return (head + '\n\n' + _level_table(summary) + note
          + _early_stop_table(summary))


def _early_stop_table(levels: dict, summary: dict | None = None) -> str:
  """With a validation split and controls: each branch's early-stopping
  iteration (minimum validation loss) and its test accuracy (a language
  model: perplexity) there, for `levels['levels']` (a grid point's) of
  the search `summary` (default `levels`)."""
  summary = summary or levels
  branches = _branches(levels)
  metric = _metric(summary)
  stopped = [entry for entry in levels['levels']
             if all('early_stop_step' in entry[b]
                    for b in branches if b in entry)]
  if not any(len(entry) > 2 for entry in stopped):  # no control has one
    return ''
  # every level, the dense one (its ticket alone) too: the reference
  rows = [[entry['level'], f"{100 * entry['ticket']['density']:.2f}"]
          + [_stop_cell(entry[b], metric) if b in entry else ''
             for b in branches] for entry in stopped]
  what, short = (('test perplexity', 'ppl') if metric == 'perplexity'
                 else ('test accuracy (%)', 'acc'))
  return ('\n\nEarly-stopping iteration (step of minimum validation loss) '
          f'and the {what} there, mean ± std over seeds, ddof 0\n\n'
          + stats.markdown_table(['level', 'weights remaining (%)']
                                 + [f'{b} step ({short})' for b in branches],
                                 rows))


def _stop_cell(agg: dict, metric: str = 'accuracy') -> str:
  step = agg['early_stop_step']
  if metric != 'perplexity':
    value = stats.format_mean_std(agg['early_stop_test_accuracy'])
  elif 'early_stop_test_perplexity' in agg:
    value = stats.format_mean_std(agg['early_stop_test_perplexity'], scale=1,
                                  digits=2)
  else:  # a summary from before it was computed
    value = 'n/a'
  return (f'{stats.format_mean_std(step, scale=1, digits=0)} ({value})'
          if step['n'] else '')


def _metric(summary: dict) -> str:
  """'perplexity' for a language model's search, else 'accuracy'."""
  return summary.get('metric', 'accuracy')


def _value(agg: dict, metric: str) -> dict:
  return agg['final_test_perplexity' if metric == 'perplexity'
             else 'final_test_accuracy']


def _level_table(levels: dict, summary: dict | None = None) -> str:
  """One row per level of `levels['levels']` (a grid point's) of the
  search `summary` (default `levels`)."""
  branches = _branches(levels)
  metric = _metric(summary or levels)
  live = any('live_density' in e['ticket'] for e in levels['levels'])
  header = ['level', 'weights remaining (%)']
  header += ['ticket live weights (%)'] if live else []
  header += [f'{b} test perplexity' if metric == 'perplexity'
             else f'{b} test acc (%)' for b in branches]
  header += ['ticket early-stop step']
  rows = []
  for entry in levels['levels']:
    ticket = entry['ticket']
    row = [entry['level'], f"{100 * ticket['density']:.2f}"]
    if live:
      row.append(f"{100 * ticket['live_density']:.2f}"
                 if 'live_density' in ticket else '')
    for b in branches:
      row.append(_cell(entry[b], metric) if b in entry else '')
    stop = ticket.get('early_stop_step')
    row.append(stats.format_mean_std(stop, scale=1, digits=0) if stop
               else '')
    rows.append(row)
  return stats.markdown_table(header, rows)


def _cell(agg: dict, metric: str = 'accuracy') -> str:
  """'65.3 ± 1.2' (a perplexity: '5.43 ± 0.02'), with 'diverged k/n'
  when members diverged."""
  if not agg['final_test_accuracy']['n']:
    return f"diverged {agg['diverged']}/{agg['members']}"
  text = (stats.format_mean_std(agg['final_test_perplexity'], scale=1,
                                digits=2) if metric == 'perplexity'
          else stats.format_mean_std(agg['final_test_accuracy']))
  if agg.get('diverged'):
    text += f" (diverged {agg['diverged']}/{agg['members']})"
  return text


def plot(summary: dict, path: str, described: str = '') -> None:
  """Test accuracy vs percent of weights remaining, log x, seed bands: the
  ticket and each control of one search and its dense network, or the
  ticket of every grid point."""
  metric = _metric(summary)
  lines, dense = {}, ()
  if 'points' in summary:
    for entry in summary['points']:
      tickets = [e['ticket'] for e in entry['levels']]
      lines[_health(f"ticket {entry['label']}", tickets)] = [
          (100 * t['density'], _value(t, metric)) for t in tickets]
  else:
    for branch in _branches(summary):
      levels = [e for e in summary['levels'] if branch in e]
      pts = [(100 * e['ticket']['density'], _value(e[branch], metric))
             for e in levels]
      if branch != 'ticket':
        pts = [p for p in pts if p[0] < 100]
      if pts:
        lines[_health(branch, [e[branch] for e in levels])] = pts
    dense = [('dense', _value(summary['levels'][0]['ticket'], metric))]
  plots_lib.accuracy_vs_density(
      path, title(summary, described), lines, dense=dense,
      ylabel=('test perplexity' if metric == 'perplexity'
              else 'test accuracy (%)'),
      scale=1 if metric == 'perplexity' else 100)


def _health(label: str, aggs) -> str:
  """`label`, with '(diverged k/n)' when members of these points diverged
  (the most of any point)."""
  k, n = max((a.get('diverged', 0), a.get('members', 0)) for a in aggs)
  return f'{label} (diverged {k}/{n})' if k else label


def plot_curves(summary: dict, evals: list[dict], path: str,
                described: str = '') -> None:
  """Test accuracy and loss against step: level 0, and each branch of the
  middle and the last level (a grid: the ticket of every point there)."""
  levels = sorted({r['level'] for r in evals})
  shown = sorted({levels[0], levels[len(levels) // 2], levels[-1]})
  groups = collections.defaultdict(list)
  for r in evals:
    if r['level'] in shown and (r['level'] == 0 or 'points' not in summary
                                or r['branch'] == 'ticket'):
      point = ' '.join(f'{k}={r[k]:g}' for k in summary.get('grid', {}))
      name = 'dense' if r['level'] == 0 else r['branch']
      groups[' '.join(filter(None, (f"level {r['level']}", name,
                                    point)))].append(r)
  plots_lib.learning_curves(
      dict(groups), path, title(summary, described),
      next_token=_metric(summary) == 'perplexity')


def plot_layers(summary: dict, path: str, described: str = '') -> None:
  """Each prunable layer's ticket density (%) against level (the first
  grid point of a grid), mean over seeds."""
  plt = plots_lib.pyplot()
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  tickets = [m for m in summary['members'] if m['branch'] == 'ticket']
  if 'points' in summary:
    first = summary['points'][0]['point']
    tickets = [m for m in tickets if all(m[k] == v for k, v in first.items())]
  levels = sorted({m['level'] for m in tickets})
  layers = sorted(tickets[0]['density_per_layer'])
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  for i, layer in enumerate(layers):
    mean = [100 * np.mean([m['density_per_layer'][layer] for m in tickets
                           if m['level'] == lv]) for lv in levels]
    wide = (len(layers) - 1 - i) / max(len(layers) - 1, 1)  # layers of
    ax.plot(levels, mean, ms=3 + 5 * wide, lw=1.2 + 5 * wide,  # one rate
            label=layer, **plots_lib.style(i))  # overlap: the first widest
  total = [100 * np.mean([m['density'] for m in tickets if m['level'] == lv])
           for lv in levels]
  ax.plot(levels, total, 'k--', lw=1.5, label='all prunable')
  ax.set_yscale('log')
  plots_lib.plain_log_ticks(ax.yaxis)
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_xlabel('level')
  plots_lib.save(fig, ax, path, title(summary, described),
                 'ticket density (% of the layer kept)',
                 note='per-layer density, mean over seeds; a line inside a '
                 'wider one: equal densities')


def report(summary: dict, evals: list[dict], config) -> lifecycle.Report:
  """Title, table and the run's figures (module docstring)."""
  described = describe(config)
  return lifecycle.Report(title(summary, described),
                          table(summary, described), {
      f'{_metric(summary)}.png': lambda path: plot(summary, path, described),
      'curves.png': lambda path: plot_curves(summary, evals, path, described),
      'layers.png': lambda path: plot_layers(summary, path, described),
  })


def series(summary: dict) -> list[dict]:
  """One series per branch (and grid point): level -> its healthy members
  (diverged ones are left out, as in the summary's means)."""
  def label(m):
    point = ' '.join(f'{grid_lib.SHORT[n]}={m[n]:g}'
                     for n in summary.get('grid', {}))
    label = f"{m['branch']} {point}".strip()
    structure = summary.get('structure')
    return f'{label} ({structure})' if structure else label
  return health.series(summary, label, lambda m: m['level'])
