"""Pruning at initialization (and one-shot after training): the pure pieces.

A PaI search prunes the *initial* weights once, by a score from the
registry (`core/scores.py`: magnitude, random, snip, grasp, synflow), to
each target density under a mask structure (`core/structure.py`), then
trains the sparse network from that init with the mask fixed. With
`prune_at='trained'` the score is taken of the weights after dense
training instead and the mask trains from the same init: one-shot
pruning after training (with magnitude, Frankle & Carbin's one-shot
ticket).

The sanity checks of Frankle et al. (ICLR 2021) are control branches
trained next to the original mask, on the same inits and data order:
`shuffle` (each layer's mask shuffled, same counts), `reinit` (the
original mask on a fresh init of the same distribution) and `invert`
(the lowest scores kept instead of the highest).

Every (branch, density, seed) triple is a member of one compiled program;
a seed has the same init and data order at every density and branch, so
they compare on equal footing.
"""
import dataclasses

import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import scores as scores_lib
from ticketjax.core import structure as structure_lib

# fold_in tag of a seed's scoring key (random scores), off its init key
SCORE_TAG = 2_000_003
# fold_in tags, off a seed's scoring key: the shuffle control's key; and
# off its init key: the reinit control's init
SHUFFLE_TAG = 2_000_011
REINIT_TAG = 2_000_029
CONTROLS = ('shuffle', 'reinit', 'invert')
PRUNE_AT = ('init', 'trained')
# rounds of a score by default (Tanaka et al. 2020 iterate SynFlow 100 times)
ROUNDS = {'synflow': 100}


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
    rounds: prune in this many rounds, each re-scoring the pruned network,
      to the densities d^(r/rounds) (the exponential schedule); 0 = the
      score's own (`ROUNDS`: 100 for SynFlow, else 1).
    structure: 'unstructured', 'N:M' or 'channels' (`core/structure.py`;
      with 'channels' a density is a fraction of units to keep).
    controls: sanity-check branches from CONTROLS trained next to the
      original masks.
    prune_at: 'init' (score the init) or 'trained' (score the weights after
      `train.steps` of dense training, then train the mask from the init).
  """
  densities: tuple[float, ...] = (0.5, 0.2, 0.1)
  score: str = 'magnitude'
  scope: str = 'layerwise'
  prune_exclude: tuple[str, ...] = ()
  score_batch: int = 256
  rounds: int = 0
  structure: str = 'unstructured'
  controls: tuple[str, ...] = ()
  prune_at: str = 'init'

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
    if int(self.rounds) < 0:
      raise ValueError(f'pai.rounds must be >= 0 (0: the score\'s own), got '
                       f'{self.rounds}')
    st = structure_lib.parse(self.structure)
    above = [d for d in self.densities if st.kind == 'nm' and d > st.n / st.m]
    if above:
      raise ValueError(f'pai.densities {above} exceed what {st.name} keeps '
                       f'(at most {st.n} of every {st.m} weights: density '
                       f'<= {st.n / st.m:g})')
    bad = [c for c in self.controls if c not in CONTROLS]
    if bad or len(set(self.controls)) != len(self.controls):
      raise ValueError(
          f'pai.controls {list(self.controls)}: '
          + (f'unknown {bad}' if bad else 'a name repeats')
          + f'; valid controls are {list(CONTROLS)}, each at most once')
    if self.prune_at not in PRUNE_AT:
      raise ValueError(f'pai.prune_at is {self.prune_at!r}; valid values are '
                       f'{list(PRUNE_AT)}')

  @property
  def branches(self) -> tuple[str, ...]:
    """Branch names, the original masks first."""
    return ('original',) + tuple(self.controls)

  @property
  def num_rounds(self) -> int:
    return int(self.rounds) or ROUNDS.get(self.score, 1)

  @property
  def prunable(self) -> masks_lib.LeafFilter:
    return masks_lib.make_filter(exclude=self.prune_exclude)


def prune_at_init(cfg: PaiConfig, ctx: scores_lib.ScoreContext, density,
                  invert: bool = False):
  """The mask keeping `density` of `ctx.mask`'s prunable survivors by
  `cfg.score` within `cfg.scope` under `cfg.structure` (`density` may be
  traced: a vmapped sweep); `invert` keeps the lowest scores instead.

  In one round it removes floor((1 - density) * n + 0.5) of the n
  survivors (of each layer, or of the pool). In R rounds (`num_rounds`),
  round r re-scores the network pruned so far and keeps
  n - floor((1 - density^(r/R)) * n + 0.5) of the *initial* n, so the last
  round ends with exactly the one-round count (unstructured; the N:M and
  channel constraints round per group and per unit, see `core/structure`).
  """
  rounds = cfg.num_rounds
  if rounds == 1:
    return pruning.by_score(cfg.score, cfg.scope, ctx, 1.0 - density,
                            cfg.prunable, cfg.structure, invert)
  start = masks_lib.counts(ctx.mask, cfg.prunable)

  def keep(n, r):  # survivors after round r of n at the start
    n = jnp.asarray(n, jnp.float32)
    return n - jnp.floor((1.0 - density ** (r / rounds)) * n + 0.5)

  def rate(now, n, r):
    now = jnp.asarray(now, jnp.float32)
    return (now - keep(n, r)) / jnp.maximum(now, 1.0)

  def one_round(r, mask):
    now = masks_lib.counts(mask, cfg.prunable)
    if cfg.scope == 'global':
      rates = rate(now['kept/total'], start['kept/total'], r + 1)
    else:
      rates = {p: rate(now['kept'][p], start['kept'][p], r + 1)
               for p in start['kept']}
    key = None if ctx.key is None else jax.random.fold_in(ctx.key, r)
    now_ctx = dataclasses.replace(
        ctx, params=masks_lib.apply(ctx.params, mask), mask=mask, key=key)
    return pruning.by_score(cfg.score, cfg.scope, now_ctx, rates,
                            cfg.prunable, cfg.structure, invert)

  return jax.lax.fori_loop(0, rounds, one_round, ctx.mask)
