"""Member health and per-member summaries, from evaluation records.

`flag_diverged(records, key)` marks a member whose loss is not finite,
exceeds `DIVERGED_FACTOR` times its first recorded loss, or exceeds
`LOSS_LIMIT` (1e4 nats), as diverged in its records; `member_stats` sums up
one member's records (final, best, early-stopping point) and `aggregate`
takes mean ± std over the healthy members, counting the diverged ones;
`column` is a table's health cell and `series` groups the members for the
cross-run report.
Pure functions of plain records: every method and `lifecycle.Run` use them.
"""
import math
from typing import Any, Callable, Sequence

from ticketjax.core import stats

# under a table with a 'live weights' column (`connectivity.live_density`)
LIVE_NOTE = ('\n\nLive weights: the kept weights on some path from the '
             'input to an output. The mask also keeps weights off every '
             'such path (one that reads only a removed unit, say), which '
             'compute nothing.')
DIVERGED_FACTOR = 1e3
# A cross-entropy above this many nats (probabilities of e^-10000) has
# diverged whatever the first recorded loss was: with a huge learning rate
# the first evaluation may already be past any factor of a sane loss.
LOSS_LIMIT = 1e4


def member_stats(recs: list[dict], train: bool = True) -> dict:
  """One member's summary from its evaluation records, in step order:
  final and best test accuracy, final test loss (and, with `train`, train
  accuracy), and, with a validation split, F&C's early-stopping point (the
  step of minimum validation loss and the test accuracy there);
  'diverged' when flagged."""
  last = recs[-1]
  out = {'final_test_accuracy': last['test_accuracy'],
         'final_test_loss': last['test_loss'],
         'best_test_accuracy': max(r['test_accuracy'] for r in recs)}
  if train:
    out['final_train_accuracy'] = last['train_accuracy']
  if 'val_loss' in last:
    best = min(recs, key=lambda r: r['val_loss'])
    out['early_stop_step'] = best['step']
    out['early_stop_test_accuracy'] = best['test_accuracy']
  if any(r.get('diverged') for r in recs):
    out['diverged'] = True
  return out


def aggregate(members: list[dict], names: Sequence[str]) -> dict:
  """Mean ± std over the healthy members of each stat in `names` (those
  all healthy members have); 'diverged' and 'members' counts when any
  member diverged."""
  healthy = [m for m in members if not m.get('diverged')]
  out = {name: stats.mean_std([m[name] for m in healthy]) for name in names
         if healthy and all(name in m for m in healthy)}
  diverged = len(members) - len(healthy)
  if diverged:
    out.update(diverged=diverged, members=len(members))
  return out


def live_density(members: list[dict]) -> dict | None:
  """Mean ± std of the healthy members' finite 'live_density'
  (`connectivity.live_density`; NaN where the probe could not tell);
  None when no healthy member has a finite one."""
  live = [m['live_density'] for m in members if not m.get('diverged')
          and math.isfinite(m.get('live_density', math.nan))]
  return stats.mean_std(live) if live else None


def series(summary: dict, label: Callable[[dict], str],
           x: Callable[[dict], Any], reference: str = '') -> list[dict]:
  """The cross-run report's series of a run (a method's `series`): its
  healthy members grouped by `label(member)`, each group's points
  {x(member): [members]}; the group named `reference` (a dense network)
  is drawn as a line. Diverged members are left out, as in the means."""
  groups = {}
  for m in summary.get('members', []):
    if not m.get('diverged'):
      groups.setdefault(label(m), {}).setdefault(x(m), []).append(m)
  return [{'label': name, 'points': points, 'reference': name == reference}
          for name, points in groups.items()]


def column(entry: dict, seeds: int | None = None, collapsed: str = '') -> str:
  """A table's health cell for an aggregated `entry`: 'diverged k/n' (n:
  the entry's 'members', else `seeds`) and 'collapsed c/<seeds>' followed
  by `collapsed` when it counts any; 'ok' when neither."""
  out = []
  if entry.get('diverged'):
    out.append(f"diverged {entry['diverged']}/{entry.get('members', seeds)}")
  if entry.get('collapsed'):
    out.append(f"collapsed {entry['collapsed']}/{seeds}{collapsed}")
  return ', '.join(out) or 'ok'


def flag_diverged(records: list[dict], key: Callable[[dict], Any],
                  loss: str = 'train_loss') -> set:
  """Marks diverged members in `records` (in place); returns their keys.

  A member (grouped by `key(record)`) diverges at the first record whose
  `loss` is not finite, exceeds `DIVERGED_FACTOR` times its first recorded
  loss, or exceeds `LOSS_LIMIT`; that record and every later one of the
  member get `'diverged': True`. Healthy records are left exactly as they
  were.
  """
  first, bad = {}, set()
  for rec in records:
    k = key(rec)
    value = rec.get(loss)
    if value is None:
      continue
    start = first.setdefault(k, value)
    if k in bad or not math.isfinite(value) or abs(value) > LOSS_LIMIT or (
        math.isfinite(start) and abs(value) > DIVERGED_FACTOR * max(
            abs(start), 1e-12)):
      bad.add(k)
      rec['diverged'] = True
  return bad
