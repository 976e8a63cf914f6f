"""Dense-layer matmul whose kernel gradient comes out in the kernel's layout.

For y = x @ W (x: [..., in], W: [in, out]) JAX's transpose rule computes the
kernel gradient as dy^T x, an [out, in] product, and transposes it to W's
[in, out]. In the training scan, vmapped over seeds, XLA:CPU keeps that
product [out, in] and fuses the transpose into every pass that reads it: the
optimizer's first- and second-moment updates then read the gradient one
column at a time. For LeNet-300-100's 784x300 kernel on a 2-core CPU those
two passes took about 0.33 ms of a 2.0 ms training step (Adam), and about
0.13 ms when the gradient comes in W's layout (`jax.profiler` per-thunk
times, 2 seeds on 2 devices; WORKSPACE.md, throughput).

`dot_general` here is the matmul `nnx.Linear` does, with a custom VJP whose
kernel gradient is x^T dy contracted over every leading axis of x, born
[in, out], and whose input gradient is dy W^T, as JAX's. Forward values
are JAX's; the kernel gradient holds the same sums, which the matmul kernel
may add in another order (float rounding, about 1e-7 relative). Reverse
mode, `vmap` and gradients of gradients work; forward-mode differentiation
(`jax.jvp`) of a custom VJP does not, so `adapter.dense` uses this only on
the CPU backend, where the layout matters, and accelerators keep
`lax.dot_general`. Other contractions, and calls asking for a
`preferred_element_type` or an output sharding, go to `lax.dot_general`
unchanged.
"""
import functools

import jax
from jax import lax

from ticketjax.core import kernels


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul(x, kernel, precision):
  return _forward(x, kernel, precision)


def _forward(x, kernel, precision):
  return lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                         precision=precision)


def _matmul_fwd(x, kernel, precision):
  return _forward(x, kernel, precision), (x, kernel)


def _matmul_bwd(precision, residuals, dy):
  x, kernel = residuals
  leading = tuple(range(x.ndim - 1))
  d_kernel = lax.dot_general(x, dy, ((leading, leading), ((), ())),
                             precision=precision)
  d_x = lax.dot_general(dy, kernel, (((dy.ndim - 1,), (1,)), ((), ())),
                        precision=precision)
  return d_x, d_kernel


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def dot_general(lhs, rhs, dimension_numbers, precision=None,
                preferred_element_type=None, out_sharding=None, **kwargs):
  """`lax.dot_general`; `nnx.Linear`'s contraction by the custom VJP."""
  dense = (rhs.ndim == 2 and lhs.ndim >= 1 and dimension_numbers == (
      ((lhs.ndim - 1,), (0,)), ((), ())))
  if (not dense or preferred_element_type is not None
      or out_sharding is not None or kwargs):
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type,
                           out_sharding=out_sharding, **kwargs)
  return _matmul(lhs, rhs, precision)


def for_backend() -> object:
  """This module's `dot_general` where the CPU kernels are on
  (`core/kernels.py`: by default on the CPU backend), else
  `lax.dot_general`."""
  return dot_general if kernels.enabled() else lax.dot_general
