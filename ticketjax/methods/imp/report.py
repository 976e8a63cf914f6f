"""Tables and plots of a search: accuracy against weights remaining.

`summarize` aggregates per-member level summaries into mean ± std over seeds
per (level, branch), and per grid point for a hyperparameter grid
(`{'points': [{'point', 'label', 'levels'}]}`); `table` renders Frankle &
Carbin's view of it (percent of weights remaining, test accuracy of the
ticket and each control, the early-stop iteration; one table per grid
point); `write_report` writes `report.md` and `accuracy.png` (test
accuracy against percent of weights remaining, log x axis, a band of ± one
seed std per branch, the dense network as a line; for a grid, the ticket
of every point).
"""
import collections
import os

import numpy as np

from ticketjax.core import stats

BRANCH_ORDER = ('ticket', 'reinit', 'shuffle', 'random')


def summarize(members: list[dict], grid=None) -> dict:
  """{'levels': [{level, branch -> stats}]} from per-member summaries.

  With a `grid.GridSpec` that has names: {'grid': {name: values},
  'points': [{'point': {name: value}, 'label': str, 'levels': [...]}]}.
  """
  if grid is not None and grid.names:
    return {'grid': {n: sorted({p[n] for p in grid.points})
                     for n in grid.names},
            'points': [{'point': dict(p), 'label': grid.label(p),
                        **_summarize_levels([
                            m for m in members
                            if all(m[n] == p[n] for n in grid.names)])}
                       for p in grid.points]}
  return _summarize_levels(members)


def _summarize_levels(members: list[dict]) -> dict:
  by_level = collections.defaultdict(lambda: collections.defaultdict(list))
  for rec in members:
    by_level[rec['level']][rec['branch']].append(rec)
  levels = []
  for level in sorted(by_level):
    entry = {'level': level}
    for branch, recs in by_level[level].items():
      entry[branch] = agg = {
          'density': float(np.mean([r['density'] for r in recs])),
          'final_test_accuracy': stats.mean_std(
              [r['final_test_accuracy'] for r in recs]),
          'best_test_accuracy': stats.mean_std(
              [r['best_test_accuracy'] for r in recs]),
      }
      if all('early_stop_step' in r for r in recs):
        agg['early_stop_step'] = stats.mean_std(
            [r['early_stop_step'] for r in recs])
        agg['early_stop_test_accuracy'] = stats.mean_std(
            [r['early_stop_test_accuracy'] for r in recs])
    levels.append(entry)
  return {'levels': levels}


def _branches(summary):
  present = {b for entry in summary['levels'] for b in entry if b != 'level'}
  return [b for b in BRANCH_ORDER if b in present]


def table(summary: dict) -> str:
  """Markdown table: one row per level, mean ± std over seeds (percent).

  A grid gets one such table per point, under the point's values.
  """
  if 'points' in summary:
    title = (f"IMP {summary.get('model', '')} on {summary.get('dataset', '')}"
             f", {summary.get('num_seeds', '?')} seeds per grid point "
             '(final-step test accuracy, mean ± std over seeds)')
    return title + ''.join(
        f"\n\n### {entry['label']}\n\n" + _level_table(entry)
        for entry in summary['points'])
  title = (f"IMP {summary.get('model', '')} on {summary.get('dataset', '')}, "
           f"{summary.get('num_seeds', '?')} seeds (final-step test accuracy,"
           ' mean ± std over seeds)')
  return title + '\n\n' + _level_table(summary)


def _level_table(summary: dict) -> str:
  branches = _branches(summary)
  header = ['level', 'weights remaining (%)']
  header += [f'{b} test acc (%)' for b in branches]
  header += ['ticket early-stop step']
  rows = []
  for entry in summary['levels']:
    ticket = entry['ticket']
    row = [entry['level'], f"{100 * ticket['density']:.2f}"]
    for b in branches:
      row.append(stats.format_mean_std(entry[b]['final_test_accuracy'])
                 if b in entry else '')
    stop = ticket.get('early_stop_step')
    row.append(f"{stop['mean']:.0f} ± {stop['std']:.0f}" if stop else '')
    rows.append(row)
  return stats.markdown_table(header, rows)


def plot(summary: dict, path: str) -> None:
  """Test accuracy vs percent of weights remaining, log x, seed bands."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg', force=False)
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  if 'points' in summary:  # a grid: the tickets of every point
    for entry in summary['points']:
      _band(ax, [(100 * e['ticket']['density'],
                  e['ticket']['final_test_accuracy'])
                 for e in entry['levels']], f"ticket {entry['label']}")
    levels = [e for p in summary['points'] for e in p['levels']]
  else:
    _plot_branches(ax, summary)
    levels = summary['levels']
  ax.set_xscale('log')
  low = min(100 * e['ticket']['density'] for e in levels)
  ticks = [100 / 2 ** i for i in range(30) if 100 / 2 ** i >= low * 0.99]
  ax.set_xticks(ticks, [f'{t:.3g}' for t in ticks])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.invert_xaxis()
  ax.set_xlabel('percent of weights remaining')
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(f"{summary.get('model', '')} on {summary.get('dataset', '')}")
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def _band(ax, pts, label):
  """A mean line with a ± std band from [(x, {'mean', 'std'})]."""
  x = np.array([p[0] for p in pts])
  mean = np.array([100 * p[1]['mean'] for p in pts])
  std = np.array([100 * p[1]['std'] for p in pts])
  line, = ax.plot(x, mean, marker='o', ms=3, label=label)
  ax.fill_between(x, mean - std, mean + std, alpha=0.2,
                  color=line.get_color())


def _plot_branches(ax, summary):
  """The ticket and each control of one search, and its dense accuracy."""
  for branch in _branches(summary):
    pts = [(100 * e['ticket']['density'], e[branch]['final_test_accuracy'])
           for e in summary['levels'] if branch in e]
    if branch != 'ticket':
      pts = [p for p in pts if p[0] < 100]
    if pts:
      _band(ax, pts, branch)
  dense = summary['levels'][0]['ticket']['final_test_accuracy']['mean']
  ax.axhline(100 * dense, color='gray', ls='--', lw=1, label='dense')


def write_report(run_dir: str, summary: dict, table_md: str) -> None:
  with open(os.path.join(run_dir, 'report.md.tmp'), 'w',
            encoding='utf-8') as f:
    f.write(table_md + '\n\n![accuracy](accuracy.png)\n')
  os.replace(os.path.join(run_dir, 'report.md.tmp'),
             os.path.join(run_dir, 'report.md'))
  plot(summary, os.path.join(run_dir, 'accuracy.png'))
