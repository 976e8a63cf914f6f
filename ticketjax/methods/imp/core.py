"""Iterative Magnitude Pruning: the pure pieces of one level of a search.

A search runs S seeds side by side. Level 0 trains the dense network from
its init (saving the step-0 state and, for late rewinding, the step-k state
as rewind points). Every later level L prunes the previous level's final
weights with the configured rule and rates, builds the start state of the
ticket and of each control *branch*, and trains them all, branch-major on
one stacked axis (member b*S + s is branch b of seed s), in one compiled
program.

Rewind modes (where level L starts, for mask m):
  init      weights of step 0, fresh optimizer, step 0 (Frankle & Carbin);
  step      the whole state of step k of level 0: weights, optimizer
            moments, BatchNorm statistics, step k (Frankle et al. 2020);
  lr        the previous level's final weights, with the optimizer state and
            step of the rewind point, so the LR schedule is replayed from k
            (Renda et al. 2020);
  finetune  the previous level's final state, training T - k more steps with
            the schedule held at its end (Renda et al.'s baseline).

Controls (branches), for chosen levels, each with the ticket's start state
except for what it changes:
  reinit    the ticket's mask, a fresh random init (a new draw per level);
  shuffle   each layer's mask randomly permuted (same counts), ticket init;
  random    iterative random pruning: a random subset of the previous
            level's random mask with the ticket's per-layer counts;
  finetune  the ticket's mask on the previous level's *trained* weights
            theta_j ("standard pruning"), started as the rewind mode starts
            the ticket: with 'init', a fresh optimizer at step 0, i.e.
            fine-tuning for T steps (at a constant learning rate, Frankle &
            Carbin's Adam, that is fine-tuning at the final rate); with
            'step', the rewind point's optimizer state and step, i.e.
            Renda et al.'s learning-rate rewinding. Not with the 'lr' and
            'finetune' modes, whose ticket already starts from theta_j.
  invert    (not in the default set) the previous level's ticket mask
            pruned at the same rates keeping the *lowest* scores of the
            rule (Frankle et al. 2021's inversion), ticket init; one step
            from the ticket's lineage at each level, not a lineage of its
            own.
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import structure as structure_lib
from ticketjax.core import selection
from ticketjax.core.train import TrainState

REWIND_MODES = ('init', 'step', 'lr', 'finetune')
CONTROLS = ('reinit', 'shuffle', 'random', 'finetune')  # the default set
VALID_CONTROLS = CONTROLS + ('invert',)
# rule -> (score, scope) of the rules the 'invert' control can invert
_INVERTIBLE = {'layerwise_magnitude': ('magnitude', 'layerwise'),
               'global_magnitude': ('magnitude', 'global'),
               'global_magnitude_normalized': ('magnitude_normalized',
                                               'global')}

# fold_in tags of the per-level randomness of a seed (with its root key)
_REINIT_TAG = 1_000_003
_SHUFFLE_TAG = 1_000_033
_RANDOM_TAG = 1_000_037


@dataclasses.dataclass(frozen=True)
class ImpConfig:
  """What an IMP search does (the number of levels is how far it goes).

  Attributes:
    levels: pruning levels after the dense level 0.
    rule: a `pruning.PRUNERS` name.
    rates: rate spec (one number, or a mapping; see `pruning`).
    rewind: one of REWIND_MODES.
    rewind_step: k, the step of the rewind point (0 for 'init').
    target_density: stop early once the ticket's density is at or below
      this (0 disables).
    prune_exclude: path substrings of kernels never pruned (e.g. 'output').
    controls: branches from VALID_CONTROLS trained next to the ticket.
    control_levels: levels (>= 1) with controls; empty = every level.
    structure: the mask structure every level's pruning keeps
      (`core/structure.py`): 'unstructured', 'N:M' (e.g. '2:4': the first
      level prunes to at most N per group, later levels go below N/M
      within that pattern) or 'channels' (whole units; the rates are
      fractions of units).
  """
  levels: int
  rule: str = 'layerwise_magnitude'
  rates: object = 0.2
  rewind: str = 'init'
  rewind_step: int = 0
  target_density: float = 0.0
  prune_exclude: tuple[str, ...] = ()
  controls: tuple[str, ...] = CONTROLS
  control_levels: tuple[int, ...] = ()
  structure: str = 'unstructured'

  def validate(self, total_steps: int, params=None,
               final_lr_positive: bool = True) -> None:
    """Raises ValueError naming what is wrong and what is valid."""
    if int(self.levels) < 0:
      raise ValueError(f'imp.levels must be >= 0, got {self.levels}')
    pruning.get_pruner(self.rule)
    if self.rewind not in REWIND_MODES:
      raise ValueError(f'unknown rewind mode {self.rewind!r}; valid modes '
                       f'are {list(REWIND_MODES)}')
    if not 0 <= self.rewind_step < total_steps:
      where = ('is negative' if self.rewind_step < 0
               else 'is past the end of training')
      raise ValueError(
          f'imp.rewind_step {self.rewind_step} {where}: it must lie in '
          f'[0, {total_steps}) (train.steps)')
    if self.rewind == 'init' and self.rewind_step:
      raise ValueError("rewind mode 'init' rewinds to step 0; set "
                       "imp.rewind='step' to rewind to step "
                       f'{self.rewind_step}')
    if self.rewind == 'finetune' and not final_lr_positive:
      raise ValueError("rewind mode 'finetune' trains at the schedule's final "
                       'learning rate, which is 0 for this schedule; use a '
                       "'constant' or 'step' schedule")
    bad = [c for c in self.controls if c not in VALID_CONTROLS]
    if bad:
      raise ValueError(f'unknown controls {bad}; valid controls are '
                       f'{list(VALID_CONTROLS)}')
    if 'invert' in self.controls and self.rule not in _INVERTIBLE:
      raise ValueError(f"the 'invert' control inverts a magnitude rule "
                       f'({sorted(_INVERTIBLE)}), not {self.rule!r}')
    if 'finetune' in self.controls and self.rewind in ('lr', 'finetune'):
      raise ValueError(f"the 'finetune' control is the ticket itself in "
                       f'rewind mode {self.rewind!r} (both start from the '
                       "trained weights); use it with 'init' or 'step'")
    if not 0.0 <= self.target_density < 1.0:
      raise ValueError('imp.target_density must lie in [0, 1), got '
                       f'{self.target_density}')
    if any(int(level) < 1 for level in self.control_levels):
      raise ValueError('imp.control_levels are pruning levels >= 1, got '
                       f'{list(self.control_levels)}')
    structure_lib.parse(self.structure)
    if params is not None:  # checks the rate spec against the real leaves
      structure_lib.check(self.structure, params, self.prunable)
      if self.rule.startswith('global'):  # traced only: nothing runs
        jax.eval_shape(lambda p: pruning.global_magnitude(
            p, masks_lib.ones_like(p), self.rates, prunable=self.prunable),
                       params)
      else:
        pruning.resolve_rates(self.rates, params, self.prunable)

  @property
  def prunable(self) -> masks_lib.LeafFilter:
    return masks_lib.make_filter(exclude=self.prune_exclude)

  def branches(self, level: int) -> tuple[str, ...]:
    """Branch names trained at `level`, the ticket first."""
    if level == 0 or (self.control_levels
                      and level not in self.control_levels):
      return ('ticket',)
    return ('ticket',) + tuple(self.controls)


def random_to_counts(key, mask, kept_counts: dict, prunable) -> dict:
  """A random subset of `mask` keeping `kept_counts[path]` per leaf.

  The survivors with the highest uniform scores are kept, ties to the
  earlier position (selected by counting, `ticketjax.selection`; the
  reversal makes its earlier-dropped-first tie rule keep the earlier one).
  """
  paths = masks_lib.leaf_paths(mask)
  leaves = jax.tree.leaves(mask)
  picked = [i for i, (path, m) in enumerate(zip(paths, leaves))
            if prunable(path, m)]
  keys = [jnp.where(leaves[i], selection.float_keys(jax.random.uniform(
      jax.random.fold_in(key, i), leaves[i].shape)), jnp.uint32(0))
          for i in picked]
  kept = selection.keep_largest_each(
      [k.reshape(-1)[::-1] for k in keys],
      [kept_counts[paths[i]] for i in picked])
  out = list(leaves)
  for i, keep in zip(picked, kept):
    out[i] = keep[::-1].reshape(leaves[i].shape) & leaves[i]
  return jax.tree.unflatten(jax.tree.structure(mask), out)


def prune_level(cfg: ImpConfig, level: int, final_params, ticket_mask,
                random_mask, seed_key, rates=None):
  """New ticket mask and the control masks of one seed at `level`.

  `rates` (default `cfg.rates`) may be traced: a grid point's pruning rate.

  Returns:
    {'ticket': mask, 'shuffle': mask, 'random': mask}: the ticket pruned
    from the previous level's final weights, its layerwise shuffle, and the
    next random-lineage mask with the ticket's per-layer counts.
  """
  rates = cfg.rates if rates is None else rates
  ticket = pruning.prune(cfg.rule, final_params, ticket_mask, rates,
                         prunable=cfg.prunable,
                         key=jax.random.fold_in(seed_key, level),
                         structure=cfg.structure)
  counts = masks_lib.counts(ticket, cfg.prunable)['kept']
  out = {}
  if 'invert' in cfg.controls:
    score, scope = _INVERTIBLE[cfg.rule]
    out['invert'] = pruning.by_score(
        score, scope, pruning.ScoreContext(final_params, ticket_mask), rates,
        cfg.prunable, cfg.structure, invert=True)
  return out | {
      'ticket': ticket,
      'shuffle': pruning.shuffle(
          jax.random.fold_in(jax.random.fold_in(seed_key, _SHUFFLE_TAG),
                             level), ticket, cfg.prunable),
      'random': random_to_counts(
          jax.random.fold_in(jax.random.fold_in(seed_key, _RANDOM_TAG),
                             level), random_mask, counts, cfg.prunable),
  }


def start_state(cfg: ImpConfig, reset: Callable, *, mask, weights,
                model_state, init_state: TrainState,
                rewind_state: TrainState, final_state: TrainState
                ) -> TrainState:
  """The state a branch starts a level from (one seed), per rewind mode.

  Args:
    cfg: the search config.
    reset: `Trainer.reset(params, model_state, mask, key, step)`.
    mask: the branch's mask.
    weights: the weights the mode starts from for this branch (its init
      for 'init'/'step', the previous final weights for 'lr'/'finetune';
      a fresh init for the reinit control).
    model_state: the non-trainable state that goes with `weights`.
    init_state: the seed's step-0 state.
    rewind_state: the seed's step-k state (== init_state when k = 0).
    final_state: the seed's previous-level final ticket state.
  """
  weights = masks_lib.apply(weights, mask)
  if cfg.rewind == 'init':
    return reset(weights, model_state, mask, init_state.key, 0)
  if cfg.rewind in ('step', 'lr'):
    return rewind_state._replace(params=weights, model_state=model_state,
                                 mask=mask)
  return final_state._replace(params=weights, model_state=model_state,
                              mask=mask)


def reinit_key(seed_key, level):
  return jax.random.fold_in(jax.random.fold_in(seed_key, _REINIT_TAG), level)


def level_starts(cfg: ImpConfig, trainer, level, branches, init_S, rewind_S,
                 final_S, random_mask_S, seed_keys, rates_N):
  """Every branch's start states of `level` for S seeds, and the next
  random-lineage masks: `(state_BS, random_mask_S)`.

  Prunes each seed's previous final ticket (`prune_level`; `rates_N` a
  grid's pruning rate per lineage, or None), draws the reinit control's
  fresh weights, and starts every branch of `branches` (static) as the
  rewind mode says (`start_state`), branch-major on one stacked axis.
  `trainer` gives `reset` and `model.init`. Pure: the job compiles it once
  per branch tuple (the level traced).
  """
  new = jax.vmap(lambda p, m, r, key, rate: prune_level(
      cfg, level, p, m, r, key, rates=rate))(
          final_S.params, final_S.mask, random_mask_S, seed_keys, rates_N)
  if cfg.rewind == 'init':
    weights, model_state = init_S.params, init_S.model_state
  elif cfg.rewind == 'step':
    weights, model_state = rewind_S.params, rewind_S.model_state
  else:
    weights, model_state = final_S.params, final_S.model_state

  def start(mask_S, weights_S, model_state_S):
    return jax.vmap(lambda m, w, ms, i, r, f: start_state(
        cfg, trainer.reset, mask=m, weights=w, model_state=ms,
        init_state=i, rewind_state=r, final_state=f))(
            mask_S, weights_S, model_state_S, init_S, rewind_S, final_S)

  starts = []
  for branch in branches:
    if branch == 'finetune':  # the ticket's mask on theta_j
      starts.append(start(new['ticket'], final_S.params,
                          final_S.model_state))
    elif branch == 'reinit':
      reinit_params, reinit_state = jax.vmap(trainer.model.init)(
          jax.vmap(lambda key: reinit_key(key, level))(seed_keys))
      starts.append(start(new['ticket'], reinit_params, reinit_state))
    else:
      starts.append(start(new[branch], weights, model_state))
  return (jax.tree.map(lambda *xs: jnp.concatenate(xs), *starts),
          new['random'])
