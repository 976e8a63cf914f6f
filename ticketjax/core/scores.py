"""Pruning scores as a registry: what a weight is worth, and who may ask.

A pruning decision is a *score* (one number per weight) and a *scope* (which
weights compete: each layer on its own, `layerwise`, or all prunable layers
pooled, `global`); `pruning.layerwise` and `pruning.global_` turn scores
into a mask with the counts `pruning` documents. Scores get one argument, a
`ScoreContext`, which always holds the params and the current mask and may
hold a PRNG key, the model, its state and a batch: so a score that needs
gradients (SNIP, GraSP) or a forward pass of its own (SynFlow) is one
registry entry like magnitude, not a job of its own. `pruning.by_score`
applies a score within a scope.

Registered here: `magnitude` (|w|), `magnitude_normalized` (|w| over the
layer's surviving L2 norm, jaxpruner's global default), `random` (uniform,
an independent stream per leaf; needs `key`), `snip` (|g ⊙ w| of the loss
on `batch`, Lee et al. 2019; needs `model` and `batch`), `grasp` (w ⊙ Hg
at temperature 200, Wang et al. 2020: signed, the largest kept; needs
`model` and `batch`) and `synflow` (|w ⊙ ∂R/∂w| for R the summed output of
the network with |w| on an all-ones input, Tanaka et al. 2020: data-free;
needs `model` and `batch` for the input shape; iterate it, see
`methods/pai`) and `bn_scale` (a unit's BatchNorm |scale| for each of its
weights, |w| where no BatchNorm follows; for channel pruning). Add one
with `register`.
"""
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core import structure
from ticketjax.core.types import Mask, Model, PyTree

@dataclasses.dataclass(frozen=True)
class ScoreContext:
  """What a score may use. Only `params` and `mask` are always there.

  Attributes:
    params: the weights to score (one member's; scores run under vmap).
    mask: the current mask; pruned weights are zero in `params`.
    key: a PRNG key for random scores.
    model: the pure model (`init`/`apply`) for scores that run it.
    model_state: its state (BatchNorm statistics), as `apply` takes it.
    batch: (x, y) for data-dependent scores.
  """
  params: PyTree
  mask: Mask
  key: jax.Array | None = None
  model: Model | None = None
  model_state: Any = None
  batch: tuple | None = None

  def require(self, score: str, *names: str) -> None:
    missing = [n for n in names if getattr(self, n) is None]
    if missing:
      raise ValueError(f'score {score!r} needs {missing} in its '
                       'ScoreContext')

  def loss(self, params) -> jax.Array:
    """Mean cross-entropy of the model with `params` on `batch` (eval mode)."""
    x, y = self.batch
    logits, _ = self.model.apply(params, self.model_state, x, train=False)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def magnitude(ctx: ScoreContext) -> PyTree:
  return jax.tree.map(jnp.abs, ctx.params)


def magnitude_normalized(ctx: ScoreContext) -> PyTree:
  """|w| divided by the L2 norm of the leaf's surviving weights."""
  def norm(w, m):
    w = jnp.where(m, w, 0.0)
    return jnp.abs(w) / (jnp.sqrt(jnp.sum(w * w)) + 1e-12)
  return jax.tree.map(norm, ctx.params, ctx.mask)


def random(ctx: ScoreContext) -> PyTree:
  """Uniform scores, an independent stream per leaf."""
  ctx.require('random', 'key')
  leaves = jax.tree.leaves(ctx.params)
  out = [jax.random.uniform(jax.random.fold_in(ctx.key, i), jnp.shape(x))
         for i, x in enumerate(leaves)]
  return jax.tree.unflatten(jax.tree.structure(ctx.params), out)


def snip(ctx: ScoreContext) -> PyTree:
  """|∂L/∂w ⊙ w| on one batch (connection sensitivity, Lee et al. 2019)."""
  ctx.require('snip', 'model', 'batch')
  grads = jax.grad(ctx.loss)(ctx.params)
  return jax.tree.map(lambda g, w: jnp.abs(g * w), grads, ctx.params)


GRASP_TEMPERATURE = 200.0


def grasp(ctx: ScoreContext) -> PyTree:
  """w ⊙ Hg (Wang et al. 2020): g the gradient of the loss with logits
  divided by `GRASP_TEMPERATURE`, H its Hessian, Hg = ∇(g_stop · ∇L).

  Signed: pruning removes the lowest first, so the weights with the
  largest w ⊙ Hg stay (GraSP's repo removes the largest -w ⊙ Hg: the same
  selection). Ranking |w ⊙ Hg| instead would drop the method's sign.
  Reverse-over-reverse (no forward-mode AD), so it runs with the CPU
  kernels too.
  """
  ctx.require('grasp', 'model', 'batch')
  x, y = ctx.batch

  def loss(params):
    logits, _ = ctx.model.apply(params, ctx.model_state, x, train=False)
    logp = jax.nn.log_softmax(logits / GRASP_TEMPERATURE)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

  g = jax.lax.stop_gradient(jax.grad(loss)(ctx.params))
  hg = jax.grad(lambda p: _vdot(jax.grad(loss)(p), g))(ctx.params)
  return jax.tree.map(jnp.multiply, ctx.params, hg)


