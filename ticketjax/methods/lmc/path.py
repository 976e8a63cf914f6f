"""Linear mode connectivity: loss and error along the segment W_a -> W_b.

Frankle et al. 2020 ("Linear Mode Connectivity and the Lottery Ticket
Hypothesis", arXiv 1912.05671): two networks are linearly connected
when the error along W(alpha) = (1 - alpha) W_a + alpha W_b, alpha in [0, 1],
does not rise above the endpoints. The *error barrier* is the largest error
on the path minus the mean of the two endpoint errors; a pair is stable
when it is under 2% (30 evenly spaced alpha).

`path_metrics` evaluates every alpha of the grid in one compiled program
(`vmap` over alpha of the trainer's chunked evaluation), not a Python loop;
`pair_path_metrics` does the same for many pairs at once (an instability
analysis's copies), still one program.

BatchNorm: interpolating two networks' weights does not interpolate their
activation statistics, so the running statistics of either endpoint are
wrong for W(alpha) and the path would show a barrier that is only stale
statistics. With `recompute_stats` (on by default) each interpolated
network's model state is re-estimated by running `stats_batches` training
batches through `apply(train=True)`, starting from the endpoints'
interpolated state; with the models' exponential moving averages this
converges to the new network's statistics. Models without state (the MLPs,
Conv-N) skip this.
"""
from typing import Any

import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core.types import PyTree

NUM_ALPHAS = 30
STABLE_BARRIER = 0.02


def alphas(num: int = NUM_ALPHAS) -> jax.Array:
  """`num` evenly spaced interpolation weights in [0, 1], ends included."""
  if int(num) < 2:
    raise ValueError(f'need at least 2 interpolation points, got {num}')
  return jnp.linspace(0.0, 1.0, int(num), dtype=jnp.float32)


def interpolate(tree_a: PyTree, tree_b: PyTree, alpha) -> PyTree:
  """(1 - alpha) * a + alpha * b, leaf by leaf (float leaves only)."""
  def mix(a, b):
    if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
      return a  # counters and the like: taken from the first endpoint
    return (1.0 - alpha) * a + alpha * b
  return jax.tree.map(mix, tree_a, tree_b)


def error_barrier(errors_A: jax.Array) -> jax.Array:
  """max over the path of the error, minus the mean of the two endpoints."""
  errors_A = jnp.asarray(errors_A)
  return jnp.max(errors_A, axis=-1) - 0.5 * (errors_A[..., 0] +
                                             errors_A[..., -1])


def _has_state(model_state: PyTree) -> bool:
  return bool(jax.tree.leaves(model_state))


def path_metrics(trainer: Any, params_a: PyTree, params_b: PyTree,
                 state_a: PyTree, state_b: PyTree, x, y, alpha_A, *,
                 mask: PyTree | None = None, x_stats=None,
                 recompute_stats: bool = True, stats_batches: int = 50
                 ) -> dict[str, jax.Array]:
  """{'loss': [A], 'error': [A], 'accuracy': [A]} along the path on (x, y).

  Args:
    trainer: a `train.Trainer` (its model and chunked `evaluate_one`).
    params_a, params_b: the endpoints (one network each, no seed axis).
    state_a, state_b: their model states (BatchNorm statistics or {}).
    x, y: the evaluation data.
    alpha_A: the interpolation weights, e.g. `alphas()`.
    mask: if given, applied to every interpolated network (tickets that
      share a mask stay on it anyway, since both endpoints are 0 there).
    x_stats: training inputs for re-estimating BatchNorm statistics.
    recompute_stats: re-estimate them for every alpha (module docstring).
    stats_batches: batches of `trainer.batch_size` used to re-estimate.
  """
  expand = lambda tree: jax.tree.map(lambda v: jnp.asarray(v)[None], tree)
  out = pair_path_metrics(
      trainer, *map(expand, (params_a, params_b, state_a, state_b)), x, y,
      alpha_A, mask_P=None if mask is None else expand(mask),
      x_stats=x_stats, recompute_stats=recompute_stats,
      stats_batches=stats_batches)
  return jax.tree.map(lambda v: v[0], out)


def pair_path_metrics(trainer: Any, params_a_P: PyTree, params_b_P: PyTree,
                      state_a_P: PyTree, state_b_P: PyTree, x, y, alpha_A,
                      *, mask_P: PyTree | None = None, x_stats=None,
                      recompute_stats: bool = True, stats_batches: int = 50
                      ) -> dict[str, jax.Array]:
  """`path_metrics` of P pairs at once: {'loss'|'error'|'accuracy': [P, A]}.

  The endpoints carry a leading pair axis P (`mask_P` too, if given). All
  P x A networks are evaluated by one compiled program: `vmap` over alpha
  inside `lax.map` over pairs, so memory grows with A, not with P.
  """
  if mask_P is not None:
    masks_lib.validate(mask_P, params_a_P)  # shapes include P on both
  recompute = recompute_stats and _has_state(state_a_P)
  if recompute and x_stats is None:
    raise ValueError('recompute_stats needs training inputs x_stats for a '
                     'model with state (BatchNorm)')
  return _path_metrics(trainer, recompute, int(stats_batches))(
      params_a_P, params_b_P, state_a_P, state_b_P, x, y, alpha_A, mask_P,
      x_stats if recompute else None)


_CACHE: dict = {}


def _path_metrics(trainer, recompute: bool, stats_batches: int):
  """The jitted program of `pair_path_metrics` (per trainer and options)."""
  key = (id(trainer), recompute, stats_batches)
  if key in _CACHE and _CACHE[key][0] is trainer:
    return _CACHE[key][1]
  model, bs = trainer.model, trainer.batch_size

  def restat(params, state, x_stats):
    n = x_stats.shape[0] // bs

    def body(state, i):
      xb = jax.lax.dynamic_slice_in_dim(x_stats, (i % n) * bs, bs)
      _, state = model.apply(params, state, xb, train=True,
                             key=jax.random.PRNGKey(0))
      return state, None

    state, _ = jax.lax.scan(body, state, jnp.arange(stats_batches))
    return state

  def one(alpha, params_a, params_b, state_a, state_b, x, y, mask, x_stats):
    params = interpolate(params_a, params_b, alpha)
    if mask is not None:
      params = masks_lib.apply(params, mask)
    state = interpolate(state_a, state_b, alpha)
    if recompute:
      state = restat(params, state, x_stats)
    ev = trainer.evaluate_one(params, state, x, y)
    return {'loss': ev['loss'], 'accuracy': ev['accuracy'],
            'error': 1.0 - ev['accuracy']}

  path = jax.vmap(one, in_axes=(0,) + (None,) * 8)

  @jax.jit
  def call(params_a_P, params_b_P, state_a_P, state_b_P, x, y, alpha_A,
           mask_P, x_stats):
    def pair(ends):
      params_a, params_b, state_a, state_b, mask = ends
      return path(alpha_A, params_a, params_b, state_a, state_b, x, y, mask,
                  x_stats)
    return jax.lax.map(pair, (params_a_P, params_b_P, state_a_P, state_b_P,
                              mask_P))

  _CACHE[key] = (trainer, call)
  return call
