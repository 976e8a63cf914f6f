"""Pruning at initialization: the pure pieces.

A PaI search prunes the *initial* weights once, by a score from the
registry (`core/scores.py`: magnitude, random, snip, ...), to each target
density, then trains the sparse network from that init with the mask fixed.
Every (density, seed) pair is a member of one compiled program; a seed has
the same init and data order at every density, so densities compare on
equal footing.
"""
import dataclasses

from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import scores as scores_lib

# fold_in tag of a seed's scoring key (random scores), off its init key
SCORE_TAG = 2_000_003


@dataclasses.dataclass(frozen=True)
class PaiConfig:
  """What a pruning-at-init search does.

  Attributes:
    densities: target densities (fraction of the prunable weights kept),
      one member per density and seed.
    score: a `scores.SCORES` name.
    scope: 'layerwise' (each layer keeps the density) or 'global' (the
      prunable layers pooled keep it).
    prune_exclude: path substrings of kernels never pruned.
    score_batch: training examples a data-dependent score sees (the first
      ones of the training split).
  """
  densities: tuple[float, ...] = (0.5, 0.2, 0.1)
  score: str = 'magnitude'
  scope: str = 'layerwise'
  prune_exclude: tuple[str, ...] = ()
  score_batch: int = 256

  def validate(self) -> None:
    """Raises ValueError naming what is wrong and what is valid."""
    if not self.densities:
      raise ValueError('pai.densities is empty; give target densities in '
                       '(0, 1]')
    bad = [d for d in self.densities if not 0.0 < d <= 1.0]
    if bad:
      raise ValueError(f'pai.densities {bad} lie outside (0, 1]: a density '
                       'is the fraction of weights kept')
    if len(set(self.densities)) != len(self.densities):
      raise ValueError(f'pai.densities {list(self.densities)} repeat a value')
    scores_lib.get(self.score)
    pruning.check_scope(self.scope)
    if int(self.score_batch) < 1:
      raise ValueError(f'pai.score_batch must be >= 1, got {self.score_batch}')

  @property
  def prunable(self) -> masks_lib.LeafFilter:
    return masks_lib.make_filter(exclude=self.prune_exclude)


def prune_at_init(cfg: PaiConfig, ctx: scores_lib.ScoreContext, density):
  """The mask keeping `density` of `ctx.mask`'s prunable survivors by
  `cfg.score` within `cfg.scope` (`density` may be traced: a vmapped sweep)."""
  return pruning.by_score(cfg.score, cfg.scope, ctx, 1.0 - density,
                          cfg.prunable)
