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

# 'chance': what masks drawn at random with the same per-layer counts
# would give (`jaccard`), the level a Jaccard means something above
OVERLAP_HEADER = ['masks', 'weights remaining (%)', 'Jaccard', 'chance',
                  'pairs']
OVERLAP_NOTE = ('Jaccard over prunable kernels; chance: |A ∩ B| / |A ∪ B| '
                'expected of random masks with the same per-layer counts.')


def ticket_masks(run: dict, level: int):
  """The ticket masks of an IMP run's `level` (its checkpoint; lineage
  g * S + s of a grid on the leading axis)."""
  raw = store.Checkpoints(run['run_dir']).restore_raw(f'level_{level:03d}')
  return raw['ticket']['mask']


def jaccard(masks_a, i: int, masks_b, j: int) -> tuple[float, float]:
  """The Jaccard overlap of member i of `masks_a` and member j of
  `masks_b` over their prunable kernels, and its chance level: E|A ∩ B| /
  E|A ∪ B| for masks drawn at random with the same per-layer counts (a
  layer of n weights keeping ka and kb shares ka * kb / n in expectation).
  """
  take = lambda tree, k: jax.tree.map(
      lambda v: np.asarray(v)[k].astype(bool), tree)
  a, b = take(masks_a, i), take(masks_b, j)
  both = either = 0.0
  for path, x, y in zip(masks_lib.leaf_paths(a), jax.tree.leaves(a),
                        jax.tree.leaves(b)):
    if masks_lib.is_kernel(path, x):
      shared = float(x.sum()) * float(y.sum()) / x.size
      both, either = both + shared, either + x.sum() + y.sum() - shared
  return (float(masks_lib.jaccard(a, b)),
          both / either if either else 1.0)


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
        vals = np.array([jaccard(mask_S, a, mask_S, b)
                         for a in seeds for b in seeds if a < b])
        where = ' '.join(filter(None, (run_folders.name(run),
                                       point['label'])))
        rows.append([f"{where} level {entry['level']}: seed vs seed",
                     f"{100 * entry['ticket']['density']:.2f}",
                     *(f'{v:.3f}' for v in vals.mean(0)), len(vals)])
  if not rows:
    return []
  return ['\n## Mask overlap between the seeds of IMP runs\n',
          OVERLAP_NOTE + '\n', stats.markdown_table(OVERLAP_HEADER, rows)]
