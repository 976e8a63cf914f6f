"""Ticket transfer (Morcos et al. 2019): the pure pieces.

A ticket (mask and initial weights theta_0) found by IMP on a *source* data
set is trained on a *target* data set of the same input shape, next to, at
the same per-layer densities:
  transferred  the source ticket's mask on theta_0;
  target       the target's own IMP ticket of the same level (when a target
               IMP run is given): the ticket the target would find itself;
  reinit       the transferred mask on a fresh random init;
  random       a random mask with the transferred mask's per-layer counts,
               on theta_0.
Both IMP runs use this run's model, seed and first seed, so theta_0 of seed
s is the same network in all three runs; members are (level, branch, seed),
level-major, all trained in one compiled program.
"""
import dataclasses

import jax

from ticketjax.core import masks as masks_lib
from ticketjax.methods.imp import core as imp_lib

BRANCHES = ('transferred', 'target', 'reinit', 'random')
# fold_in tags of a seed's randomness (with its lineage key)
_REINIT_TAG = 3_000_017
_RANDOM_TAG = 3_000_019


@dataclasses.dataclass(frozen=True)
class TransferConfig:
  """The `config.transfer` section.

  Attributes:
    source_run: the IMP run folder (`<workdir>/imp-<hash>`) on the source
      data whose tickets are transferred.
    target_run: an IMP run folder on this run's (target) data, for the
      target's own tickets; '' leaves the 'target' branch out.
    levels: the IMP levels (>= 1) whose tickets are transferred; both runs
      must have finished them.
    controls: branches next to 'transferred' (of 'reinit', 'random').
  """
  source_run: str = ''
  target_run: str = ''
  levels: tuple[int, ...] = ()
  controls: tuple[str, ...] = ('reinit', 'random')

  def validate(self) -> None:
    if not self.source_run:
      raise ValueError('transfer.source_run is empty: give the IMP run '
                       'folder (<workdir>/imp-<hash>) of the source data')
    levels = list(self.levels)
    if not levels or any(isinstance(v, bool) or not isinstance(v, int)
                         or v < 1 for v in levels):
      raise ValueError(f'transfer.levels must list IMP levels >= 1, got '
                       f'{levels}')
    if levels != sorted(set(levels)):
      raise ValueError(f'transfer.levels must increase, got {levels}')
    bad = [c for c in self.controls if c not in ('reinit', 'random')]
    if bad:
      raise ValueError(f"unknown transfer.controls {bad}; valid: 'reinit', "
                       "'random'")

  def branches(self) -> tuple[str, ...]:
    return (('transferred',) + (('target',) if self.target_run else ())
            + tuple(self.controls))


def start_mask(branch: str, level, transferred, target, lineage_key,
               prunable):
  """One seed's mask of `branch` at `level` (traced under vmap)."""
  if branch == 'transferred':
    return transferred
  if branch == 'target':
    return target
  if branch == 'reinit':
    return transferred
  counts = masks_lib.counts(transferred, prunable)['kept']
  key = jax.random.fold_in(jax.random.fold_in(lineage_key, _RANDOM_TAG),
                           level)
  return imp_lib.random_to_counts(key, masks_lib.ones_like(transferred),
                                  counts, prunable)


def reinit_key(lineage_key, level):
  return jax.random.fold_in(jax.random.fold_in(lineage_key, _REINIT_TAG),
                            level)
