"""Early-Bird tickets (You et al., ICLR 2020): the pure pieces.

While a network trains, the mask the pruning rule would give *now* is
taken at the start and after every epoch; the ticket is declared at the
first epoch whose mask lies within `epsilon` of each of the `window - 1`
masks before it (`core/early_bird.py`). The mask is unstructured magnitude
(layerwise or global) or, for a network with BatchNorm, whole channels by
their BatchNorm |scale| under the network-slimming L1 penalty on those
scales (`l1`, 1e-4 in the paper). The distance counts weights for
unstructured masks and channels for channel masks (the paper's
normalized Hamming distance over channels), among the entries the rule
may still cut: the search's start mask's survivors (all of them from
dense; an IMP level's survivors, so the weights pruned at earlier levels,
the same in every mask, do not dilute it).

Two searches share these pieces (`EarlyBirdConfig.levels`):
- one-shot (levels 0): one dense training tracks every target density at
  once (the paper's three trackers); the Early-Bird mask of each density
  is compared with the mask the same rule gives after full training.
- early-bird IMP (levels L): each IMP level trains its ticket only until
  the mask that prunes `rate` of its survivors settles, instead of the
  full `train.steps`, and prunes there.
"""
import dataclasses

import jax
import jax.numpy as jnp

from ticketjax.core import early_bird
from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import scores as scores_lib
from ticketjax.core import structure as structure_lib
from ticketjax.core.types import Mask, PyTree

SCORES = ('magnitude', 'bn_scale')


@dataclasses.dataclass(frozen=True)
class EarlyBirdConfig:
  """What an Early-Bird search does.

  Attributes:
    densities: one-shot target densities (fractions of the prunable
      weights, or of the channels with 'channels', kept); one tracker each.
    score: 'magnitude' or 'bn_scale' (channels by BatchNorm |scale|).
    scope: 'layerwise' or 'global'.
    structure: 'unstructured' or 'channels' (`core/structure.py`).
    prune_exclude: path substrings of kernels never pruned.
    window: masks in the FIFO (5).
    epsilon: the largest distance, newest mask to each older one, at which
      the ticket is declared (0.1).
    l1: the network-slimming penalty l1 * sum |BatchNorm scale| added to the
      training loss of the search (0: none; 1e-4 in the paper). Retraining
      the ticket has no penalty.
    check_every: steps between mask checks (0: one epoch).
    levels: 0 for one-shot tickets at `densities`; L >= 1 for early-bird
      IMP, L levels each pruning `rate` of the survivors.
    rate: early-bird IMP's pruning rate per level.
  """
  densities: tuple[float, ...] = (0.5, 0.2, 0.1)
  score: str = 'magnitude'
  scope: str = 'layerwise'
  structure: str = 'unstructured'
  prune_exclude: tuple[str, ...] = ()
  window: int = early_bird.WINDOW
  epsilon: float = early_bird.EPSILON
  l1: float = 0.0
  check_every: int = 0
  levels: int = 0
  rate: float = 0.2

  def validate(self) -> None:
    """Raises ValueError naming what is wrong and what is valid."""
    if int(self.levels) < 0:
      raise ValueError(f'early_bird.levels must be >= 0 (0: one-shot), got '
                       f'{self.levels}')
    if not self.levels:
      if not self.densities:
        raise ValueError('early_bird.densities is empty; give target '
                         'densities in (0, 1)')
      bad = [d for d in self.densities if not 0.0 < d < 1.0]
      if bad:
        raise ValueError(f'early_bird.densities {bad} lie outside (0, 1): a '
                         'density is the fraction kept')
      if len(set(self.densities)) != len(self.densities):
        raise ValueError(f'early_bird.densities {list(self.densities)} '
                         'repeat a value')
    elif not 0.0 < float(self.rate) < 1.0:
      raise ValueError(f'early_bird.rate must lie in (0, 1) (the fraction '
                       f'of survivors pruned per level), got {self.rate}')
    if self.score not in SCORES:
      raise ValueError(f'early_bird.score is {self.score!r}; valid scores '
                       f'are {list(SCORES)}')
    pruning.check_scope(self.scope)
    st = structure_lib.parse(self.structure)
    if st.kind == 'nm':
      raise ValueError('early_bird.structure must be unstructured or '
                       f'channels, got {self.structure!r}')
    if self.score == 'bn_scale' and st.kind != 'channels':
      raise ValueError("early_bird.score 'bn_scale' ranks channels: set "
                       "early_bird.structure='channels'")
    if int(self.window) < 2:
      raise ValueError(f'early_bird.window must be >= 2, got {self.window}')
    if not 0.0 <= float(self.epsilon) < 1.0:
      raise ValueError(f'early_bird.epsilon must lie in [0, 1), got '
                       f'{self.epsilon}')
    if float(self.l1) < 0.0:
      raise ValueError(f'early_bird.l1 must be >= 0, got {self.l1}')
    if int(self.check_every) < 0:
      raise ValueError(f'early_bird.check_every must be >= 0 (0: one epoch), '
                       f'got {self.check_every}')

  @property
  def prunable(self) -> masks_lib.LeafFilter:
    return masks_lib.make_filter(exclude=self.prune_exclude)

  @property
  def channels(self) -> bool:
    return structure_lib.parse(self.structure).kind == 'channels'

  def targets(self) -> tuple[float, ...]:
    """The rates a search's trackers prune of the start mask's survivors:
    1 - density per one-shot density, or IMP's one rate."""
    if self.levels:
      return (float(self.rate),)
    return tuple(1.0 - float(d) for d in self.densities)