def synflow(ctx: ScoreContext) -> PyTree:
  """|w ⊙ ∂R/∂w| (Tanaka et al. 2020), data-free.

  R sums the outputs of the network whose every parameter (and state
  entry, e.g. BatchNorm statistics) is replaced by its absolute value, on
  one all-ones input of an example's shape (`batch[0][0]`), in eval mode.
  Pruned weights are zero, so they neither score nor carry flow.

  In float32, as the paper's code computes it. R grows as the product of
  the layers' norms, so a deep or wide network can overflow (or
  underflow) float32; where R or a score is not a finite normal number,
  the scores are those of the network with each parameter leaf divided by
  its largest |w| instead (`_synflow_rescaled`), which overflows no
  float32 and, for a network homogeneous in each layer (no biases),
  multiplies every score by one constant, so the ranking is the paper's;
  with biases or BatchNorm it is close to it, not the same.
  """
  ctx.require('synflow', 'model', 'batch')
  plain, r = _synflow_flow(ctx, jax.tree.map(jnp.abs, ctx.params))
  rescaled = _synflow_rescaled(ctx)
  normal = jnp.isfinite(r) & (r >= jnp.finfo(jnp.float32).tiny)
  for leaf in jax.tree.leaves(plain):
    normal &= jnp.all(jnp.isfinite(leaf))
  return jax.tree.map(lambda a, b: jnp.where(normal, a, b), plain, rescaled)


def _synflow_flow(ctx: ScoreContext, linear: PyTree):
  """(|linear ⊙ ∂R/∂linear|, R) for the |parameters| `linear`."""
  ones = jnp.ones((1,) + tuple(jnp.shape(ctx.batch[0])[1:]), jnp.float32)
  state = jax.tree.map(jnp.abs, ctx.model_state)

  def flow(params):
    out, _ = ctx.model.apply(params, state, ones, train=False)
    return jnp.sum(out)

  r, grads = jax.value_and_grad(flow)(linear)
  return jax.tree.map(lambda g, w: jnp.abs(g * w), grads, linear), r


def _synflow_rescaled(ctx: ScoreContext) -> PyTree:
  """SynFlow's scores with each parameter leaf divided by its largest |w|
  first (`synflow`'s fallback)."""
  scale = jax.tree.map(lambda w: jnp.maximum(jnp.max(jnp.abs(w)), 1e-30),
                       ctx.params)
  return _synflow_flow(ctx, jax.tree.map(lambda w, s: jnp.abs(w) / s,
                                         ctx.params, scale))[0]


def _bn_scales(params: PyTree) -> list:
  """Per leaf of `params`: the |scale| leaf of the BatchNorm after it, if
  it is a kernel with one (`structure.norm_layer`), else None."""
  paths = masks_lib.leaf_paths(params)
  leaves = jax.tree.leaves(params)
  where = dict(zip(paths, leaves))
  out = []
  for path, w in zip(paths, leaves):
    norm = structure.norm_layer(path) if path.endswith('/kernel') else None
    gamma = where.get(f'{norm}/scale') if norm else None
    fits = gamma is not None and jnp.shape(gamma) == jnp.shape(w)[-1:]
    out.append(gamma if fits else None)
  return out


def bn_scale(ctx: ScoreContext) -> PyTree:
  """Every weight of an output unit scores its BatchNorm's |scale| (the
  channel criterion of network slimming, Liu et al. 2017, and Early-Bird
  tickets); a kernel with no BatchNorm after it (`structure.norm_layer`)
  scores |w|, so the output layer and plain layers keep magnitude."""
  leaves = jax.tree.leaves(ctx.params)
  out = [jnp.abs(w) if gamma is None
         else jnp.broadcast_to(jnp.abs(gamma), jnp.shape(w))
         for w, gamma in zip(leaves, _bn_scales(ctx.params))]
  return jax.tree.unflatten(jax.tree.structure(ctx.params), out)


def check(name: str, params: PyTree,
          prunable: masks_lib.LeafFilter = masks_lib.is_kernel) -> None:
  """ValueError when score `name` cannot do what it says on a model with
  `params` (arrays or shapes): 'bn_scale' needs a prunable kernel followed
  by a BatchNorm, else every weight would score |w|, which is
  'magnitude'."""
  if name != 'bn_scale':
    return
  leaves = jax.tree.leaves(params)
  if all(g is None or not prunable(p, w) for p, w, g in zip(
      masks_lib.leaf_paths(params), leaves, _bn_scales(params))):
    raise ValueError(
        "score 'bn_scale' ranks a unit's weights by the |scale| of the "
        'BatchNorm after its kernel, and no prunable kernel of this model '
        "has one: every weight would score |w|. Use score 'magnitude', or a "
        'model with BatchNorm (e.g. mnist1d_cnn with batch_norm=True)')


def _vdot(a: PyTree, b: PyTree) -> jax.Array:
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a),
                                             jax.tree.leaves(b)))


SCORES: dict[str, Callable[[ScoreContext], PyTree]] = {
    'magnitude': magnitude,
    'magnitude_normalized': magnitude_normalized,
    'random': random,
    'snip': snip,
    'grasp': grasp,
    'synflow': synflow,
    'bn_scale': bn_scale,
}


def register(name: str, score: Callable[[ScoreContext], PyTree]) -> None:
  """Adds `score(ctx) -> pytree of scores shaped like ctx.params`."""
  if name in SCORES:
    raise ValueError(f'score {name!r} is already registered')
  SCORES[name] = score


def get(name: str) -> Callable[[ScoreContext], PyTree]:
  if name not in SCORES:
    raise ValueError(f'unknown score {name!r}; valid scores are '
                     f'{sorted(SCORES)}')
  return SCORES[name]
