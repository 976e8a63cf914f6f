"""Pruning at initialization (the `pai` job): score, prune once, train.

`core` holds the config and the pure pruning of an init (any score of the
`core/scores.py` registry, layerwise or global), `job` the driver on the
shared run lifecycle (density x seed members in one program, table,
plots).
"""
from ticketjax.methods.pai.job import check
from ticketjax.methods.pai.job import NON_SEMANTIC
from ticketjax.methods.pai.job import plots
from ticketjax.methods.pai.job import PLOTS
from ticketjax.methods.pai.job import run
from ticketjax.methods.pai.job import SEEDS
from ticketjax.methods.pai.job import table


def series(summary: dict) -> list[dict]:
  """One series: target density -> its members over seeds."""
  points = {}
  for m in summary.get('members', []):
    if not m.get('diverged'):
      points.setdefault(m['density_target'], []).append(m)
  return [{'label': f"PaI {summary['score']} ({summary['scope']})",
           'points': points}]


__all__ = ['NON_SEMANTIC', 'PLOTS', 'SEEDS', 'check', 'plots', 'run',
           'series', 'table']
