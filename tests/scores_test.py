"""Pruning scores (`core/scores.py`) and `pruning.by_score`."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from ticketjax.core import pruning
from ticketjax.core import scores
from ticketjax.core.types import Model
from ticketjax.models import get_model


def _linear():
  """logits = x @ W: a model whose loss gradient is known in closed form."""
  def init(key):
    return {'out': {'kernel': jax.random.normal(key, (3, 2))}}, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    return x @ params['out']['kernel'], state

  return Model(init, apply, 'linear')


def _linear_ctx():
  """(ctx, x, y, W) of the linear model on a batch of two."""
  model = _linear()
  params, state = model.init(jax.random.PRNGKey(0))
  x = jnp.array([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]])
  y = jnp.array([0, 1])
  ctx = scores.ScoreContext(params, masks.ones_like(params), model=model,
                            model_state=state, batch=(x, y))
  return ctx, x, y, params['out']['kernel']


def test_snip_is_the_hand_computed_gradient_times_weight():
  ctx, x, y, w = _linear_ctx()
  # mean cross-entropy of softmax(x W): dL/dW = x^T (softmax(xW) - onehot)/N
  p = jax.nn.softmax(x @ w)
  grad = x.T @ (p - jax.nn.one_hot(y, 2)) / 2
  np.testing.assert_allclose(scores.snip(ctx)['out']['kernel'],
                             np.abs(grad * w), rtol=1e-5)


def test_scores_that_need_more_say_what():
  params = {'out': {'kernel': jnp.ones((3, 2))}}
  ctx = scores.ScoreContext(params, masks.ones_like(params))
  with pytest.raises(ValueError, match=r"score 'snip' needs \['model'"):
    scores.snip(ctx)
  with pytest.raises(ValueError, match=r"needs \['key'\]"):
    scores.random(ctx)
  with pytest.raises(ValueError, match="unknown score 'grasp2'"):
    scores.get('grasp2')
  with pytest.raises(ValueError, match='already registered'):
    scores.register('magnitude', scores.magnitude)


@pytest.mark.parametrize('name', ['magnitude', 'random', 'snip'])
@pytest.mark.parametrize('scope', ['layerwise', 'global'])
def test_by_score_keeps_the_documented_count(name, scope):
  """Every score in either scope removes floor(rate * n + 0.5) survivors
  (per layer, or of the pool), never a pruned weight."""
  model = _linear()
  params, state = model.init(jax.random.PRNGKey(1))
  params['hidden'] = {'kernel': jax.random.normal(jax.random.PRNGKey(2),
                                                   (5, 4))}
  mask = masks.ones_like(params)
  mask['hidden']['kernel'] = mask['hidden']['kernel'].at[0].set(False)
  params = masks.apply(params, mask)
  x, y = jnp.ones((2, 3)), jnp.array([0, 1])
  ctx = scores.ScoreContext(params, mask, jax.random.PRNGKey(3), model,
                            state, (x, y))
  new = pruning.by_score(name, scope, ctx, 0.5)
  kept = {k: int(v['kernel'].sum()) for k, v in new.items()}
  if scope == 'layerwise':
    assert kept == {'out': 3, 'hidden': 8}  # 6 -> 3, 16 -> 8
  else:
    assert sum(kept.values()) == 11  # 22 survivors pooled -> 11
  assert not bool(jnp.any(new['hidden']['kernel'] & ~mask['hidden']['kernel']))
  with pytest.raises(ValueError, match="unknown pruning scope 'per_unit'"):
    pruning.by_score(name, 'per_unit', ctx, 0.5)


def test_registry_rules_are_scores_in_a_scope():
  """The named rules of `pruning.PRUNERS` equal by_score of their score."""
  params = {'a': {'kernel': jax.random.normal(jax.random.PRNGKey(4), (6, 5))},
            'b': {'kernel': jax.random.normal(jax.random.PRNGKey(5), (5, 3))}}
  mask = masks.ones_like(params)
  ctx = scores.ScoreContext(params, mask)
  for rule, score, scope in (('layerwise_magnitude', 'magnitude', 'layerwise'),
                             ('global_magnitude', 'magnitude', 'global')):
    got = pruning.prune(rule, params, mask, 0.3)
    want = pruning.by_score(score, scope, ctx, 0.3)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()),
                                     got, want))


def test_grasp_is_the_weight_times_the_hessian_gradient_product():
  ctx, x, y, w = _linear_ctx()

  def loss(flat):  # at temperature 200, on the flattened kernel
    logp = jax.nn.log_softmax(x @ flat.reshape(3, 2) / 200.0)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

  g = jax.grad(loss)(w.reshape(-1))
  hg = (jax.hessian(loss)(w.reshape(-1)) @ g).reshape(3, 2)
  got = scores.grasp(ctx)['out']['kernel']
  np.testing.assert_allclose(got, w * hg, rtol=1e-4, atol=1e-12)
  assert (np.asarray(got) < 0).any()  # signed: the sign is the method


def test_grasp_hg_equals_a_finite_difference_of_the_gradient():
  """Hg = (grad(w + eps g) - grad(w - eps g)) / (2 eps), in float64 numpy
  with the linear model's closed-form gradient at temperature 200."""
  ctx, x, y, w = _linear_ctx()
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  onehot = np.eye(2)[np.asarray(y)]

  def grad(weights):  # d/dW of mean CE(softmax(x W / T))
    z = x @ weights / 200.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return x.T @ (p - onehot) / (200.0 * len(x))

  g = grad(w)
  eps = 1e-3 / np.abs(g).max()
  hg = (grad(w + eps * g) - grad(w - eps * g)) / (2 * eps)
  got = np.asarray(scores.grasp(ctx)['out']['kernel'], np.float64)
  np.testing.assert_allclose(got, w * hg, rtol=2e-3, atol=1e-14)


