"""The transfer report: one row per level, one column per branch.

`accuracy.png` draws each branch's final test accuracy against percent of
weights remaining (log x) with a band of ± one seed std; `curves.png` the
test accuracy and loss against step of every branch at the sparsest level.
"""
from ticketjax.core import stats
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle

LABELS = {'transferred': 'transferred ticket', 'target': 'target ticket',
          'reinit': 'transferred mask, reinit', 'random': 'random mask'}


def title(summary: dict) -> str:
  return (f"Ticket transfer {summary['source_dataset']} -> "
          f"{summary['dataset']}: {summary['model']}, {summary['steps']} "
          f"steps, {stats.seeds(summary['num_seeds'])}")


def _cell(entry: dict) -> str:
  acc = entry.get('final_test_accuracy')
  text = stats.format_mean_std(acc) if acc else 'n/a'
  if entry.get('diverged'):
    text += f" (diverged {entry['diverged']}/{entry['members']})"
  return text


def table(summary: dict) -> str:
  """Final test accuracy (%) per level and branch, mean ± std over seeds,
  and each branch's early-stopping step."""
  branches = summary['branches']
  rows = []
  for level in sorted({e['level'] for e in summary['entries']}):
    mine = {e['branch']: e for e in summary['entries']
            if e['level'] == level}
    first = mine[branches[0]]
    rows.append([level, f"{100 * first['density']['mean']:.2f}"]
                + [_cell(mine[b]) for b in branches]
                + [stats.format_mean_std(mine[b]['early_stop_step'], scale=1,
                                         digits=0)
                   if 'early_stop_step' in mine[b] else ''
                   for b in branches])
  header = (['source level', 'weights remaining (%)']
            + [f'{LABELS[b]} test acc (%)' for b in branches]
            + [f'{b} early-stop step' for b in branches])
  return (title(summary) + ' (final test accuracy, mean ± std over seeds, '
          'ddof 0)'
          '\n\n' + stats.markdown_table(header, rows))


def report(summary: dict, evals: list[dict], config=None) -> lifecycle.Report:
  del config

  def accuracy(path):
    plots_lib.accuracy_vs_density(path, title(summary), {
        LABELS[branch]: [(100 * e['density']['mean'],
                          e.get('final_test_accuracy'))
                         for e in summary['entries'] if e['branch'] == branch]
        for branch in summary['branches']})

  last = max(e['level'] for e in summary['entries'])
  groups = {}
  for r in evals:
    if r['level'] == last:
      groups.setdefault(f"{LABELS[r['branch']]} (level {last})", []).append(r)
  return lifecycle.Report(title(summary), table(summary), {
      'accuracy.png': accuracy,
      'curves.png': lambda path: plots_lib.learning_curves(
          groups, path, title(summary))})


def series(summary: dict) -> list[dict]:
  """One series per branch: level -> its healthy members."""
  return health.series(summary, lambda m: f"transfer {LABELS[m['branch']]}",
                       lambda m: m['level'])
