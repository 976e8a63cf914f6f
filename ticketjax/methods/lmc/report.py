"""Tables and plots of an instability analysis (summary and records -> files).

`table` is one row per (rewind step, network, split): kernel density, error
barrier mean ± std over pairs and seeds, whether that is stable (< 2%),
and the copies' final test accuracy. `report` draws `barrier.png` (barrier
against rewind step, one line per network and split, a band of ± one std,
the 2% stability line) and `paths.png` (mean error along the path against
alpha, one panel per network on a shared y axis, one curve per k, each with
its band over pairs). Diverged pairs are left out of every line and band.
"""
import os

import numpy as np

from ticketjax.core import stats
from ticketjax.methods.lmc import path as lmc
from ticketjax.reports import plots as plots_lib
from ticketjax.reports import run_folders
from ticketjax.run import lifecycle
from ticketjax.run import records as records_lib


def _networks(summary: dict) -> str:
  return ', '.join(f'{net} ({100 * density:.3g}% kept)'
                   for net, density in summary['networks'].items())


def title(summary: dict) -> str:
  """What was analysed: method, model, data, networks and how IMP found
  its tickets (for a rewind-step grid: each k's own, rewound to k)."""
  tickets = (f"; IMP tickets by {summary['tickets']}"
             if summary.get('tickets') else '')
  if summary.get('tickets_per_rewind_step'):
    tickets += '; the IMP tickets of each k were rewound to k'
  return (f"Instability (LMC) of {summary['model']} on {summary['dataset']}: "
          f"{_networks(summary)}{tickets}")


def band(summary: dict) -> str:
  """What the bands are: std over seeds, and over each seed's pairs of
  copies when there are more than two copies."""
  if summary['copies'] > 2:
    return plots_lib.BAND.replace('seeds', 'seeds and pairs of copies')
  return plots_lib.BAND


def _cell(stat: dict) -> str:
  """'mean ± std' in percent; 'diverged' when no healthy value is left."""
  return stats.format_mean_std(stat, digits=2) if stat['n'] else 'diverged'


def _barrier_cell(entry: dict) -> str:
  """'mean ± std', with the diverged pairs left out of it counted."""
  if not entry['barrier']['n']:
    return f"all {entry['diverged_pairs']} pairs diverged"
  cell = _cell(entry['barrier'])
  if entry.get('diverged_pairs'):
    cell += f" (diverged pairs left out: {entry['diverged_pairs']})"
  return cell


def table(summary: dict) -> str:
  """Markdown table of every (rewind step, network, split), with a title."""
  header = ['rewind step k', 'network', 'density (%)', 'split',
            'error barrier (%)', 'stable (< 2%)', 'copies test acc (%)']
  rows = []
  for e in summary['steps']:
    rows.append([
        e['rewind_step'], e['network'],
        f"{100 * summary['networks'][e['network']]:.2f}", e['split'],
        _barrier_cell(e), 'yes' if e['stable'] else 'no',
        _cell(e['final_test_accuracy'])])
  heading = (f"{title(summary)}; {stats.seeds(summary['num_seeds'])} x "
             f"{summary['copies']} copies, {len(summary['alphas'])} alphas, "
             f"{summary['train_steps']} steps (barrier mean ± std over pairs "
             'and seeds, ddof 0)')
  return heading + '\n\n' + stats.markdown_table(header, rows)


def report(summary: dict, lines: list[dict], config=None) -> lifecycle.Report:
  """Title, table and the plots; `lines` are the metrics.jsonl records
  (the pairs' curves give the path bands)."""
  del config
  return lifecycle.Report(title(summary), table(summary), {
      'barrier.png': lambda path: plot_barriers(summary, path),
      'paths.png': lambda path: plot_paths(summary, lines, path)})


def series(summary: dict) -> list[dict]:
  """No accuracy-vs-density points: the report plots its barriers."""
  del summary
  return []


def cross_run_section(runs: list[dict], out_dir: str) -> list[str]:
  """The cross-run report's instability section (`reports/cross_run.py`):
  every LMC run's error barriers, a table and `lmc.png`."""
  mine = [r for r in runs if r['job'] == 'lmc']
  widest = max(mine, key=lambda r: r['copies'])  # what its ± pools
  records_lib.write_atomic(os.path.join(out_dir, 'lmc.png'),
                           lambda path: _plot_runs(mine, path, band(widest)))
  rows = [[run_folders.name(r), e['network'], e['split'], e['rewind_step'],
           stats.format_mean_std(e['barrier'], digits=2)]
          for r in mine for e in r['steps']]
  over = 'seeds and pairs of copies' if widest['copies'] > 2 else 'seeds'
  return ['\n## Instability (error barrier, %)\n',
          f'Mean ± std over {over} (ddof 0).\n', stats.markdown_table(
              ['run', 'network', 'split', 'rewind step', 'barrier (%)'],
              rows), '\n![lmc](lmc.png)\n']


