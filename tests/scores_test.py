"""Pruning scores (`core/scores.py`) and `pruning.by_score`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import masks
from ticketjax.core import pruning
from ticketjax.core import scores
from ticketjax.core.types import Model


def _linear():
  """logits = x @ W: a model whose loss gradient is known in closed form."""
  def init(key):
    return {'out': {'kernel': jax.random.normal(key, (3, 2))}}, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    return x @ params['out']['kernel'], state

  return Model(init, apply, 'linear')


def test_snip_is_the_hand_computed_gradient_times_weight():
  model = _linear()
  params, state = model.init(jax.random.PRNGKey(0))
  x = jnp.array([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]])
  y = jnp.array([0, 1])
  ctx = scores.ScoreContext(params, masks.ones_like(params), model=model,
                            model_state=state, batch=(x, y))
  w = params['out']['kernel']
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
