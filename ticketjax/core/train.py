"""The trainer: one compiled program trains and evaluates all seeds at once.

State layout: every array of a `TrainState` has a leading seed axis `S`
(`params_S`, `mask_S`, ...). `Trainer.train` runs `num_steps` steps as one
jit-compiled `lax.scan` whose body applies the single-seed step under
`jax.vmap`, so S seeds (or S members of any vmapped sweep) are one program.
A new mask, new params or a new seed count of the same shapes reuse the
compiled program (the mask is data, not a constant).

Randomness is derived, never threaded: each seed has a key (`state.key`,
the seed's *SGD-noise* key); the data order of epoch e is the permutation
(`data_order.permutation`, JAX's own, sorted faster) from
`fold_in(fold_in(key, DATA_STREAM), e)` and the randomness of step t
(dropout, say) comes from `fold_in(fold_in(key, STEP_STREAM), t)`. A run
that stops at step t and resumes from its saved state is therefore bitwise
the run that never stopped. Two seeds with the same init key and different
noise keys see the same weights and different SGD noise (what an
instability analysis needs).

Batches are drawn inside the program from the data set held whole on the
device: epoch e's permutation is computed once, at its first step or at
the first step of a `train` call that starts inside it (later epochs by a
`lax.cond` on the step, which is shared by all seeds), and step t of the
epoch takes rows [i*B, (i+1)*B) of it, i = t mod (N // B). The N mod B
examples left over by an epoch's permutation are skipped that epoch.

Members may start at different steps (a grid over IMP's rewind step): the
program then runs from the earliest member's step, and a member ahead of
the shared step waits, its state unchanged, until the shared step reaches
its own. Each member so trains exactly the steps, data and keys of a run
started from its own step. This is a second compiled program (one select
per state array and step); members at one step never pay for it.
"""
import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ticketjax.core import augment as augment_lib
from ticketjax.core import data_order
from ticketjax.core import kernels
from ticketjax.core import masks as masks_lib
from ticketjax.core import sharding
from ticketjax.core.types import Dataset, Model, PyTree

DATA_STREAM = 1
STEP_STREAM = 2
INIT_STREAM = 0
NOISE_STREAM = 1


class TrainState(NamedTuple):
  """Everything a training run needs to continue; arrays only.

  Attributes:
    params: trainable parameters; exactly 0 where `mask` is False.
    model_state: non-trainable state (BatchNorm statistics), maybe `{}`.
    mask: boolean pytree shaped like `params`.
    opt_state: the optimizer's state.
    step: int32, steps taken.
    key: the SGD-noise PRNG key (uint32[2]) of data order and step noise.
  """
  params: PyTree
  model_state: PyTree
  mask: PyTree
  opt_state: PyTree
  step: jax.Array
  key: jax.Array


class DeviceData(NamedTuple):
  """The arrays of a `Dataset`, as device arrays (a pytree for jit)."""
  x_train: jax.Array
  y_train: jax.Array
  x_val: jax.Array
  y_val: jax.Array
  x_test: jax.Array
  y_test: jax.Array


def to_device(ds: Dataset) -> DeviceData:
  """The data set's arrays on every device (replicated over the mesh), once
  for all the `train` and `evaluate` calls that read it."""
  return sharding.replicate(DeviceData(*(jnp.asarray(getattr(ds, f))
                                         for f in DeviceData._fields)))


def seed_keys(seed: int, num_seeds: int, first: int = 0) -> jax.Array:
  """Per-seed root keys `fold_in(PRNGKey(seed), s)` for s in [first, +n).

  Seed s's key does not depend on how many seeds run, so a run extended to
  more seeds keeps its old seeds' results.
  """
  root = jax.random.PRNGKey(seed)
  return jax.vmap(lambda s: jax.random.fold_in(root, s))(
      jnp.arange(first, first + num_seeds))


