"""The fast permutation is `jax.random.permutation`, bit for bit."""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import data_order


@pytest.mark.parametrize('n', [1, 2, 10, 4000, 55000, 70000])
def test_permutation_equals_jax_random_permutation(n):
  keys = jax.random.split(jax.random.PRNGKey(n), 3)
  want = jax.jit(jax.vmap(lambda k: jax.random.permutation(k, n)))(keys)
  got = jax.jit(jax.vmap(lambda k: data_order.permutation(k, n)))(keys)
  assert got.dtype == jnp.int32 and got.shape == (3, n)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(np.sort(np.asarray(got[0])), np.arange(n))


def test_equal_keys_keep_the_stable_order():
  """Ties, which random 32-bit keys have now and then, sort as lax does."""
  sort_keys = jnp.array([5, 3, 5, 3, 1, 5, 0, 3], jnp.uint32)
  values = jnp.arange(8, dtype=jnp.int32) * 10
  np.testing.assert_array_equal(
      data_order.stable_sort_values(sort_keys, values),
      lax.sort_key_val(sort_keys, values)[1])
  # the largest keys and positions survive the 64-bit packing
  top = jnp.array([2 ** 32 - 1, 0, 2 ** 32 - 1, 7], jnp.uint32)
  np.testing.assert_array_equal(
      jax.jit(data_order.stable_sort_values)(top, jnp.arange(4)),
      np.array([1, 3, 0, 2]))


def test_the_rest_of_the_program_stays_32_bit():
  out = jax.jit(lambda k: data_order.permutation(k, 100) + 1)(
      jax.random.PRNGKey(0))
  assert out.dtype == jnp.int32
  assert not jax.config.jax_enable_x64
