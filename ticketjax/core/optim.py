"""Optimizers and learning-rate schedules from a typed config, plus masking.

`make_optimizer` builds an optax optimizer wrapped by `masked`, which takes
the mask as an extra keyword argument of `update` and zeroes the outgoing
updates of pruned weights, so no moment (stale or fresh), weight decay or
momentum can move a pruned weight: params that are exactly 0 where the mask
is False stay exactly 0. One select per weight and step is the whole cost;
the moments of pruned weights are left to do what they like, since they can
never reach the weights (masks only shrink). `optax.masked` cannot do this:
its mask must be static, and ours changes every pruning level without a
recompile.

Adam is optax's with the bias corrections applied as multiplications by
their reciprocals (`scale_by_adam`, same state), so a program partitioned
over several devices computes the numbers of the one-device program.

A vmapped hyperparameter grid (`ticketjax.core.grid`) gives each member its own
learning rate or weight decay: `make_optimizer(..., per_member=names)`
keeps those values in the optimizer state (`HparamState`, set per member
with `set_hparams`) and builds the optax optimizer from them inside the
compiled step, so the members of a grid share one program.

Weight decay is coupled L2 (added to the gradient before the optimizer, as
PyTorch's `weight_decay` and the reference LTH code do); with Adam that is
Adam+L2, not AdamW.
"""
import dataclasses
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ticketjax.core import masks as masks_lib

OPTIMIZERS = ('sgd', 'momentum', 'nesterov', 'adam')
SCHEDULES = ('constant', 'step', 'cosine')
# OptimizerConfig fields a member may carry in its state (a vmapped grid)
PER_MEMBER_FIELDS = ('learning_rate', 'weight_decay')


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """What to optimize with.

  Attributes:
    name: one of OPTIMIZERS.
    learning_rate: the peak learning rate.
    momentum: for 'momentum' and 'nesterov'.
    b1, b2, eps: Adam's constants.
    weight_decay: coupled L2 coefficient (0 disables it).
    schedule: one of SCHEDULES. 'step' multiplies the rate by `decay_factor`
      at each step in `boundaries`; 'cosine' decays to 0 at the last step.
    boundaries: steps of the 'step' schedule.
    decay_factor: factor of the 'step' schedule.
    warmup_steps: linear warmup from 0 before any schedule (0 disables it).
  """
  name: str = 'adam'
  learning_rate: float = 1e-3
  momentum: float = 0.9
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  schedule: str = 'constant'
  boundaries: tuple[int, ...] = ()
  decay_factor: float = 0.1
  warmup_steps: int = 0

  def validate(self, total_steps: int) -> None:
    """Raises ValueError naming the bad field and what is valid."""
    if self.name not in OPTIMIZERS:
      raise ValueError(f'unknown optimizer {self.name!r}; valid optimizers '
                       f'are {list(OPTIMIZERS)}')
    if self.schedule not in SCHEDULES:
      raise ValueError(f'unknown schedule {self.schedule!r}; valid schedules '
                       f'are {list(SCHEDULES)}')
    if not self.learning_rate > 0:
      raise ValueError(f'learning_rate must be > 0, got {self.learning_rate}')
    if self.weight_decay < 0:
      raise ValueError(f'weight_decay must be >= 0, got {self.weight_decay}')
    if not 0 <= self.warmup_steps < max(total_steps, 1):
      raise ValueError(f'warmup_steps must lie in [0, {total_steps}) (the '
                       f'training steps), got {self.warmup_steps}')
    bad = [b for b in self.boundaries if not 0 < b < total_steps]
    if bad or list(self.boundaries) != sorted(self.boundaries):
      raise ValueError(f'schedule boundaries must be increasing steps in (0, '
                       f'{total_steps}), got {list(self.boundaries)}')


def make_schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
  """The learning rate as a function of the optimizer step."""
  lr = cfg.learning_rate
  after = max(total_steps - cfg.warmup_steps, 1)
  if cfg.schedule == 'constant':
    main = optax.constant_schedule(lr)
  elif cfg.schedule == 'step':
    main = optax.piecewise_constant_schedule(
        lr, {b - cfg.warmup_steps: cfg.decay_factor for b in cfg.boundaries})
  else:
    main = optax.cosine_decay_schedule(lr, after)
  if not cfg.warmup_steps:
    return main
  warmup = optax.linear_schedule(0.0, lr, cfg.warmup_steps)
  return optax.join_schedules([warmup, main], [cfg.warmup_steps])


class MaskedState(NamedTuple):
  inner_state: optax.OptState


