"""Linear mode connectivity: the instability analysis (the `lmc` job).

`path` holds the interpolation math (alphas, barrier, path metrics),
`core` the copy layout and summaries, `job` the driver (parent trajectory,
copies per rewind step, pairwise barriers, resume), `report` its table and
plots.
"""
from ticketjax.methods.lmc.job import check
from ticketjax.methods.lmc.job import NON_SEMANTIC
from ticketjax.methods.lmc.job import PLOTS
from ticketjax.methods.lmc.job import run
from ticketjax.methods.lmc.job import SEEDS
from ticketjax.methods.lmc.report import plots
from ticketjax.methods.lmc.report import table


def series(summary: dict) -> list[dict]:
  """No accuracy-vs-density points: the report plots its barriers."""
  del summary
  return []


__all__ = ['NON_SEMANTIC', 'PLOTS', 'SEEDS', 'check', 'plots', 'run',
           'series', 'table']