def _plot_runs(runs: list[dict], path: str, note: str) -> None:
  """Error barrier against rewind step, every network of every run."""
  plt = plots_lib.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  steps = []
  for run in runs:
    steps += _draw_barriers(ax, run, f'{run_folders.name(run)} ')
  _finish_barrier_axes(ax, steps)
  ax.set_title(plots_lib.title(
      'Error barrier against rewind step, every LMC run', note),
               fontsize='small')
  plots_lib.write(fig, path)


def _percent(stat) -> float:
  """100 x a mean or std that JSON may hold as null (all pairs diverged)."""
  return np.nan if stat is None else 100 * stat


def _draw_barriers(ax, summary: dict, prefix: str = '') -> list[int]:
  """One line (± std band) per network and split of an LMC summary on
  `ax`, labels prefixed by `prefix`; returns the summary's rewind steps."""
  keys = sorted({(e['network'], e['split']) for e in summary['steps']})
  for net, split in keys:
    pts = [e for e in summary['steps']
           if e['network'] == net and e['split'] == split]
    label = f"{prefix}{net} ({100 * summary['networks'][net]:.3g}%), {split}"
    plots_lib.band(ax, [e['rewind_step'] for e in pts],
                   [_percent(e['barrier']['mean']) for e in pts],
                   [_percent(e['barrier']['std']) for e in pts],
                   label, marker='o', ms=3)
  return [e['rewind_step'] for e in summary['steps']]


def _finish_barrier_axes(ax, steps) -> None:
  """The 2% stability line, a symlog x axis from k = 0 with a tick at
  every rewind step, labels, grid."""
  ax.axhline(100 * lmc.STABLE_BARRIER, color='gray', ls='--', lw=1,
             label='stable (2%)')
  positive = [k for k in steps if k]
  if positive:
    ax.set_xscale('symlog', linthresh=min(positive))
    ax.set_xlim(0, max(positive) * 1.2)
  ticks = sorted(set(steps))
  ax.set_xticks(ticks, [f'{k:g}' for k in ticks])
  ax.set_xticks([], minor=True)
  ax.set_xlabel('rewind step k')
  ax.set_ylabel('error barrier (%)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def plot_barriers(summary: dict, path: str) -> None:
  """Error barrier (%) against the rewind step, one line per network."""
  plt = plots_lib.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4.4), dpi=120)
  _finish_barrier_axes(ax, _draw_barriers(ax, summary))
  ax.set_title(plots_lib.title(
      f'{title(summary)}, error barrier against rewind step', band(summary),
      width=80), fontsize='small')
  plots_lib.write(fig, path)


def _error_std(lines: list[dict], entry: dict) -> np.ndarray:
  """Std over the healthy pairs of the error along the path of `entry`'s
  (rewind step, network, split); zeros when the records are not there."""
  curves = [r['error'] for r in lines
            if r.get('kind') == 'pair' and not r.get('diverged')
            and (r['rewind_step'], r['network'], r['split']) ==
            (entry['rewind_step'], entry['network'], entry['split'])]
  if not curves:
    return np.zeros(len(entry['mean_error_curve']))
  return np.std(np.asarray(curves, float), axis=0)


def plot_paths(summary: dict, lines: list[dict], path: str) -> None:
  """Mean error (%) along the path against alpha, per network and k."""
  plt = plots_lib.pyplot()
  nets = list(summary['networks'])
  width = max(6, 4.5 * len(nets))
  fig, axes = plt.subplots(1, len(nets), figsize=(width, 4.2), dpi=120,
                           squeeze=False, sharey=True)
  alphas = np.asarray(summary['alphas'])
  steps = sorted({e['rewind_step'] for e in summary['steps']})
  colors = plt.get_cmap('viridis')(np.linspace(0, 0.9, max(len(steps), 1)))
  for ax, net in zip(axes[0], nets):
    for e in summary['steps']:
      if e['network'] != net or not e['mean_error_curve']:
        continue
      plots_lib.band(ax, alphas, 100 * np.asarray(e['mean_error_curve']),
                     100 * _error_std(lines, e),
                     f"k={e['rewind_step']} ({e['split']})",
                     color=colors[steps.index(e['rewind_step'])],
                     ls='-' if e['split'] == 'test' else ':')
    ax.set_xlabel('alpha')
    ax.set_title(f"{net} ({100 * summary['networks'][net]:.3g}% kept)",
                 fontsize='small')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # none when all pairs diverged
      ax.legend(fontsize=7)
  axes[0][0].set_ylabel('error (%)')
  fig.suptitle(plots_lib.title(  # ~15 characters an inch, small type
      f'{title(summary)}, error along the path between copies',
      band(summary), width=int(15 * width)), fontsize='small')
  plots_lib.write(fig, path)
