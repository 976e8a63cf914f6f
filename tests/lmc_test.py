"""Linear mode connectivity: the path probe, the barrier, BatchNorm stats."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax import data
from ticketjax import models
from ticketjax.core import masks
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.core.types import Model
from ticketjax.methods.lmc import path as lmc
from testlib import synthetic_dataset, tiny_mlp


def _trainer(model=None, steps=200):
  cfg = optim.OptimizerConfig(name='adam', learning_rate=1e-2)
  return train_lib.Trainer(model or tiny_mlp(),
                           optim.make_optimizer(cfg, steps), batch_size=16,
                           eval_batch_size=10)


def _two_trained(trainer, data, steps=60):
  keys = jax.vmap(train_lib.split_seed_key)(train_lib.seed_keys(0, 2))
  out, _ = trainer.train(trainer.init_states(*keys), data, steps)
  return train_lib.unstack(out, 0), train_lib.unstack(out, 1)


def test_barrier_definition():
  errors = jnp.array([0.1, 0.3, 0.5, 0.2, 0.1])
  np.testing.assert_allclose(lmc.error_barrier(errors), 0.5 - 0.1)
  np.testing.assert_allclose(lmc.error_barrier(jnp.array([0.2, 0.1, 0.4])),
                             0.4 - 0.3)  # max at an end
  assert lmc.alphas().shape == (30,)
  with pytest.raises(ValueError, match='at least 2'):
    lmc.alphas(1)


def test_path_equals_pointwise_evaluation_and_self_barrier_is_zero():
  trainer = _trainer()
  d = train_lib.to_device(synthetic_dataset())
  a, b = _two_trained(trainer, d)
  alpha = lmc.alphas(7)
  path = lmc.path_metrics(trainer, a.params, b.params, {}, {}, d.x_test,
                          d.y_test, alpha)
  for i, al in enumerate(np.asarray(alpha)):
    params = jax.tree.map(lambda p, q: (1 - al) * p + al * q, a.params,
                          b.params)
    ev = trainer.evaluate_one(params, {}, d.x_test, d.y_test)
    np.testing.assert_allclose(path['loss'][i], ev['loss'], rtol=1e-5)
    np.testing.assert_allclose(path['error'][i], 1 - ev['accuracy'])
  same = lmc.path_metrics(trainer, a.params, a.params, {}, {}, d.x_test,
                          d.y_test, alpha)
  assert float(lmc.error_barrier(same['error'])) == pytest.approx(0, abs=1e-6)
  np.testing.assert_allclose(same['loss'], same['loss'][0], rtol=1e-6)


def test_mask_is_applied_along_the_path():
  trainer = _trainer()
  d = train_lib.to_device(synthetic_dataset())
  a, b = _two_trained(trainer, d)
  mask = masks.ones_like(a.params)
  mask['output']['kernel'] = jnp.zeros_like(mask['output']['kernel'])
  path = lmc.path_metrics(trainer, a.params, b.params, {}, {}, d.x_test,
                          d.y_test, lmc.alphas(3), mask=mask)
  # with the output kernel masked every logit is the (interpolated) bias
  zeroed = jax.tree.map(lambda p, m: p * m, a.params, mask)
  ev = trainer.evaluate_one(zeroed, {}, d.x_test, d.y_test)
  np.testing.assert_allclose(path['loss'][0], ev['loss'], rtol=1e-5)


def _stateful_mlp() -> Model:
  """tiny_mlp with a BatchNorm-like running mean of the hidden layer."""
  base = tiny_mlp()

  def init(key):
    params, _ = base.init(key)
    return params, {'mean': jnp.zeros(16)}

  def apply(params, state, x, *, train, key=None):
    del key
    h = jax.nn.relu(x @ params['dense_0']['kernel'] +
                    params['dense_0']['bias'][None, :])
    if train:
      state = {'mean': 0.9 * state['mean'] + 0.1 * h.mean(0)}
    h = h - state['mean'][None, :]
    return (h @ params['output']['kernel'] +
            params['output']['bias'][None, :]), state

  return Model(init, apply, 'stateful_mlp')


def test_statistics_are_recomputed_for_each_interpolated_network():
  trainer = _trainer(_stateful_mlp())
  d = train_lib.to_device(synthetic_dataset())
  a, b = _two_trained(trainer, d)
  with pytest.raises(ValueError, match='x_stats'):
    lmc.path_metrics(trainer, a.params, b.params, a.model_state,
                     b.model_state, d.x_test, d.y_test, lmc.alphas(3))
  alpha = lmc.alphas(3)
  path = lmc.path_metrics(trainer, a.params, b.params, a.model_state,
                          b.model_state, d.x_test, d.y_test, alpha,
                          x_stats=d.x_train, stats_batches=200)
  # the midpoint's statistic is the mean hidden activation of the midpoint
  mid = jax.tree.map(lambda p, q: 0.5 * (p + q), a.params, b.params)
  h = jax.nn.relu(d.x_train @ mid['dense_0']['kernel'] +
                  mid['dense_0']['bias'][None, :])
  ev = trainer.evaluate_one(mid, {'mean': h.mean(0)}, d.x_test, d.y_test)
  # (a moving average over the last batches, not the full-data mean)
  np.testing.assert_allclose(path['loss'][1], ev['loss'], rtol=5e-2)
  stale = lmc.path_metrics(trainer, a.params, b.params, a.model_state,
                           b.model_state, d.x_test, d.y_test, alpha,
                           recompute_stats=False)
  assert abs(float(stale['loss'][1] - ev['loss'])) > abs(
      float(path['loss'][1] - ev['loss']))


def test_mnist1d_barriers_between_inits_and_between_copies():
  """Issue 5 must-show 1: large across inits, under 2% for close copies."""
  ds = data.load_dataset('mnist1d')
  d = train_lib.to_device(ds)
  cfg = optim.OptimizerConfig(name='adam', learning_rate=1e-2)
  trainer = train_lib.Trainer(models.get_model('mnist1d_mlp'),
                              optim.make_optimizer(cfg, 3000), batch_size=100)
  a, b = _two_trained(trainer, d, steps=3000)
  alpha = lmc.alphas()
  between = lmc.path_metrics(trainer, a.params, b.params, {}, {}, d.x_test,
                             d.y_test, alpha)
  assert float(lmc.error_barrier(between['error'])) > 0.2  # measured 0.332
  copies = train_lib.stack([a._replace(key=k) for k in
                            jax.random.split(jax.random.PRNGKey(7), 2)])
  copies, _ = trainer.train(copies, d, 300)
  c0, c1 = train_lib.unstack(copies, 0), train_lib.unstack(copies, 1)
  assert not np.allclose(c0.params['output']['kernel'],
                         c1.params['output']['kernel'])
  near = lmc.path_metrics(trainer, c0.params, c1.params, {}, {}, d.x_test,
                          d.y_test, alpha)
  assert float(lmc.error_barrier(near['error'])) < lmc.STABLE_BARRIER
