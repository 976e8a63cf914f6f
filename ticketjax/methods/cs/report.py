"""The CS report: per-lambda means, the printed table, the accuracy plot.

Every ± is one standard deviation over seeds (population, ddof 0: the
`std` of `core/stats.mean_std`), and the titles say so.
"""
import os
import sys

import numpy as np

from ticketjax.core import stats
from ticketjax.methods.imp import overlap as imp_overlap
from ticketjax.reports import plots as plots_lib
from ticketjax.reports import run_folders
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import records as records_lib
from ticketjax.run import store


def summarize(members: list[dict], lambdas) -> list[dict]:
  """Mean ± std over seeds of each lambda's tickets, diverged ones left out.

  An entry gets 'diverged': the count of its diverged members, only when
  there are any, and 'collapsed': how many of its members (diverged ones
  included) have an empty prunable layer (a 0 in 'density_per_layer').
  With control branches (`cs.controls`), 'controls' holds the same per
  branch.
  """
  out = []
  branches = [b for b in dict.fromkeys(r.get('branch', 'original')
                                       for r in members) if b != 'original']
  for lam in lambdas:
    entry = {'lambda': lam, **_means(members, lam, 'original')}
    if branches:
      entry['controls'] = {b: _means(members, lam, b) for b in branches}
    out.append(entry)
  return out


def _means(members, lam, branch) -> dict:
  recs = [r for r in members if r['lambda'] == lam
          and r.get('branch', 'original') == branch]
  healthy = [r for r in recs if not r.get('diverged')]
  entry = {name: stats.mean_std([r[name] for r in healthy])
           for name in ('density', 'final_test_accuracy',
                        'best_test_accuracy')}
  if len(healthy) < len(recs):
    entry['diverged'] = len(recs) - len(healthy)
  entry['collapsed'] = sum(1 for r in recs if 0.0 in r.get(
      'density_per_layer', {}).values())  # an empty layer
  return entry


def _what(summary: dict) -> str:
  """'CS lambda sweep: <model> on <data>, lambdas ..., <n> seeds'."""
  lambdas = ', '.join(f'{lam:g}' for lam in summary['lambdas'])
  return (f"CS lambda sweep: {summary['model']} on {summary['dataset']}, "
          f"lambdas {lambdas}, {stats.seeds(summary['num_seeds'])}")


def title(summary: dict) -> str:
  """What the run is and what its ± means, in one line."""
  n = summary['num_seeds']
  return f'{_what(summary)}; ± is ±1 std over {stats.seeds(n)} (ddof 0)'


def table(summary: dict) -> str:
  """The title line, then one row per lambda (markdown).

  When a member diverged or collapsed, a last column says how many of each
  lambda's tickets did ('diverged k/n', 'collapsed c/n (an empty layer)');
  a lambda with no healthy seed shows no means.
  """
  entries, n = summary['by_lambda'], summary['num_seeds']
  unhealthy = any(e.get('diverged') or e.get('collapsed') for e in entries)
  rows = []
  for e in entries:
    cells = ([stats.format_mean_std(e['density'], digits=2),
              stats.format_mean_std(e['final_test_accuracy'])]
             if e['density']['n'] else ['-', '-'])
    cells += [stats.format_mean_std(c['final_test_accuracy'])
              if c['final_test_accuracy']['n'] else '-'
              for c in e.get('controls', {}).values()]
    if unhealthy:
      cells.append(health.column(e, n, collapsed=' (an empty layer)'))
    rows.append([f"{e['lambda']:g}", *cells])
  header = ['lambda', 'weights remaining (%)', 'ticket test acc (%)']
  header += [f'{b} test acc (%)' for b in entries[0].get('controls', {})]
  if unhealthy:
    header.append('health')
  searched = len(summary['lambdas']) * summary['num_seeds']
  steps = (f"\n\nsequential training steps: {summary['sequential_steps']}; "
           f"over all {searched} members"
           + (' of the search (the controls not counted)'
              if len(summary['members']) > searched else '')
           + f": {summary['member_steps']}")
  return title(summary) + '\n\n' + stats.markdown_table(
      header, rows) + steps


def report(summary: dict, lines, config) -> lifecycle.Report:
  """Title, table and `accuracy.png`, next to the IMP run of
  `config.cs.compare_imp` (as `load_imp_summary` takes it) if any."""
  del lines
  compare_imp = config.cs.get('compare_imp', '')
  return lifecycle.Report(title(summary), table(summary), {
      'accuracy.png': lambda path: plot(
          summary, load_imp_summary(compare_imp), path)})


def load_imp_summary(path: str) -> dict | None:
  """An IMP run's summary.json (path of the file or its run folder)."""
  if not path:
    return None
  if os.path.isdir(path):
    path = os.path.join(path, 'summary.json')
  if not os.path.exists(path):
    print(f'warning: cs.compare_imp {path} not found; plotting CS alone',
          file=sys.stderr)
    return None
  summary = records_lib.read_json(path)
  if 'points' in summary:
    print(f'warning: cs.compare_imp {path} is a hyperparameter grid; '
          'plotting CS alone', file=sys.stderr)
    return None
  return summary


