"""Iterative magnitude pruning with rewinding and controls (the `imp` job).

`core` holds the pure pieces (config, pruning a level, start states), `job`
the driver (levels, checkpoints, resume), `extend` the growth of a run to
more seeds, `report` its tables and plots.
"""
from ticketjax.core import grid as grid_lib
from ticketjax.methods.imp.job import check
from ticketjax.methods.imp.job import run


def series(summary: dict) -> list[dict]:
  """One series per branch (and grid point): level -> members."""
  groups = {}
  for m in summary.get('members', []):
    point = ' '.join(f'{grid_lib.SHORT[n]}={m[n]:g}'
                     for n in summary.get('grid', {}))
    label = f"{m['branch']} {point}".strip()
    groups.setdefault(label, {}).setdefault(m['level'], []).append(m)
  return [{'label': label, 'points': points}
          for label, points in groups.items()]


__all__ = ['check', 'run', 'series']