def split_seed_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(init key, SGD-noise key) of a seed's root key."""
  return (jax.random.fold_in(key, INIT_STREAM),
          jax.random.fold_in(key, NOISE_STREAM))


def cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
  """Compiled training and evaluation of a model with a masked optimizer.

  Attributes:
    model: the pure model pair.
    optimizer: an optimizer whose `update` takes `mask=` (`optim.masked`).
    batch_size: training batch size B (per seed).
    eval_batch_size: evaluation chunk size (memory bound, not semantics).
    penalty: an optional `penalty(params, model_state) -> scalar` added to
      the training loss (Continuous Sparsification's lambda * sum of soft
      masks); evaluation reports the data loss only.
    member_group: 0 vmaps all members of a device at once (fastest); g > 0
      runs them in groups of g one after another, which makes the numbers
      bitwise independent of the member count and of the device count
      (`sharding.map_member_groups`).
    augment: an optional `augment(x_batch, key) -> x_batch` applied to
      every training batch (`ticketjax.augment`), keyed by the step.
    mask_update: an optional `mask_update(state, grads, t) -> state` run in
      every step after the gradient of the batch (the dense gradient: masked
      weights are zeros, not constants) and before the optimizer update,
      which then uses the state's new mask: dynamic sparse training (RigL,
      SET) moves its masks here, inside the compiled program.
  """
  model: Model
  optimizer: optax.GradientTransformationExtraArgs
  batch_size: int
  eval_batch_size: int = 1000
  penalty: Callable[[PyTree, PyTree], jax.Array] | None = None
  member_group: int = 0
  augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
  mask_update: Callable[[TrainState, PyTree, jax.Array], TrainState] | None \
      = None

  # -- single seed -------------------------------------------------------

  def init_state(self, init_key, noise_key, mask=None) -> TrainState:
    """A fresh state for one seed; params are masked on the way in."""
    params, model_state = self.model.init(init_key)
    return self.reset(params, model_state, mask, noise_key)

  def reset(self, params, model_state, mask, noise_key,
            step=0) -> TrainState:
    """A state at `step` with these weights, `mask` and a fresh optimizer."""
    if mask is None:
      mask = masks_lib.ones_like(params)
    params = masks_lib.apply(params, mask)
    return TrainState(params, model_state, mask, self.optimizer.init(params),
                      jnp.asarray(step, jnp.int32), noise_key)

  def _loss(self, params, model_state, x, y, key):
    logits, model_state = self.model.apply(params, model_state, x,
                                           train=True, key=key)
    loss = jnp.mean(cross_entropy(logits, y))
    if self.penalty is not None:
      loss = loss + self.penalty(params, model_state)
    return loss, (logits, model_state)

  def step(self, state: TrainState, perm, t, data: DeviceData):
    """One optimizer step of one seed on rows of epoch permutation `perm`."""
    steps_per_epoch = data.x_train.shape[0] // self.batch_size
    start = (t % steps_per_epoch) * self.batch_size
    idx = jax.lax.dynamic_slice_in_dim(perm, start, self.batch_size)
    x, y = data.x_train[idx], data.y_train[idx]
    key = jax.random.fold_in(jax.random.fold_in(state.key, STEP_STREAM), t)
    if self.augment is not None:
      x = self.augment(x, jax.random.fold_in(key, augment_lib.AUGMENT_TAG))
    (loss, (logits, model_state)), grads = jax.value_and_grad(
        self._loss, has_aux=True)(state.params, state.model_state, x, y, key)
    if self.mask_update is not None:
      state = self.mask_update(state._replace(model_state=model_state),
                               grads, t)
      model_state = state.model_state
    updates, opt_state = self.optimizer.update(
        grads, state.opt_state, state.params, mask=state.mask)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss,
               'accuracy': jnp.mean(jnp.argmax(logits, -1) == y)}
    return state._replace(params=params, model_state=model_state,
                          opt_state=opt_state, step=state.step + 1), metrics

  def evaluate_one(self, params, model_state, x, y) -> dict:
    """Mean loss and accuracy of one seed on (x, y), in fixed-size chunks.

    With a label per position (a language model's next tokens, `y` of
    shape [N, T]), an example's loss and accuracy are the means over its
    positions; all examples have T positions, so the result is the mean
    per token (the loss's exp is the perplexity).
    """
    n = x.shape[0]
    per_token = y.ndim > 1
    bs = max(min(self.eval_batch_size, n), 1)
    chunks = -(-n // bs)
    pad = chunks * bs - n
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    y = jnp.pad(y, [(0, pad)] + [(0, 0)] * (y.ndim - 1))
    valid = jnp.arange(chunks * bs) < n

    def body(sums, i):
      xs = jax.lax.dynamic_slice_in_dim(x, i * bs, bs)
      ys = jax.lax.dynamic_slice_in_dim(y, i * bs, bs)
      ws = jax.lax.dynamic_slice_in_dim(valid, i * bs, bs)
      logits, _ = self.model.apply(params, model_state, xs, train=False)
      losses = cross_entropy(logits, ys)
      hits = jnp.argmax(logits, -1) == ys
      if per_token:
        losses = jnp.mean(losses.reshape(bs, -1), axis=1)
        correct = jnp.sum(jnp.where(
            ws, jnp.mean(hits.reshape(bs, -1), axis=1), 0.0))
      else:
        correct = jnp.sum(ws & hits)
      loss = jnp.sum(jnp.where(ws, losses, 0.0))
      return (sums[0] + loss, sums[1] + correct), None

    (loss, correct), _ = jax.lax.scan(
        body, (jnp.float32(0),
               jnp.float32(0) if per_token else jnp.int32(0)),
        jnp.arange(chunks))
    n = max(n, 1)
    return {'loss': loss / n, 'accuracy': correct / n}

  # -- all seeds: the compiled programs -----------------------------------

  @functools.cached_property
  def init_states(self):
    """jit(vmap(init_state)): `(init_keys_S, noise_keys_S[, mask_S])`."""
    return jax.jit(jax.vmap(self.init_state))

  @functools.cached_property
  def _train(self):
    static = ('num_steps', 'staggered')
    if not self.member_group:
      return jax.jit(self._train_impl, static_argnames=static)

    def grouped(state_S, data, t0, num_steps, staggered):
      def members_first(state_G, data, t0):
        state_G, metrics_TxG = self._train_impl(state_G, data, t0, num_steps,
                                                staggered)
        return state_G, jax.tree.map(jnp.transpose, metrics_TxG)
      state_S, metrics_SxT = sharding.map_member_groups(
          members_first, state_S, data, t0, group=self.member_group)
      return state_S, jax.tree.map(jnp.transpose, metrics_SxT)

    return jax.jit(grouped, static_argnames=static)

  @functools.cached_property
  def _evaluate(self):
    evaluate = jax.vmap(self.evaluate_one, in_axes=(0, 0, None, None))
    if not self.member_group:
      return jax.jit(evaluate)
    return jax.jit(lambda params_S, state_S, x, y: sharding.map_member_groups(
        lambda ps, x, y: evaluate(ps[0], ps[1], x, y), (params_S, state_S),
        x, y, group=self.member_group))

  def _train_impl(self, state_S: TrainState, data: DeviceData, t0,
                  num_steps, staggered=False):
    # t0 comes in replicated (not read from the sharded state_S.step), so
    # the program has no cross-device collective.
    n = data.x_train.shape[0]
    steps_per_epoch = n // self.batch_size

    # the same order either way; the CPU kernel sorts faster on XLA:CPU
    permute = (data_order.permutation if kernels.enabled()
               else jax.random.permutation)

    def permutations(keys_S, t):
      epoch = t // steps_per_epoch
      return jax.vmap(lambda k: permute(
          jax.random.fold_in(jax.random.fold_in(k, DATA_STREAM), epoch),
          n))(keys_S)

    def body(carry, t):
      state_S, perm_S = carry
      # t0's permutation is the scan's initial carry: shuffle again only
      # at the later epoch starts (a sort of the N indices per seed)
      perm_S = jax.lax.cond((t % steps_per_epoch == 0) & (t != t0),
                            lambda: permutations(state_S.key, t),
                            lambda: perm_S)
      new_S, metrics_S = jax.vmap(self.step, in_axes=(0, 0, None, None))(
          state_S, perm_S, t, data)
      if staggered:  # members not yet at step t keep their state
        active_S = state_S.step == t
        new_S = where_members(active_S, new_S, state_S)
        metrics_S = {**metrics_S, 'active': active_S}
      return (new_S, perm_S), metrics_S

    (state_S, _), metrics_TxS = jax.lax.scan(
        body, (state_S, permutations(state_S.key, t0)),
        t0 + jnp.arange(num_steps, dtype=jnp.int32))
    return state_S, metrics_TxS

  def train(self, state_S: TrainState, data: DeviceData, num_steps: int
            ) -> tuple[TrainState, dict]:
    """Trains the seeds to step t0 + `num_steps`; per-step metrics [T, S].

    t0 is the earliest seed's step. Seeds at one step train `num_steps`
    steps; a seed at a later step waits until the shared step reaches its
    own (see the module docstring) and the metrics then hold a boolean
    'active' [T, S] saying which seed trained at which step. One compiled
    program per distinct `num_steps` (drive long runs in equal chunks).
    With several devices the seed axis is sharded over them
    (`ticketjax.core.sharding`).
    """
    if data.x_train.shape[0] < self.batch_size:
      raise ValueError(
          f'batch size {self.batch_size} exceeds the {data.x_train.shape[0]} '
          'training examples')
    steps = np.asarray(state_S.step)
    num_members = steps.shape[0]
    state_S = sharding.shard_members(
        sharding.pad_members(state_S, num_members, self.member_group))
    t0 = sharding.replicate(jnp.asarray(steps.min(), jnp.int32))
    staggered = bool(steps.min() != steps.max())
    state_S, metrics_TxS = self._train(state_S, sharding.replicate(data), t0,
                                       num_steps=int(num_steps),
                                       staggered=staggered)
    state_S, metrics_TxS = sharding.gather((state_S, metrics_TxS))
    return (sharding.unpad_members(state_S, num_members),
            sharding.unpad_members(metrics_TxS, num_members, axis=1))

  def evaluate(self, state_S: TrainState, x, y) -> dict[str, Any]:
    """{'loss': [S], 'accuracy': [S]} of every seed on (x, y), eval mode."""
    num_members = state_S.step.shape[0]
    params_S, model_state_S = sharding.shard_members(sharding.pad_members(
        (state_S.params, state_S.model_state), num_members,
        self.member_group))
    out = sharding.gather(self._evaluate(params_S, model_state_S,
                                         *sharding.replicate((x, y))))
    return sharding.unpad_members(out, num_members)


@jax.jit  # one program, not an op-by-op compile per leaf shape
def where_members(on_S, a_S: PyTree, b_S: PyTree) -> PyTree:
  """Member i of `a_S` where `on_S[i]`, else of `b_S` (same structures)."""
  return jax.tree.map(
      lambda a, b: jnp.where(on_S.reshape(on_S.shape + (1,) * (a.ndim - 1)),
                             a, b), a_S, b_S)


def unstack(tree_S: PyTree, i: int) -> PyTree:
  """Seed i of a seed-stacked pytree."""
  return jax.tree.map(lambda x: x[i], tree_S)


def stack(trees: list[PyTree]) -> PyTree:
  """Stacks per-seed pytrees along a new leading seed axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def to_host(tree: PyTree) -> PyTree:
  return jax.tree.map(np.asarray, tree)