def scale_leaves(params: PyTree) -> list[str]:
  """Paths of the BatchNorm scales that follow a convolution
  (`structure.norm_layer`): what the L1 penalty and 'bn_scale' read."""
  paths = masks_lib.leaf_paths(params)
  norms = {structure_lib.norm_layer(p) for p in paths
           if p.endswith('/kernel')} - {None}
  return [p for p in paths if p.rsplit('/', 1)[0] in norms
          and p.endswith('/scale')]


def l1_penalty(strength: float, params: PyTree):
  """`penalty(params, model_state) -> strength * sum |BatchNorm scale|`
  (`Trainer.penalty`); its gradient is network slimming's subgradient
  strength * sign(scale). ValueError if the model has no BatchNorm after a
  convolution."""
  wanted = set(scale_leaves(params))
  if not wanted:
    raise ValueError('early_bird.l1 penalizes BatchNorm scales, and this '
                     'model has none after a convolution; use a model with '
                     'BatchNorm (mnist1d_cnn with batch_norm=True, resnet20) '
                     'or set early_bird.l1=0')

  def penalty(params, model_state):
    del model_state
    leaves = [x for p, x in zip(masks_lib.leaf_paths(params),
                                jax.tree.leaves(params)) if p in wanted]
    return strength * sum(jnp.sum(jnp.abs(x)) for x in leaves)

  return penalty


def ticket(cfg: EarlyBirdConfig, params: PyTree, mask: Mask, rate) -> Mask:
  """The mask pruning `rate` of `mask`'s survivors from `params` by the
  search's score, scope and structure (one member; `rate` may be traced)."""
  ctx = scores_lib.ScoreContext(masks_lib.apply(params, mask), mask)
  return pruning.by_score(cfg.score, cfg.scope, ctx, rate, cfg.prunable,
                          cfg.structure)


def bits(cfg: EarlyBirdConfig, mask: Mask) -> jax.Array:
  """The entries the distance compares, as one boolean vector: the
  prunable weights, or with 'channels' the prunable units (the output
  layer is never cut, so it is left out)."""
  out = []
  for path, m in zip(masks_lib.leaf_paths(mask), jax.tree.leaves(mask)):
    if not cfg.prunable(path, m):
      continue
    if cfg.channels:
      if structure_lib.is_output(path):
        continue
      m = jnp.any(m, axis=tuple(range(m.ndim - 1)))
    out.append(m.reshape(-1))
  return jnp.concatenate(out)


def check(cfg: EarlyBirdConfig, fifo: tuple) -> early_bird.Check:
  """`early_bird.check` on a FIFO of `bits` vectors."""
  return early_bird.check(tuple({'bits': b} for b in fifo), cfg.window,
                          cfg.epsilon, prunable=lambda path, leaf: True)