def plot(summary: dict, imp: dict | None, path: str) -> None:
  """Ticket test accuracy against weights remaining, CS next to IMP."""
  plt = plots_lib.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  e = [x for x in summary['by_lambda'] if x['density']['n']]  # healthy
  xs = [100 * x['density']['mean'] for x in e]
  ax.errorbar(xs,
              [100 * x['final_test_accuracy']['mean'] for x in e],
              xerr=[100 * x['density']['std'] for x in e],
              yerr=[100 * x['final_test_accuracy']['std'] for x in e],
              fmt='o', capsize=3, label='CS tickets (one per lambda)')
  for x, entry in zip(xs, e):  # each lambda over its error bar
    acc = entry['final_test_accuracy']
    ax.annotate(f"λ={entry['lambda']:g}", (x, 100 * (acc['mean'] + acc['std'])),
                textcoords='offset points', xytext=(0, 4), ha='center',
                fontsize='x-small')
  collapsed = [(x, 100 * entry['final_test_accuracy']['mean'])
               for x, entry in zip(xs, e) if entry.get('collapsed')]
  if collapsed:  # as the cross-run plot marks them
    ax.scatter(*zip(*collapsed), marker='x', s=60, color='black', zorder=5,
               label='with an empty layer (some seeds)')
  spread = 'error bars: ±1 std over seeds, ddof 0'
  if imp is not None:
    levels = [lv for lv in imp['levels'] if 'ticket' in lv]
    d = [100 * lv['ticket']['density'] for lv in levels]
    m = np.array([100 * lv['ticket']['final_test_accuracy']['mean']
                  for lv in levels])
    s = [100 * lv['ticket']['final_test_accuracy']['std'] for lv in levels]
    plots_lib.band(ax, d, m, s, 'IMP tickets', marker='s', ms=3)
    xs += d
    ax.axhline(m[0], color='gray', ls='--', lw=1, label='dense (IMP level 0)')
    spread = f'error bars and IMP {plots_lib.BAND}'
  plots_lib.density_axis(ax, min(xs + [100.0]), xs)
  plots_lib.save(fig, ax, path, _what(summary), 'test accuracy (%)',
                 note=spread)


def series(summary: dict) -> list[dict]:
  """Series for the cross-run report: lambda -> its healthy tickets ('CS'),
  and one per control branch ('CS shuffle', ...)."""
  return health.series(summary, lambda m: (
      'CS' if m.get('branch', 'original') == 'original'
      else f"CS {m['branch']}"), lambda m: m['lambda'])


def cross_run_section(runs: list[dict], out_dir: str) -> list[str]:
  """The cross-run report's section of the CS runs (`reports/
  cross_run.py`): each lambda's tickets against the tickets of every IMP
  run of one setting (a grid run takes no part) of the same model, seed by
  seed, at the IMP level nearest the lambda's density (within 15%; a pair
  with none says so), from the checkpoints."""
  del out_dir  # (no figure)
  rows = []
  imps = [r for r in runs if r['job'] == 'imp' and 'points' not in r]
  for cs in [r for r in runs if r['job'] == 'cs']:
    masks = store.Checkpoints(cs['run_dir']).restore_raw('ticket')['mask']
    num_seeds = cs['num_seeds']
    for imp in [r for r in imps if r['model'] == cs['model']]:
      near = 0
      for li, lam in enumerate(cs['lambdas']):
        density = float(np.mean([m['density'] for m in cs['members']
                                 if m['lambda'] == lam]))
        entry = min(imp['levels'], key=lambda e: abs(
            e['ticket']['density'] - density))
        if abs(entry['ticket']['density'] - density) > 0.15 * density:
          continue  # no IMP level near this density
        near += 1
        imp_S = imp_overlap.ticket_masks(imp, entry['level'])
        vals = np.array([
            imp_overlap.jaccard(masks, li * num_seeds + s, imp_S, s)
            for s in range(min(num_seeds, imp['num_seeds']))])
        steps = (run_folders.steps(cs), run_folders.steps(imp))
        rows.append([f"{run_folders.name(cs)} lambda {lam:g} vs "
                     f"{run_folders.name(imp)} level {entry['level']} (same "
                     'seed' + (f'; train.steps {steps[0]} vs {steps[1]}'
                               if steps[0] != steps[1] else '') + ')',
                     f"{100 * density:.2f} / "
                     f"{100 * entry['ticket']['density']:.2f}",
                     *(f'{v:.3f}' for v in vals.mean(0)), len(vals)])
      if not near:  # say why the pair has no row
        rows.append([f'{run_folders.name(cs)} vs {run_folders.name(imp)}: no '
                     "IMP level within 15% of a lambda's density", '', '', '',
                     0])
  if not rows:
    return []
  return ['\n## Mask overlap of CS and IMP tickets\n', "Each lambda's "
          "tickets against the same seed's IMP ticket at the level nearest "
          'its density (within 15%); IMP runs of one setting only (a grid '
          'run takes no part). ' + imp_overlap.OVERLAP_NOTE + '\n',
          stats.markdown_table(imp_overlap.OVERLAP_HEADER, rows)]
