"""The CPU-kernel switch (`core/kernels.py`): auto | on | off."""
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from configs import dense_mnist1d
from ticketjax.core import data_order
from ticketjax.core import kernels
from ticketjax.models import get_model
from ticketjax.models.cpu import kernel_matmul
from ticketjax.models.cpu import patch_conv
from ticketjax.run import jobs


@pytest.fixture(autouse=True)
def _restore_mode():
  before = kernels.mode()
  yield
  kernels.set_mode(before)


def test_modes_pick_the_kernels():
  on_cpu = jax.default_backend() == 'cpu'
  kernels.set_mode('auto')
  assert kernels.enabled() == on_cpu
  assert (kernel_matmul.for_backend() is kernel_matmul.dot_general) == on_cpu
  kernels.set_mode('off')
  assert kernel_matmul.for_backend() is lax.dot_general
  assert patch_conv.for_backend() is lax.conv_general_dilated
  kernels.set_mode('on')
  assert kernel_matmul.for_backend() is kernel_matmul.dot_general
  assert patch_conv.for_backend() is patch_conv.conv_general_dilated
  with pytest.raises(ValueError, match=r"unknown cpu_kernels mode 'fast'"):
    kernels.set_mode('fast')
  assert kernels.mode() == 'on'  # a bad mode changes nothing


def test_forward_mode_through_a_model_works_with_the_kernels_off():
  """`off` is the standard XLA path: jax.jvp works (the custom VJP has no
  forward rule), and the outputs equal the CPU kernels' to rounding."""
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 40))
  outs = {}
  for mode in ('on', 'off'):
    kernels.set_mode(mode)
    model = get_model('mnist1d_mlp', num_classes=10)
    params, state = model.init(jax.random.PRNGKey(0))
    f = lambda p: model.apply(p, state, x, train=False)[0]
    outs[mode] = f(params)
    if mode == 'off':
      tangent = jax.tree.map(jnp.ones_like, params)
      _, jvp = jax.jvp(f, (params,), (tangent,))
      assert np.all(np.isfinite(jvp))
  np.testing.assert_allclose(outs['on'], outs['off'], rtol=1e-5, atol=1e-5)


def test_data_order_is_the_same_in_every_mode():
  key = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(data_order.permutation(key, 1000),
                                jax.random.permutation(key, 1000))


def test_a_run_with_the_kernels_off_matches_and_keeps_its_folder(tmp_path):
  config = dense_mnist1d.get_config('smoke')
  config.progress = False
  auto = jobs.run(config, str(tmp_path))
  config.cpu_kernels = 'off'
  off = jobs.run(config, str(tmp_path / 'off'))
  # the mode is not semantic: same folder name, same numbers to rounding
  assert (auto['run_dir'].rsplit('/', 1)[1] ==
          off['run_dir'].rsplit('/', 1)[1])
  np.testing.assert_allclose(auto['test_accuracy']['values'],
                             off['test_accuracy']['values'], atol=0.02)
  config.cpu_kernels = 'fast'
  with pytest.raises(ValueError, match='cpu_kernels'):
    jobs.run(config, str(tmp_path / 'bad'))
  assert not (tmp_path / 'bad').exists()
