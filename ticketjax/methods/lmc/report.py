"""Tables and plots of an instability analysis (`summary.json` -> files).

`table` is one row per (rewind step, network, split): kernel density, error
barrier mean ± std over pairs and seeds, whether that is stable (< 2%),
and the copies' final test accuracy. `write_report` writes `report.md`,
`barrier.png` (barrier against rewind step, one line per network and split,
a band of ± one std, the 2% stability line) and `paths.png` (mean error
along the path against alpha, one panel per network, one curve per k).
"""
import os

import numpy as np

from ticketjax.core import stats
from ticketjax.methods.lmc import path as lmc


def table(summary: dict) -> str:
  """Markdown table of every (rewind step, network, split)."""
  header = ['rewind step k', 'network', 'density (%)', 'split',
            'error barrier (%)', 'stable (< 2%)', 'copies test acc (%)']
  rows = []
  for e in summary['steps']:
    rows.append([
        e['rewind_step'], e['network'],
        f"{100 * summary['networks'][e['network']]:.2f}", e['split'],
        stats.format_mean_std(e['barrier'], digits=2),
        'yes' if e['stable'] else 'no',
        stats.format_mean_std(e['final_test_accuracy'], digits=2)])
  title = (f"Instability of {summary['model']} on {summary['dataset']}: "
           f"{summary['num_seeds']} seeds x {summary['copies']} copies, "
           f"{len(summary['alphas'])} alphas, {summary['train_steps']} steps "
           '(barrier mean ± std over pairs and seeds)')
  return title + '\n\n' + stats.markdown_table(header, rows)


def pyplot():
  """matplotlib.pyplot on the Agg backend unless one is already chosen."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg', force=False)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def draw_barriers(ax, summary: dict, prefix: str = '') -> list[int]:
  """One line (± std band) per network and split of an LMC summary on
  `ax`, labels prefixed by `prefix`; returns the summary's rewind steps."""
  keys = sorted({(e['network'], e['split']) for e in summary['steps']})
  for net, split in keys:
    pts = [e for e in summary['steps']
           if e['network'] == net and e['split'] == split]
    x = np.array([e['rewind_step'] for e in pts])
    mean = np.array([100 * e['barrier']['mean'] for e in pts])
    std = np.array([100 * e['barrier']['std'] for e in pts])
    label = f"{prefix}{net} ({100 * summary['networks'][net]:.3g}%), {split}"
    line, = ax.plot(x, mean, marker='o', ms=3, label=label)
    ax.fill_between(x, mean - std, mean + std, alpha=0.2,
                    color=line.get_color())
  return [e['rewind_step'] for e in summary['steps']]


def finish_barrier_axes(ax, steps) -> None:
  """The 2% stability line, a symlog x axis from k = 0, labels, grid."""
  ax.axhline(100 * lmc.STABLE_BARRIER, color='gray', ls='--', lw=1,
             label='stable (2%)')
  positive = [k for k in steps if k]
  if positive:
    ax.set_xscale('symlog', linthresh=min(positive))
    ax.set_xlim(0, max(positive) * 1.2)
  ax.set_xlabel('rewind step k')
  ax.set_ylabel('error barrier (%)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def plot_barriers(summary: dict, path: str) -> None:
  """Error barrier (%) against the rewind step, one line per network."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  finish_barrier_axes(ax, draw_barriers(ax, summary))
  ax.set_title(f"{summary['model']} on {summary['dataset']}: instability")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_paths(summary: dict, path: str) -> None:
  """Mean error (%) along the path against alpha, per network and k."""
  plt = pyplot()
  nets = list(summary['networks'])
  fig, axes = plt.subplots(1, len(nets), figsize=(4.5 * len(nets), 3.6),
                           dpi=120, squeeze=False)
  alphas = np.asarray(summary['alphas'])
  steps = sorted({e['rewind_step'] for e in summary['steps']})
  colors = plt.get_cmap('viridis')(np.linspace(0, 0.9, max(len(steps), 1)))
  for ax, net in zip(axes[0], nets):
    for e in summary['steps']:
      if e['network'] != net:
        continue
      color = colors[steps.index(e['rewind_step'])]
      ax.plot(alphas, 100 * np.asarray(e['mean_error_curve']), color=color,
              ls='-' if e['split'] == 'test' else ':',
              label=f"k={e['rewind_step']} ({e['split']})")
    ax.set_xlabel('alpha')
    ax.set_ylabel('error (%)')
    ax.set_title(f"{net} ({100 * summary['networks'][net]:.3g}% kept)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def write_report(run_dir: str, summary: dict) -> None:
  """`report.md`, `barrier.png` and `paths.png` in `run_dir`."""
  path = os.path.join(run_dir, 'report.md')
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    f.write(table(summary) + '\n\n![barrier](barrier.png)\n\n'
            '![paths](paths.png)\n')
  os.replace(path + '.tmp', path)
  plot_barriers(summary, os.path.join(run_dir, 'barrier.png'))
  plot_paths(summary, os.path.join(run_dir, 'paths.png'))
