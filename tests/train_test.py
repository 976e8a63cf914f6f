"""Trainer: vmapped == per-seed, no recompiles, exact masking, exact resume."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ticketjax.core import masks
from ticketjax.core import optim
from ticketjax.core import pruning
from ticketjax.core import train as train_lib
from ticketjax.core.types import Model
from ticketjax.run import loop
from testlib import synthetic_dataset, tiny_mlp

STEPS = 40


def _trainer(name='adam', batch_size=16, **kw):
  cfg = optim.OptimizerConfig(name=name, learning_rate=1e-2, **kw)
  return train_lib.Trainer(tiny_mlp(), optim.make_optimizer(cfg, 100),
                           batch_size=batch_size, eval_batch_size=10)


def _init(trainer, num_seeds=3, seed=0):
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      train_lib.seed_keys(seed, num_seeds))
  return trainer.init_states(init_keys, noise_keys)


@pytest.fixture(scope='module')
def data():
  return train_lib.to_device(synthetic_dataset())


def _assert_trees_close(a, b, **kw):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def test_vmapped_seeds_equal_single_seed_runs(data):
  trainer = _trainer()
  state_S = _init(trainer)
  out_S, metrics = trainer.train(state_S, data, STEPS)
  assert metrics['loss'].shape == (STEPS, 3)
  ev_S = trainer.evaluate(out_S, data.x_test, data.y_test)
  for i in range(3):
    one = train_lib.stack([train_lib.unstack(state_S, i)])
    out_1, metrics_1 = trainer.train(one, data, STEPS)
    _assert_trees_close(train_lib.unstack(out_1, 0).params,
                        train_lib.unstack(out_S, i).params,
                        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics_1['loss'][:, 0], metrics['loss'][:, i],
                               rtol=1e-5, atol=1e-6)
    ev_1 = trainer.evaluate(out_1, data.x_test, data.y_test)
    np.testing.assert_allclose(ev_1['accuracy'][0], ev_S['accuracy'][i])


def test_members_at_later_steps_wait_for_the_shared_step(data):
  """Members at steps 0, 4 and 8 trained to step 8 (a rewind-step grid's
  level): each trains exactly the steps of its own run, the one at 8 waits
  untouched, and the metrics say who trained when."""
  trainer = _trainer()
  start = [train_lib.stack([train_lib.unstack(_init(trainer), i)])
           for i in range(3)]
  start[1] = trainer.train(start[1], data, 4)[0]
  start[2] = trainer.train(trainer.train(start[2], data, 4)[0], data, 4)[0]
  out_S, metrics = trainer.train(
      train_lib.stack([train_lib.unstack(s, 0) for s in start]), data, 8)
  np.testing.assert_array_equal(out_S.step, [8, 8, 8])
  active = np.asarray(metrics['active'])
  np.testing.assert_array_equal(active, np.stack(
      [np.ones(8, bool), np.arange(8) >= 4, np.zeros(8, bool)], axis=1))
  alone_0, metrics_0 = trainer.train(start[0], data, 8)
  alone_1, metrics_1 = trainer.train(start[1], data, 4)
  for i, alone, metrics_1 in ((0, alone_0, metrics_0), (1, alone_1,
                                                         metrics_1)):
    _assert_trees_close(train_lib.unstack(alone, 0),
                        train_lib.unstack(out_S, i), rtol=1e-5, atol=1e-6)
    steps = metrics_1['loss'].shape[0]
    np.testing.assert_allclose(metrics_1['loss'][:, 0],
                               metrics['loss'][8 - steps:, i], rtol=1e-5)
  for x, y in zip(jax.tree.leaves(train_lib.unstack(start[2], 0)),
                  jax.tree.leaves(train_lib.unstack(out_S, 2))):
    np.testing.assert_array_equal(x, y)
  means = loop.train_means(metrics)
  np.testing.assert_array_equal(means['trained_steps'], [8, 4, 0])
  assert np.isnan(means['train_loss'][2])
  np.testing.assert_allclose(means['train_loss'][1],
                             np.asarray(metrics['loss'])[4:, 1].mean(),
                             rtol=1e-6)


def test_seeds_differ_in_init_and_data_order(data):
  trainer = _trainer()
  state_S = _init(trainer, 2)
  assert not np.allclose(state_S.params['dense_0']['kernel'][0],
                         state_S.params['dense_0']['kernel'][1])
  # same init, different noise keys: the two runs diverge from data order
  same_init = state_S._replace(params=jax.tree.map(
      lambda x: jnp.stack([x[0], x[0]]), state_S.params),
      opt_state=jax.tree.map(lambda x: jnp.stack([x[0], x[0]]),
                             state_S.opt_state))
  _, metrics = trainer.train(same_init, data, 3)
  assert metrics['loss'][0, 0] != metrics['loss'][0, 1]


def test_new_mask_does_not_recompile(data):
  trainer = _trainer()
  state_S = _init(trainer)
  trained, _ = trainer.train(state_S, data, STEPS)
  assert trainer._train._cache_size() == 1
  for level, rate in enumerate((0.3, 0.5)):
    mask_S = jax.vmap(pruning.layerwise_magnitude, in_axes=(0, 0, None))(
        trained.params, trained.mask, rate)
    state_S = jax.vmap(trainer.reset)(state_S.params, state_S.model_state,
                                      mask_S, state_S.key)
    trained, _ = trainer.train(state_S, data, STEPS)
    trainer.evaluate(trained, data.x_test, data.y_test)
    assert trainer._train._cache_size() == 1, f'recompiled at level {level}'
  assert trainer._evaluate._cache_size() == 1


@pytest.mark.parametrize('name', ['adam', 'nesterov'])
def test_masked_weights_stay_exactly_zero(data, name):
  trainer = _trainer(name, weight_decay=1e-3)
  state_S = _init(trainer)
  trained, _ = trainer.train(state_S, data, STEPS)
  mask_S = jax.vmap(pruning.layerwise_magnitude, in_axes=(0, 0, None))(
      trained.params, trained.mask, 0.7)
  # keep the trained weights and Adam moments (fine-tuning): stale moments
  # of the newly pruned weights must not bring them back
  pruned = trained._replace(params=masks.apply(trained.params, mask_S),
                            mask=mask_S)
  out, _ = trainer.train(pruned, data, STEPS)
  for p, m in zip(jax.tree.leaves(out.params), jax.tree.leaves(mask_S)):
    assert bool(jnp.all(jnp.where(m, True, p == 0.0)))
  moved = out.params['dense_0']['kernel'] != pruned.params['dense_0']['kernel']
  assert bool(jnp.any(moved))  # the survivors did train


def test_resume_is_bitwise_identical(data):
  trainer = _trainer(batch_size=20)  # 96 // 20 = 4 steps per epoch
  state_S = _init(trainer, 2)
  straight, _ = trainer.train(state_S, data, 10)
  half, _ = trainer.train(state_S, data, 5)
  half = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), half)  # "saved"
  resumed, _ = trainer.train(half, data, 5)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_evaluate_matches_direct_computation(data):
  trainer = _trainer()
  state_S = _init(trainer, 2)
  ev = trainer.evaluate(state_S, data.x_test, data.y_test)  # 32 rows, chunk 10
  for i in range(2):
    logits, _ = trainer.model.apply(
        train_lib.unstack(state_S.params, i), {}, data.x_test, train=False)
    acc = np.mean(np.argmax(logits, -1) == np.asarray(data.y_test))
    loss = np.mean(train_lib.cross_entropy(logits, data.y_test))
    np.testing.assert_allclose(ev['accuracy'][i], acc, rtol=1e-6)
    np.testing.assert_allclose(ev['loss'][i], loss, rtol=1e-5)


def test_batch_larger_than_data_raises(data):
  trainer = _trainer(batch_size=1000)
  with pytest.raises(ValueError, match='batch size 1000 exceeds'):
    trainer.train(_init(trainer, 1), data, 1)


def test_schedules():
  cfg = optim.OptimizerConfig(learning_rate=0.1, schedule='step',
                              boundaries=(10, 20), warmup_steps=5)
  lr = optim.make_schedule(cfg, 30)
  np.testing.assert_allclose([lr(0), lr(5), lr(8), lr(12), lr(26)],
                             [0.0, 0.1, 0.1, 0.01, 0.001], rtol=1e-5)
  cos = optim.make_schedule(optim.OptimizerConfig(learning_rate=1.0,
                                                  schedule='cosine'), 100)
  np.testing.assert_allclose([cos(0), cos(50), cos(100)], [1.0, 0.5, 0.0],
                             atol=1e-6)


@pytest.mark.parametrize('field,value,match', [
    ('name', 'adamw', 'unknown optimizer'),
    ('schedule', 'linear', 'unknown schedule'),
    ('learning_rate', 0.0, 'learning_rate'),
    ('boundaries', (50, 10), 'boundaries'),
    ('warmup_steps', 200, 'warmup_steps'),
])
def test_bad_optimizer_config_raises(field, value, match):
  cfg = optim.OptimizerConfig(**{field: value})
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(cfg, 100)


def test_scale_by_adam_is_optax_adam_with_its_state():
  """`optim.scale_by_adam` (reciprocal bias corrections, the same numbers
  on any device count) keeps optax's state, so checkpoints stay
  compatible, and agrees with optax's Adam to float rounding."""
  import optax  # pylint: disable=g-import-not-at-top
  params = {'w': jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
  ours = optim.scale_by_adam(0.9, 0.999, 1e-8)
  theirs = optax.scale_by_adam(0.9, 0.999, 1e-8)
  s_ours, s_theirs = ours.init(params), theirs.init(params)
  assert jax.tree.structure(s_ours) == jax.tree.structure(s_theirs)
  for t in range(5):
    grads = jax.tree.map(lambda p: jnp.sin(3.0 * p + t), params)
    u_ours, s_ours = jax.jit(ours.update)(grads, s_ours)
    u_theirs, s_theirs = jax.jit(theirs.update)(grads, s_theirs)
    _assert_trees_close(u_ours, u_theirs, rtol=1e-6, atol=1e-7)
    _assert_trees_close(s_ours, s_theirs, rtol=1e-6, atol=1e-7)


def test_sequence_labels_evaluate_to_the_mean_per_token():
  """A language model's [N, T] next-token labels: the evaluation is the
  mean cross-entropy and accuracy per token, also when N is not a multiple
  of the evaluation chunk (padded examples count for nothing)."""
  vocab, n, t = 7, 13, 5

  def init(key):
    return {'bigram': {'table': jax.random.normal(key, (vocab, vocab))}}, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    return params['bigram']['table'][x.astype(jnp.int32)], state

  model = Model(init, apply, 'bigram')
  trainer = train_lib.Trainer(model, optax.sgd(0.1), batch_size=4,
                              eval_batch_size=4)
  params, _ = init(jax.random.PRNGKey(0))
  x = jax.random.randint(jax.random.PRNGKey(1), (n, t), 0, vocab)
  y = jax.random.randint(jax.random.PRNGKey(2), (n, t), 0, vocab)
  got = trainer.evaluate_one(params, {}, x, y)
  logits = np.asarray(params['bigram']['table'])[np.asarray(x)]
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, np.asarray(y)[..., None], -1)[..., 0]
  np.testing.assert_allclose(got['loss'], nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(got['accuracy'],
                             (logits.argmax(-1) == np.asarray(y)).mean(),
                             rtol=1e-6)
