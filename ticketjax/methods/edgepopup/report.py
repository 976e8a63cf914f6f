"""Edge-Popup's summary, table and plots: pure functions of its records.

A member is one (method, k, seed): an Edge-Popup subnetwork at fraction
kept k, or (method 'dense', no k) the dense-trained baseline of a seed.
"""
import numpy as np

from ticketjax.core import stats
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle

STATS = ('final_test_accuracy', 'final_test_loss', 'final_train_accuracy',
         'best_test_accuracy')


def summarize(records: dict, ks) -> dict:
  """Per k (and dense): mean ± std over seeds of the final metrics.

  `records` maps a phase to its records (`Run.train_stage`'s: diverged
  members flagged, member summaries with their densities) and 'controls'
  to the controls' evaluation records. Diverged members are left out of
  the means and counted (`health.aggregate`). A k's density is the mean
  over all its members: the kept count is exact whatever the scores.
  Returns {'k': [{'k', 'density', 'density_per_layer', stats...}],
  'dense': {stats...} or None, 'members': [per-member summaries]}.
  """
  controls = {}
  for rec in records.get('controls', []):
    controls.setdefault((rec['k'], rec['branch']), []).append(
        rec['test_accuracy'])
  members = [m for phase in ('edgepopup', 'dense')
             for m in records.get(phase, {}).get('members', [])]
  per_k = []
  for k in ks:
    group = [m for m in members if m.get('k') == k]
    layers = group[0]['density_per_layer']
    per_k.append({
        'k': k,
        'density': float(np.mean([m['density'] for m in group])),
        'density_per_layer': {
            path: float(np.mean([m['density_per_layer'][path]
                                 for m in group])) for path in layers},
        **health.aggregate(group, STATS)})
    branches = [b for kk, b in controls if kk == k]
    if branches:
      per_k[-1]['controls'] = {b: stats.mean_std(controls[(k, b)])
                               for b in branches}
  dense = [m for m in members if m['method'] == 'dense']
  return {'k': per_k,
          'dense': health.aggregate(dense, STATS) if dense else None,
          'members': members}


def _model_name(summary: dict) -> str:
  """'mnist1d_mlp(width=500)': the model and its config kwargs."""
  kwargs = summary.get('model_kwargs') or {}
  args = ', '.join(f'{k}={v}' for k, v in sorted(kwargs.items()))
  return f"{summary.get('model', '')}({args})" if args else summary.get(
      'model', '')


def title(summary: dict) -> str:
  """Method, model, data, frozen-weight init, steps and seeds."""
  return (f'Edge-Popup {_model_name(summary)} on '
          f"{summary.get('dataset', '')}, {summary.get('init', '')} "
          f"frozen weights{', scaled fan' if summary.get('scale_fan') else ''}"
          f", {summary.get('steps', '?')} steps, "
          f"{stats.seeds(summary.get('num_seeds', '?'))}")


def _cell(mean_std: dict | None) -> str:
  """'52.3 ± 1.0' (%), or '-' when every member of the row diverged."""
  return stats.format_mean_std(mean_std) if mean_std else '-'


def table(summary: dict) -> str:
  """Markdown table: one row per k, then the dense-trained network.

  When a member diverged, a last column says how many of each row's seeds
  did ('diverged k/n'); a row with no healthy seed shows no means.
  """
  seeds = summary.get('num_seeds', 0)
  entries = [(f"{e['k']:g}", f"{100 * e['density']:.2f}", e)
             for e in summary['k']]
  if summary.get('dense'):
    entries.append(('dense (trained)', '100.00', summary['dense']))
  unhealthy = any(e.get('diverged') for _, _, e in entries)
  branches = list(summary['k'][0].get('controls', {}))
  rows = []
  for label, density, e in entries:
    row = [label, density] + [_cell(e.get(name)) for name in (
        'final_test_accuracy', 'best_test_accuracy', 'final_train_accuracy')]
    row += [_cell(e.get('controls', {}).get(b)) for b in branches]
    if unhealthy:
      row.append(health.column(e, seeds))
    rows.append(row)
  header = ['k (fraction kept)', 'weights kept (%)', 'test acc (%)',
            'best test acc (%)', 'train acc (%)'] + [
                f'{b} test acc (%)' for b in branches] + (
                    ['health'] * unhealthy)
  return (title(summary) + ' (final-step accuracy, mean ± std over seeds, '
          'ddof 0; '
          'the k rows train no weight)\n\n' +
          stats.markdown_table(header, rows))


def report(summary: dict, lines: list[dict], config=None) -> lifecycle.Report:
  """Title, table, `accuracy.png` and `curves.png`."""
  del config
  return lifecycle.Report(title(summary), table(summary),
                          plots(summary, lines))


def plots(summary: dict, lines: list[dict]) -> dict:
  """{'accuracy.png': draw, 'curves.png': draw}."""
  curves = {f"Edge-Popup k={k:g}": [
      r for r in lines if r['method'] == 'edgepopup' and r['k'] == k
      and 'branch' not in r]
            for k in (e['k'] for e in summary['k'])}
  dense = [r for r in lines if r['method'] == 'dense']
  if dense:
    curves['dense (trained)'] = dense
  return {
      'accuracy.png': lambda path: plot_accuracy(summary, path),
      'curves.png': lambda path: plots_lib.learning_curves(
          curves, path, title(summary)),
  }


def plot_accuracy(summary: dict, path: str) -> None:
  """Final test accuracy against k; the dense-trained network as a band."""
  plt = plots_lib.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  entries = sorted((e for e in summary['k'] if 'final_test_accuracy' in e),
                   key=lambda e: e['k'])
  if entries:
    acc = [e['final_test_accuracy'] for e in entries]
    plots_lib.band(ax, [e['k'] for e in entries],
                   [100 * a['mean'] for a in acc],
                   [100 * a['std'] for a in acc],
                   'Edge-Popup (untrained weights)', marker='o', ms=4)
  dense = summary.get('dense')
  if dense and 'final_test_accuracy' in dense:
    d = dense['final_test_accuracy']
    plots_lib.band(ax, [0, 1.02], [100 * d['mean']] * 2,
                   [100 * d['std']] * 2, 'dense, trained', color='gray',
                   ls='--', lw=1)
  ax.set_xlabel('k (fraction of weights kept per layer)')
  ax.set_xlim(0, 1.02)
  plots_lib.save(fig, ax, path, title(summary), 'final test accuracy (%)')


def series(summary: dict) -> list[dict]:
  """Edge-Popup (k -> members) and its dense-trained baseline."""
  return health.series(summary, lambda m: (
      'Edge-Popup' if m.get('method', 'edgepopup') == 'edgepopup'
      else 'dense-trained'), lambda m: m.get('k', 1.0),
                       reference='dense-trained')
