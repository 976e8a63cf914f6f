"""Augmentation: crops and flips by hand, keyed by step, wired by config."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import imp_resnet20_cifar10
from ticketjax.core import augment
from ticketjax.core import optim
from ticketjax.core import train
from ticketjax.run import workdir
from testlib import tiny_mlp


def test_crop_flip_is_a_shifted_window_of_the_black_padded_image():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 6, 5, 2)).astype(np.float32)
  fill = (-1.5, 2.0)
  key = jax.random.PRNGKey(3)
  out = np.asarray(augment.crop_flip(jnp.asarray(x), key, pad=2, fill=fill))
  k_row, k_col, k_flip = jax.random.split(key, 3)
  rows = np.asarray(jax.random.randint(k_row, (16,), 0, 5))
  cols = np.asarray(jax.random.randint(k_col, (16,), 0, 5))
  flips = np.asarray(jax.random.bernoulli(k_flip, 0.5, (16,)))
  padded = np.empty((16, 10, 9, 2), np.float32)
  padded[...] = np.asarray(fill, np.float32)
  padded[:, 2:8, 2:7] = x
  for i in range(16):
    want = padded[i, rows[i]:rows[i] + 6, cols[i]:cols[i] + 5]
    if flips[i]:
      want = want[:, ::-1]
    np.testing.assert_array_equal(out[i], want)
  # the draws cover shifts, no shift and both flip states
  assert len(set(rows)) > 2 and flips.any() and not flips.all()


def test_get_augment_validates_and_fills_with_normalized_black():
  assert augment.get_augment('none', (32, 32, 3)) is None
  with pytest.raises(ValueError, match='valid augmentations'):
    augment.get_augment('mixup', (32, 32, 3))
  with pytest.raises(ValueError, match=r'image inputs \(H, W, C\)'):
    augment.get_augment('crop_flip', (40,))
  aug = augment.get_augment('crop_flip', (4, 4, 1), (0.5,), (0.25,))
  x = jnp.full((64, 4, 4, 1), 7.0)
  out = aug(x, jax.random.PRNGKey(0))
  # a crop shifted off the image shows the padding: black, normalized
  assert set(np.unique(np.asarray(out))) == {-2.0, 7.0}


def _image_trainer(aug):
  model = tiny_mlp(in_dim=4 * 4 * 1)
  flat = model._replace(apply=lambda p, s, x, **kw: model.apply(
      p, s, x.reshape(x.shape[0], -1), **kw))
  tx = optim.make_optimizer(optim.OptimizerConfig(name='sgd',
                                                  learning_rate=0.1), 10)
  return train.Trainer(flat, tx, batch_size=8, augment=aug)


def test_trainer_augments_training_batches_reproducibly():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(32, 4, 4, 1)).astype(np.float32)
  y = rng.integers(0, 3, 32).astype(np.int32)
  data = train.DeviceData(*map(jnp.asarray, (
      x, y, x[:0], y[:0], x[:8], y[:8])))
  keys = train.seed_keys(0, 2)
  init, noise = jax.vmap(train.split_seed_key)(keys)

  def run(aug, steps=(6,)):
    trainer = _image_trainer(aug)
    state = trainer.init_states(init, noise)
    for n in steps:
      state, _ = trainer.train(state, data, n)
    return state.params

  aug = augment.get_augment('crop_flip', (4, 4, 1))
  plain, augmented = run(None), run(aug)
  assert not np.allclose(jax.tree.leaves(plain)[1],
                         jax.tree.leaves(augmented)[1])
  # keyed by (seed, step): training in two chunks gives the same weights
  for a, b in zip(jax.tree.leaves(augmented),
                  jax.tree.leaves(run(aug, steps=(2, 4)))):
    np.testing.assert_array_equal(a, b)


def test_config_field_is_hash_neutral_at_its_default():
  config = imp_resnet20_cifar10.get_config()
  assert config.data.augment == 'crop_flip'
  tree = workdir.semantic_config(config)
  assert tree['data']['augment'] == 'crop_flip'
  config.data.augment = 'none'
  assert 'augment' not in workdir.semantic_config(config)['data']
