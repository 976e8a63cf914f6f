"""Numbers over seeds: mean ± std, and the markdown tables every report prints.

Pure functions of Python numbers; no file I/O (the writers are in
`ticketjax.run.records`).
"""
import math
from typing import Mapping

import numpy as np


def mean_std(values) -> dict:
  """{'mean', 'std' (population, ddof=0), 'n', 'values'} of a list."""
  values = [float(v) for v in values]
  if not values:
    return {'mean': math.nan, 'std': math.nan, 'n': 0, 'values': []}
  arr = np.asarray(values)
  return {'mean': float(arr.mean()), 'std': float(arr.std()),
          'n': len(values), 'values': values}


def format_mean_std(stats: Mapping, scale: float = 100.0,
                    digits: int = 1) -> str:
  """'65.3 ± 1.2' from a mean_std dict (scaled, e.g. to percent); '65.3'
  from one value (no spread to show); 'n/a' when no value went into it
  (e.g. every member diverged)."""
  if stats.get('mean') is None or not math.isfinite(stats['mean']):
    return 'n/a'
  if stats.get('n') == 1:
    return f"{stats['mean'] * scale:.{digits}f}"
  return (f"{stats['mean'] * scale:.{digits}f} ± "
          f"{stats['std'] * scale:.{digits}f}")


def markdown_table(header: list[str], rows: list[list]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


def seeds(n) -> str:
  """'1 seed', '4 seeds' ('? seeds' for an unknown count)."""
  return f"{n} seed{'' if n == 1 else 's'}"
