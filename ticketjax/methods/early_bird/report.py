"""The `early_bird` job's report: title, table, plots and cross-run series.

`accuracy.png` (retrained accuracy against weights remaining, Early-Bird
and full-training tickets, the dense line), `distance.png` (the largest
mask distance per check, per tracker) and `curves.png` (learning curves).
"""
import numpy as np

from ticketjax.core import stats
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle


def _rule(summary: dict) -> str:
  what = (f"{summary['structure']} {summary['score']} "
          f"({summary['scope']})")
  if summary.get('l1'):
    what += f", L1 {summary['l1']:g} on BN scales"
  return what


def title(summary: dict) -> str:
  mode = ('Early-Bird IMP, ' f"{summary['levels']} levels at rate "
          f"{summary['rate']:g}" if summary['levels']
          else 'Early-Bird tickets')
  return (f"{mode}: {_rule(summary)}, {summary['model']} on "
          f"{summary['dataset']}, checks every {summary['check_every']} "
          f"steps (window {summary['window']}, epsilon "
          f"{summary['epsilon']:g}), retrained from init for "
          f"{summary['steps']} steps, {stats.seeds(summary['num_seeds'])}")


def _name(e: dict) -> str:
  if e['branch'] == 'dense':
    return 'dense'
  if e['branch'] == 'full':
    return 'full-training ticket'
  return (f"early-bird level {e['level']}" if 'level' in e
          else 'early-bird ticket')


def table(summary: dict) -> str:
  fmt = stats.format_mean_std
  channels = summary['structure'] == 'channels'
  live = any('live_density' in e for e in summary['groups'])
  rows = []
  for e in summary['groups']:
    acc = e.get('final_test_accuracy')
    eb = e['branch'] == 'early_bird'
    n = summary['num_seeds']
    rows.append([
        _name(e), f"{100 * e['density_target']:.4g}",
        f"{100 * e['density']['mean']:.2f}",
        *([f"{100 * e['units']['mean']:.1f}" if 'units' in e else '']
          if channels else []),
        *([f"{100 * e['live_density']['mean']:.2f}"
           if 'live_density' in e else ''] if live else []),
        fmt(acc) if acc else 'n/a',
        (fmt(e['declared_epoch'], scale=1, digits=1) + f" ({e['declared']}/"
         f"{n})" if eb and e['declared'] else
         (f'never (0/{n})' if eb else '')),
        fmt(e['steps_saved']) if eb else '',
        fmt(e['distance_to_last'], scale=1, digits=3)
        if eb and not summary['levels'] else '',
        health.column(e, n, collapsed=' (an empty layer)')])
  header = ['ticket', 'target (% of channels)' if channels
            else 'target density (%)', 'weights remaining (%)',
            *(['channels kept (%)'] if channels else []),
            *(['live weights (%)'] if live else []),
            'final test acc (%)', 'declared at epoch (declared/seeds)',
            'search steps saved (%)', 'distance to full-training mask',
            'members']
  return (title(summary) + ' (test accuracy %, mean ± std over seeds, '
          'ddof 0)\n\n'
          + stats.markdown_table(header, rows)
          + (health.LIVE_NOTE if live else ''))


def report(summary: dict, evals: list[dict], config=None) -> lifecycle.Report:
  del config

  def accuracy(path):
    lines = {}
    for branch in ('early_bird', 'full'):
      pts = [e for e in summary['groups'] if e['branch'] == branch]
      if pts:
        lines[_name(pts[0]).replace(' level 1', ' IMP')] = [
            (100 * e['density']['mean'], e.get('final_test_accuracy'))
            for e in pts]
    dense = [('dense', e.get('final_test_accuracy'))
             for e in summary['groups'] if e['branch'] == 'dense'][:1]
    plots_lib.accuracy_vs_density(path, title(summary), lines, dense=dense)

  def distance(path):
    plt = plots_lib.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    spe = summary['steps_per_epoch']
    tracks = {}
    for c in summary['search']['checks']:
      if c['max_distance'] is None:
        continue
      label = (f"level {c['level']}" if 'level' in c
               else f"density {100 * c['density_target']:g}%")
      tracks.setdefault(label, {}).setdefault(c['step'], []).append(
          c['max_distance'])
    for label, by_step in tracks.items():
      steps = sorted(by_step)
      plots_lib.band(ax, [s / spe for s in steps],
                     [np.mean(by_step[s]) for s in steps],
                     [np.std(by_step[s]) for s in steps], label,
                     marker='o', ms=2)
    ax.axhline(summary['epsilon'], color='k', ls=':', lw=1,
               label=f"epsilon {summary['epsilon']:g}")
    ax.set_xlabel('epoch')
    ax.set_yscale('log')
    plots_lib.save(fig, ax, path, title(summary),
                   'largest distance of the newest mask to the window',
                   note='mean ± 1 std over the seeds still searching, ddof 0')

  curves = {}
  for r in evals:
    if r['branch'] == 'search':
      label = (f"search, level {r['level']}" if 'level' in r
               else 'search (dense)')
    else:
      label = (_name(r) if r['branch'] == 'dense' else
               f"{_name(r)}, density {100 * r['density_target']:.3g}%")
    curves.setdefault(label, []).append(r)
  return lifecycle.Report(title(summary), table(summary), {
      'accuracy.png': accuracy, 'distance.png': distance,
      'curves.png': lambda path: plots_lib.learning_curves(
          curves, path, title(summary))})


def series(summary: dict) -> list[dict]:
  """Early-Bird tickets and full-training tickets: density -> members;
  the dense members as the reference line."""
  names = {'dense': 'dense', 'full': 'full-training ticket'}
  return health.series(
      summary, lambda m: names.get(m['branch'],
                                   f"Early-Bird {summary['score']}"),
      lambda m: m['density_target'], reference='dense')
