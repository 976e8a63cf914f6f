"""Continuous Sparsification, a vmapped lambda sweep (the `cs` job).

`core` holds the pure pieces (soft masks, beta schedule, penalty), `job`
the driver on `lifecycle.Run` (rounds, ticket retraining, resume), `report`
the summary, table and plot.
"""
from ticketjax.methods.cs.job import check
from ticketjax.methods.cs.job import NON_SEMANTIC
from ticketjax.methods.cs.job import PLOTS
from ticketjax.methods.cs.job import run
from ticketjax.methods.cs.job import SEEDS
from ticketjax.methods.cs.report import plots
from ticketjax.methods.cs.report import series
from ticketjax.methods.cs.report import table

__all__ = ['NON_SEMANTIC', 'PLOTS', 'SEEDS', 'check', 'plots', 'run',
           'series', 'table']