def masked(inner: optax.GradientTransformation
           ) -> optax.GradientTransformationExtraArgs:
  """Wraps `inner`: `update(..., mask=m)` zeroes pruned weights' updates."""

  def init_fn(params):
    return MaskedState(inner.init(params))

  def update_fn(updates, state, params=None, *, mask, **extra):
    del extra
    updates, inner_state = inner.update(updates, state.inner_state, params)
    return masks_lib.apply(updates, mask), MaskedState(inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class HparamState(NamedTuple):
  """Optimizer state with this member's values of the per-member fields."""
  inner_state: optax.OptState
  hparams: dict


def make_optimizer(cfg: OptimizerConfig, total_steps: int,
                   per_member: tuple[str, ...] = ()
                   ) -> optax.GradientTransformationExtraArgs:
  """The masked optimizer of `cfg` for a run of `total_steps` steps.

  `per_member` names fields of PER_MEMBER_FIELDS that each member reads
  from its optimizer state instead of `cfg` (initialized to `cfg`'s
  values; `set_hparams` gives each member its own).
  """
  if not per_member:
    return masked(make_base(cfg, total_steps))
  bad = sorted(set(per_member) - set(PER_MEMBER_FIELDS))
  if bad:
    raise ValueError(f'optimizer fields {bad} cannot vary per member; valid '
                     f'fields are {list(PER_MEMBER_FIELDS)}')
  cfg.validate(total_steps)
  with_decay = bool(cfg.weight_decay) or 'weight_decay' in per_member

  def build(values):
    return make_base(dataclasses.replace(cfg, **values), total_steps,
                     validate=False, with_decay=with_decay)

  def init_fn(params):
    return HparamState(build({}).init(params), {
        name: jnp.asarray(getattr(cfg, name), jnp.float32)
        for name in per_member})

  def update_fn(updates, state, params=None):
    updates, inner = build(state.hparams).update(updates, state.inner_state,
                                                 params)
    return updates, HparamState(inner, state.hparams)

  return masked(optax.GradientTransformation(init_fn, update_fn))


def set_hparams(opt_state, values: Mapping[str, jax.Array]):
  """`opt_state` (of `make_optimizer(..., per_member)`) with new values.

  `values` maps every per-member field to a value, or to a [M] array for a
  member-stacked state.
  """
  inner = getattr(opt_state, 'inner_state', None)
  if not isinstance(inner, HparamState):
    raise ValueError('this optimizer state has no per-member hyperparameters '
                     '(build it with make_optimizer(..., per_member=...))')
  if set(values) != set(inner.hparams):
    raise ValueError(f'per-member hyperparameters are {sorted(inner.hparams)}'
                     f', got values for {sorted(values)}')
  return opt_state._replace(inner_state=inner._replace(hparams={
      name: jnp.asarray(values[name], jnp.float32) for name in inner.hparams}))


def make_base(cfg: OptimizerConfig, total_steps: int, *,
              validate: bool = True, with_decay: bool | None = None
              ) -> optax.GradientTransformation:
  """The unmasked optax optimizer of `cfg` (schedule, weight decay).

  `validate=False` and `with_decay` serve traced per-member values, which
  cannot be range-checked or tested for zero (`make_optimizer`).
  """
  if validate:
    cfg.validate(total_steps)
  lr = make_schedule(cfg, total_steps)
  if cfg.name == 'sgd':
    base = optax.sgd(lr)
  elif cfg.name in ('momentum', 'nesterov'):
    base = optax.sgd(lr, momentum=cfg.momentum,
                     nesterov=cfg.name == 'nesterov')
  else:
    base = optax.chain(scale_by_adam(cfg.b1, cfg.b2, cfg.eps),
                       optax.scale_by_learning_rate(lr))
  if bool(cfg.weight_decay) if with_decay is None else with_decay:
    base = optax.chain(optax.add_decayed_weights(cfg.weight_decay), base)
  return base


def scale_by_adam(b1: float, b2: float, eps: float
                  ) -> optax.GradientTransformation:
  """`optax.scale_by_adam`, with the same state, on any device count alike.

  optax divides the moments by their bias corrections inside an inlined
  `jax.jit`. In a one-device program XLA's simplifier turns each division
  by that broadcast scalar into a multiplication by its reciprocal; in a
  program partitioned over several devices the call is not inlined in time
  and the division stays, so the two differ in the last bit. Here the
  moments are multiplied by the reciprocals explicitly: the numbers of the
  one-device program, on every device count.
  """

  def init_fn(params):
    return optax.ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(jnp.zeros_like, params),
        nu=jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
    nu = jax.tree.map(lambda g, v: (1 - b2) * (g * g) + b2 * v, updates,
                      state.nu)
    count = optax.safe_increment(state.count)
    inv1 = 1 / (1 - b1 ** count)
    inv2 = 1 / (1 - b2 ** count)
    updates = jax.tree.map(
        lambda m, v: (m * inv1) / (jnp.sqrt(v * inv2) + eps), mu, nu)
    return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def learning_rate(cfg: OptimizerConfig, total_steps: int, step) -> jax.Array:
  """The learning rate at `step`, for logs and plots."""
  return make_schedule(cfg, total_steps)(step)
