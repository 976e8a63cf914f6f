"""Dynamic sparse training (SET, RigL): the pure pieces.

A member trains sparse from its first step: a random mask at its density,
spread over the layers by a sparsity distribution (`core/distributions`:
uniform, ER or ERK). Every `update_every` steps (ΔT) until T_end =
`end_fraction` of training, each prunable layer with n active weights
drops the k = floor(f(t) * n) active ones of smallest |w| and grows k of
the inactive ones (a just-dropped weight may come back), with

  f(t) = alpha / 2 * (1 + cos(pi * t / T_end))   (cosine decay)

  rigl    grows the largest |dL/dw| of the current batch's dense gradient
          (Evci et al. 2020);
  set     grows uniformly at random (Mocanu et al. 2018);
  static  never updates: static random sparse training, the baseline.

Grown weights start at 0 and the optimizer moments of every weight whose
mask bit changed are reset to 0. The update runs in the training step
(`Trainer.mask_update`) under a `lax.cond` on the step alone, so it costs
nothing between updates and never leaves the compiled program; the
variant is per member (`wrap_model` keeps its code in the model state), so
static, SET and RigL members train in one program.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from ticketjax.core import distributions
from ticketjax.core import masks as masks_lib
from ticketjax.core import selection
from ticketjax.core.train import TrainState
from ticketjax.core.types import Model

VARIANTS = ('static', 'set', 'rigl')
_GROW_TAG = 0xD57  # off a member's noise key: SET's grow draws
MASK_TAG = 0xD58  # off a seed's init key: its initial random masks


@dataclasses.dataclass(frozen=True)
class DstConfig:
  """What a dynamic-sparse-training search does.

  Attributes:
    densities: fractions of the prunable weights kept, throughout.
    variants: members from VARIANTS (static, set, rigl).
    distributions: initial spreads over the layers, members from
      `distributions.DISTRIBUTIONS`.
    update_every: ΔT, steps between mask updates (RigL: 100).
    drop_fraction: alpha, the fraction dropped at step 0 of the cosine
      (RigL: 0.3).
    end_fraction: T_end as a fraction of train.steps (RigL: 0.75).
    prune_exclude: path substrings of kernels kept dense.
  """
  densities: tuple[float, ...] = (0.2, 0.1, 0.05)
  variants: tuple[str, ...] = VARIANTS
  distributions: tuple[str, ...] = ('erk',)
  update_every: int = 100
  drop_fraction: float = 0.3
  end_fraction: float = 0.75
  prune_exclude: tuple[str, ...] = ()

  def validate(self) -> None:
    """Raises ValueError naming what is wrong and what is valid."""
    for name, values, valid in (
        ('variants', self.variants, VARIANTS),
        ('distributions', self.distributions, distributions.DISTRIBUTIONS)):
      bad = [v for v in values if v not in valid]
      if not values or bad or len(set(values)) != len(values):
        raise ValueError(
            f'dst.{name} {list(values)}: '
            + (f'unknown {bad}' if bad else 'a name repeats' if values
               else 'none given')
            + f'; valid {name} are {list(valid)}, each at most once')
    bad = [d for d in self.densities if not 0.0 < d <= 1.0]
    if not self.densities or bad or len(set(self.densities)) != len(
        self.densities):
      raise ValueError(f'dst.densities {list(self.densities)} must be '
                       'distinct fractions of weights kept in (0, 1]')
    if int(self.update_every) < 1:
      raise ValueError(f'dst.update_every must be >= 1, got '
                       f'{self.update_every}')
    if not 0.0 <= self.drop_fraction < 1.0:
      raise ValueError(f'dst.drop_fraction must lie in [0, 1), got '
                       f'{self.drop_fraction}')
    if not 0.0 < self.end_fraction <= 1.0:
      raise ValueError(f'dst.end_fraction must lie in (0, 1], got '
                       f'{self.end_fraction}')

  @property
  def prunable(self) -> masks_lib.LeafFilter:
    return masks_lib.make_filter(exclude=self.prune_exclude)

  def end_step(self, total_steps: int) -> int:
    return int(math.floor(self.end_fraction * total_steps))


def drop_fraction(t, alpha: float, end_step: int):
  """f(t) = alpha / 2 (1 + cos(pi t / T_end)), the fraction dropped at t."""
  t = jnp.asarray(t, jnp.float32)
  return alpha / 2.0 * (1.0 + jnp.cos(jnp.pi * t / end_step))


def is_update_step(t, cfg: DstConfig, end_step: int):
  return (t > 0) & (t % cfg.update_every == 0) & (t < end_step)


def wrap_model(model: Model) -> Model:
  """`model` with state {'inner': its state, 'variant': int32 code} (the
  index in VARIANTS), so each member carries its variant."""

  def init(key):
    params, state = model.init(key)
    return params, {'inner': state, 'variant': jnp.int32(0)}

  def apply(params, state, x, *, train, key=None):
    logits, inner = model.apply(params, state['inner'], x, train=train,
                                key=key)
    return logits, {**state, 'inner': inner}

  return Model(init, apply, model.name)


def drop_and_grow(w, g, m, k, grow_random: bool, key):
  """One layer's new mask: the k smallest-|w| active weights dropped, k
  inactive ones grown (largest |g|, or random with `grow_random`)."""
  n = jnp.sum(m, dtype=jnp.int32)
  flat = lambda x: x.reshape(-1)
  keep = selection.keep_largest(
      jnp.where(flat(m), selection.float_keys(jnp.abs(flat(w))),
                jnp.uint32(0)), n - k) & flat(m)
  score = jnp.where(grow_random, jax.random.uniform(key, (w.size,)),
                    jnp.abs(flat(g)))
  grow = selection.keep_largest(
      jnp.where(keep, jnp.uint32(0), selection.float_keys(score)), k) & ~keep
  return (keep | grow).reshape(m.shape)


def mask_update(cfg: DstConfig, optimizer, total_steps: int):
  """The `Trainer.mask_update` of this search (see the module docstring)."""
  end = cfg.end_step(total_steps)
  prunable = cfg.prunable

  def update(state: TrainState, grads, t) -> TrainState:
    def move(state):
      variant = state.model_state['variant']
      frac = drop_fraction(t, cfg.drop_fraction, end)
      key = jax.random.fold_in(jax.random.fold_in(state.key, _GROW_TAG), t)
      paths = masks_lib.leaf_paths(state.mask)
      new = []
      for i, (path, w, g, m) in enumerate(zip(
          paths, jax.tree.leaves(state.params), jax.tree.leaves(grads),
          jax.tree.leaves(state.mask))):
        if not prunable(path, m):
          new.append(m)
          continue
        n = jnp.sum(m, dtype=jnp.int32)
        k = jnp.floor(frac * n.astype(jnp.float32)).astype(jnp.int32)
        moved = drop_and_grow(w, g, m, k, variant == 1,
                              jax.random.fold_in(key, i))
        new.append(jnp.where(variant == 0, m, moved))
      mask = jax.tree.unflatten(jax.tree.structure(state.mask), new)
      changed = jax.tree.map(jnp.not_equal, mask, state.mask)
      params = jax.tree.map(lambda p, keep, c: jnp.where(keep & ~c, p, 0),
                            state.params, mask, changed)
      opt_state = optax.tree_utils.tree_map_params(
          optimizer, lambda v, c: jnp.where(c, jnp.zeros_like(v), v),
          state.opt_state, changed)
      return state._replace(mask=mask, params=params, opt_state=opt_state)

    return jax.lax.cond(is_update_step(t, cfg, end), move, lambda s: s,
                        state)

  return update
