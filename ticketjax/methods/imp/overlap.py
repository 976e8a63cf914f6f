"""Mask overlap of IMP tickets, for the cross-run report.

`cross_run_section` (the IMP plug-in's, `methods/registry.py`) is the
Jaccard overlap between the seeds' tickets of each level (of each grid
point); `ticket_masks` and `jaccard` also serve CS's comparison with IMP
tickets (`methods/cs/report.py`). All read the runs' checkpoints.
"""
import jax
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.reports import run_folders
from ticketjax.run import store

OVERLAP_HEADER = ['masks', 'weights remaining (%)', 'Jaccard', 'pairs']


def ticket_masks(run: dict, level: int):
  """The ticket masks of an IMP run's `level` (its checkpoint; lineage
  g * S + s of a grid on the leading axis)."""
  raw = store.Checkpoints(run['run_dir']).restore_raw(f'level_{level:03d}')
  return raw['ticket']['mask']


def jaccard(masks_a, i: int, masks_b, j: int) -> float:
  """The Jaccard overlap of member i of `masks_a` and member j of
  `masks_b` (over their prunable kernels)."""
  take = lambda tree, k: jax.tree.map(
      lambda v: np.asarray(v)[k].astype(bool), tree)
  return float(masks_lib.jaccard(take(masks_a, i), take(masks_b, j)))


def cross_run_section(runs: list[dict], out_dir: str) -> list[str]:
  """The cross-run report's section of the IMP runs (`reports/
  cross_run.py`): the mask overlap between the seeds of each level (of
  each grid point), from the checkpoints."""
  del out_dir  # (no figure)
  rows = []
  for run in [r for r in runs if r['job'] == 'imp']:
    points = run.get('points') or [{'label': '', 'levels': run['levels']}]
    num_seeds = run['num_seeds']
    for g, point in enumerate(points):  # lineage g * S + s
      seeds = range(g * num_seeds, (g + 1) * num_seeds)
      for entry in point['levels'][1:] if num_seeds > 1 else ():
        mask_S = ticket_masks(run, entry['level'])
        vals = [jaccard(mask_S, a, mask_S, b)
                for a in seeds for b in seeds if a < b]
        where = ' '.join(filter(None, (run_folders.name(run),
                                       point['label'])))
        rows.append([f"{where} level {entry['level']}: seed vs seed",
                     f"{100 * entry['ticket']['density']:.2f}",
                     f'{np.mean(vals):.3f}', len(vals)])
  if not rows:
    return []
  return ['\n## Mask overlap between the seeds of IMP runs (Jaccard over '
          'prunable kernels)\n', stats.markdown_table(OVERLAP_HEADER, rows)]
