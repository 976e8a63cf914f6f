"""Continuous Sparsification, a vmapped lambda sweep (the `cs` job).

`core` holds the pure pieces (soft masks, beta schedule, penalty), `job`
the driver (rounds, ticket retraining, resume, table and plot).
"""
from ticketjax.methods.cs.job import check
from ticketjax.methods.cs.job import run


def series(summary: dict) -> list[dict]:
  """One series: lambda -> that lambda's tickets over seeds."""
  points = {}
  for m in summary.get('members', []):
    points.setdefault(m['lambda'], []).append(m)
  return [{'label': 'CS', 'points': points}]


__all__ = ['check', 'run', 'series']
