"""Edge-Popup supermasks of frozen random networks (the `edgepopup` job).

`core` holds the pure pieces (exact per-layer counts, top-k masks,
straight-through weights), `job` the driver (k x seed members, the
dense-trained baseline, resume), `report` its summary, table and plots,
`steps` the newest checkpoint of a phase (orbax's CheckpointManager).
"""
from ticketjax.methods.edgepopup.job import check
from ticketjax.methods.edgepopup.job import NON_SEMANTIC
from ticketjax.methods.edgepopup.job import PLOTS
from ticketjax.methods.edgepopup.job import run
from ticketjax.methods.edgepopup.job import SEEDS
from ticketjax.methods.edgepopup.report import plots
from ticketjax.methods.edgepopup.report import table


def series(summary: dict) -> list[dict]:
  """Edge-Popup (k -> members) and its dense-trained baseline.

  Diverged members are left out, as in the summary's means.
  """
  groups = {}
  for m in summary.get('members', []):
    if m.get('diverged'):
      continue
    label = ('Edge-Popup' if m.get('method', 'edgepopup') == 'edgepopup'
             else 'dense-trained')
    groups.setdefault(label, {}).setdefault(m.get('k', 1.0), []).append(m)
  return [{'label': label, 'points': points}
          for label, points in groups.items()]


__all__ = ['NON_SEMANTIC', 'PLOTS', 'SEEDS', 'check', 'plots', 'run',
           'series', 'table']