def _relu_mlp():
  """A bias-free ReLU MLP: homogeneous of degree 1 in each layer."""
  def init(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {'a': {'kernel': jax.random.normal(k1, (5, 8))},
            'b': {'kernel': jax.random.normal(k2, (8, 6))},
            'output': {'kernel': jax.random.normal(k3, (6, 3))}}, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    h = jax.nn.relu(x @ params['a']['kernel'])
    h = jax.nn.relu(h @ params['b']['kernel'])
    return h @ params['output']['kernel'], state

  return Model(init, apply, 'relu_mlp')


def test_synflow_conserves_the_flow_in_every_layer():
  """Tanaka et al.'s conservation law: for a bias-free ReLU network with
  |w| on an all-ones input, every layer's scores sum to the same R."""
  model = _relu_mlp()
  params, state = model.init(jax.random.PRNGKey(3))
  mask = masks.ones_like(params)
  mask['b']['kernel'] = mask['b']['kernel'].at[:4].set(False)
  params = masks.apply(params, mask)
  ctx = scores.ScoreContext(params, mask, model=model, model_state=state,
                            batch=(jnp.zeros((7, 5)), jnp.zeros(7, jnp.int32)))
  got = scores.synflow(ctx)
  sums = [float(jnp.sum(got[k]['kernel'])) for k in ('a', 'b', 'output')]
  np.testing.assert_allclose(sums, [sums[0]] * 3, rtol=1e-5)
  assert not np.any(np.asarray(got['b']['kernel'])[:4])  # pruned: no flow
  # scaling a layer by c multiplies every score by c: the ranking stays
  big = dict(params, a={'kernel': params['a']['kernel'] * 1e6})
  again = scores.synflow(dataclasses.replace(ctx, params=big))
  for k in ('a', 'b', 'output'):
    np.testing.assert_allclose(again[k]['kernel'], 1e6 * got[k]['kernel'],
                               rtol=1e-5)
  # where R overflows float32 (1e20 per layer: R ~ 1e60), the scores of
  # the network with each leaf divided by its max |w|: finite, and for a
  # bias-free network the same ranking (proportional scores)
  huge = jax.tree.map(lambda w: w * 1e20, params)
  over = scores.synflow(dataclasses.replace(ctx, params=huge))
  total = lambda tree: sum(float(jnp.sum(v)) for v in jax.tree.leaves(tree))
  for k in ('a', 'b', 'output'):
    assert np.all(np.isfinite(over[k]['kernel']))
    np.testing.assert_allclose(over[k]['kernel'] / total(over),
                               got[k]['kernel'] / total(got), rtol=1e-4)


def test_synflow_is_the_papers_score_with_biases():
  """With biases (no homogeneity) the score is the paper's own, in
  float32: |θ ⊙ ∂R/∂θ| of the network of |θ| on an all-ones input, with no
  rescaling (which would move the ranking)."""
  model = get_model('mnist1d_mlp')
  params, state = model.init(jax.random.PRNGKey(0))
  mask = masks.ones_like(params)
  ctx = scores.ScoreContext(params, mask, model=model, model_state=state,
                            batch=(jnp.zeros((3, 40)), jnp.zeros(3, jnp.int32)))
  linear = jax.tree.map(jnp.abs, params)
  grads = jax.grad(lambda p: jnp.sum(model.apply(
      p, state, jnp.ones((1, 40)), train=False)[0]))(linear)
  want = jax.tree.map(lambda g, w: jnp.abs(g * w), grads, linear)
  got = scores.synflow(ctx)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize('scope', ['layerwise', 'global'])
def test_iterative_synflow_ends_at_the_one_round_counts(scope):
  from ticketjax.methods.pai import core as pai  # pylint: disable=g-import-not-at-top
  model = _relu_mlp()
  params, state = model.init(jax.random.PRNGKey(4))
  cfg = pai.PaiConfig(densities=(0.05,), score='synflow', scope=scope)
  assert cfg.num_rounds == 100

  @jax.jit
  def prune(params, density):
    ctx = scores.ScoreContext(
        params, masks.ones_like(params), model=model, model_state=state,
        batch=(jnp.zeros((2, 5)), jnp.zeros(2, jnp.int32)))
    return pai.prune_at_init(cfg, ctx, density)

  mask = prune(params, jnp.float32(0.05))
  kept = {k: int(mask[k]['kernel'].sum()) for k in mask}
  sizes = {k: params[k]['kernel'].size for k in params}
  n = sum(sizes.values())
  if scope == 'global':
    assert sum(kept.values()) == n - int(np.floor(np.float32(0.95) * n + 0.5))
  else:
    assert kept == {k: s - int(np.floor(np.float32(0.95) * s + 0.5))
                    for k, s in sizes.items()}


def test_bn_scale_is_refused_for_a_model_without_batchnorm():
  shapes = lambda model: jax.eval_shape(model.init, jax.random.PRNGKey(0))[0]
  cnn = shapes(get_model('mnist1d_cnn', batch_norm=True))
  scores.check('bn_scale', cnn)  # its convolutions have BatchNorm
  with pytest.raises(ValueError, match='no prunable kernel'):  # not pruned
    scores.check('bn_scale', cnn, lambda path, x: 'conv' not in path)
  mlp = shapes(get_model('mnist1d_mlp'))
  scores.check('magnitude', mlp)
  with pytest.raises(ValueError,
                     match='no prunable kernel of this model has one'):
    scores.check('bn_scale', mlp)
