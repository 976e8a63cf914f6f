"""Layer collapse: does a mask still connect the input to the output?

At extreme sparsity a pruning method may empty a whole layer, or leave
weights that no longer form a path from any input to an output (Tanaka et
al. 2020 call it layer collapse; the network then computes a constant).
`connected_outputs` finds the paths by running the network itself: every
kernel replaced by its mask, every bias and BatchNorm mean by 0, other
parameters and state by their absolute values, on an all-ones input. With
ReLU-type activations every quantity stays >= 0 (BatchNorm only scales a
channel, by 0 where its scale is 0), and an output is > 0 exactly when
some chain of kept weights (through any skip connection the model has)
reaches it, so no model needs its graph described.

Two probes run, and a path is one either finds (with values >= 0 neither
finds a path that is not there). In the first a kept weight is 1: its
values count paths, exact but growing as the product of the fan-ins
(float32 overflows on 13 layers of 1,000 units). In the second a kept
weight is 1 / (the number of weights its output unit keeps), so a unit
averages its inputs: that stays near 1 on wide nets, but a unit whose
inputs are mostly unreached (a thin channel mask) passes on that
fraction, which underflows to 0 over many such layers. A path is missed
only where the first probe overflows and the second underflows.
"""
import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core.types import Mask, Model, PyTree


def _probe(model: Model, mask: Mask, params: PyTree, state: PyTree,
           example_shape: tuple, average: bool):
  """(the probe's weights, outputs of those weights): kernels by their
  masks (over each output unit's kept fan-in if `average`), biases and
  BatchNorm means by 0, the rest by absolute values, on an all-ones
  input."""
  def probe(path, p, m):
    name = masks_lib.path_str(path).rsplit('/', 1)[-1]
    if name in masks_lib.KERNEL_NAMES and jnp.ndim(p) >= 2:
      m = m.astype(jnp.float32)  # the output unit is the last axis
      if not average:
        return m
      fan_in = jnp.sum(m, axis=tuple(range(m.ndim - 1)), keepdims=True)
      return m / jnp.maximum(fan_in, 1.0)
    if name == 'bias':
      return jnp.zeros_like(p)
    return jnp.abs(p)

  def statistic(path, x):
    name = masks_lib.path_str(path).rsplit('/', 1)[-1]
    return jnp.zeros_like(x) if name == 'mean' else jnp.abs(x)

  ones = jnp.ones((1,) + tuple(example_shape), jnp.float32)
  state = jax.tree_util.tree_map_with_path(statistic, state)
  return jax.tree_util.tree_map_with_path(probe, params, mask), (
      lambda w: model.apply(w, state, ones, train=False)[0][0])


def connected_outputs(model: Model, mask: Mask, params: PyTree, state: PyTree,
                      example_shape: tuple) -> jax.Array:
  """The number of output units some path of kept weights reaches."""
  reached = False
  for average in (False, True):
    weights, outputs = _probe(model, mask, params, state, example_shape,
                              average)
    reached |= outputs(weights) > 0  # NaN (inf * 0) is no path
  return jnp.sum(reached, dtype=jnp.int32)


def live_density(model: Model, mask: Mask, params: PyTree, state: PyTree,
                 example_shape: tuple, prunable: masks_lib.LeafFilter
                 ) -> jax.Array:
  """The fraction of the prunable weights that are kept and lie on a path
  from the input to an output; NaN where neither probe can tell.

  A kept weight that reads only from removed units (a channel mask keeps
  the next layer's weights from a unit it removed, biases and all) or
  feeds only removed ones takes no part in computing the output from the
  input. In a probe a kept weight lies on such a path exactly when the
  sum of the outputs grows with it (its input is reached and its output
  reaches an output), so one gradient per probe finds them all. Exact for
  ReLU networks, with BatchNorm or without, while one probe stays in
  float32's range; with max-pooling (one position of each window passes a
  gradient) a lower bound; for LayerNorm, GELU or SiLU models (the
  language models) it means nothing, and the jobs leave it out. Where
  the counting probe overflows and the averaged one underflows a path is
  missed (a lower bound); a kept weight neither finds whose averaged
  gradient is not finite makes the result NaN, not a count.
  """
  grads = []
  for average in (False, True):
    weights, outputs = _probe(model, mask, params, state, example_shape,
                              average)
    grads.append(jax.grad(lambda w, f=outputs: jnp.sum(f(w)))(weights))
  live = total = 0
  known = True
  for path, m, g_count, g_mean in zip(
      masks_lib.leaf_paths(mask), jax.tree.leaves(mask),
      jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    if prunable(path, m):
      found = m & ((g_count > 0) | (g_mean > 0))  # NaN > 0 is False
      live += jnp.sum(found, dtype=jnp.int32)
      total += m.size
      known &= ~jnp.any(m & ~found & ~jnp.isfinite(g_mean))
  return jnp.where(known, live / total, jnp.nan)


def member_live_density(model: Model, example_shape: tuple,
                        prunable: masks_lib.LeafFilter):
  """jit: `(mask_M, params_M, state_M) -> [M]` `live_density` of every
  member of stacked masks and weights, one program for any M."""
  return jax.jit(jax.vmap(lambda m, p, s: live_density(
      model, m, p, s, example_shape, prunable)))


def empty_layers(mask: Mask, prunable: masks_lib.LeafFilter) -> jax.Array:
  """How many prunable leaves keep no weight at all."""
  kept = masks_lib.counts(mask, prunable)['kept']
  return sum((k == 0).astype(jnp.int32) for k in kept.values())


def member_empty_layers(mask_M: Mask, prunable: masks_lib.LeafFilter
                        ) -> list[int]:
  """`empty_layers` of each member of stacked masks `mask_M`, as ints."""
  return [int(e) for e in jax.vmap(
      lambda m: empty_layers(m, prunable))(mask_M)]
