"""Sparsity distributions (`core/distributions.py`): uniform, ER, ERK."""
import math

import jax
import numpy as np
import pytest

from ticketjax.core import distributions
from ticketjax.core import masks
from ticketjax.models import get_model


def _shapes(*shapes):
  return {f'l{i}': {'kernel': np.zeros(s, np.float32)}
          for i, s in enumerate(shapes)}


@pytest.mark.parametrize('name', distributions.DISTRIBUTIONS)
@pytest.mark.parametrize('density', [0.5, 0.2, 0.1, 0.05, 0.013])
def test_counts_add_up_to_the_budget(name, density):
  params = jax.eval_shape(get_model('lenet_300_100').init,
                          jax.random.PRNGKey(0))[0]
  kept = distributions.counts(params, density, name)
  total = 784 * 300 + 300 * 100 + 100 * 10
  assert sum(kept.values()) == total - math.floor(
      np.float32(1 - density) * np.float32(total) + 0.5)
  if name == 'uniform':
    for path, k in kept.items():
      n = {'dense_0/kernel': 235200, 'dense_1/kernel': 30000,
           'output/kernel': 1000}[path]
      assert abs(k - density * n) <= 1


def test_erk_by_hand_with_a_layer_made_dense():
  # raw shares sum(shape)/prod(shape): 0.02 for (100, 100), 0.5 for (2, 2)
  params = _shapes((100, 100), (2, 2))
  kept = distributions.counts(params, 0.1, 'erk')
  # budget 10004 - floor(0.9 * 10004 + 0.5) = 1000; eps = 1000 / (0.02 *
  # 10000 + 0.5 * 4) = 4.95 makes the small layer's share 2.5 > 1: it is
  # dense (4 of 4), and the large one keeps the other 996
  assert kept == {'l0/kernel': 996, 'l1/kernel': 4}


def test_er_ignores_kernel_dims_and_erk_uses_them():
  params = _shapes((3, 3, 16, 32), (512, 10))
  er = distributions.densities(params, 0.2, 'er')
  erk = distributions.densities(params, 0.2, 'erk')
  # raw ER: (16+32)/(16*32) = 0.09375, (512+10)/5120 = 0.10195
  # raw ERK: (3+3+16+32)/4608 = 0.01172, (522)/5120 = 0.10195
  assert er['l0/kernel'] / er['l1/kernel'] == pytest.approx(
      0.09375 / (522 / 5120), rel=1e-2)
  assert erk['l0/kernel'] / erk['l1/kernel'] == pytest.approx(
      (54 / 4608) / (522 / 5120), rel=1e-2)


def test_random_mask_keeps_the_counts():
  params = get_model('lenet_300_100').init(jax.random.PRNGKey(0))[0]
  kept = distributions.counts(params, 0.05, 'erk')
  mask = distributions.random_mask(jax.random.PRNGKey(1), params, kept)
  got = {p: int(v) for p, v in masks.counts(mask)['kept'].items()}
  assert got == kept


def test_bad_input_is_refused():
  with pytest.raises(ValueError, match='valid are'):
    distributions.counts(_shapes((4, 4)), 0.5, 'erdos')
  with pytest.raises(ValueError, match=r'outside \(0, 1\]'):
    distributions.counts(_shapes((4, 4)), 0.0, 'erk')
