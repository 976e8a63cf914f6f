"""Convolution as a sum of shifted matmuls, for training on CPU.

XLA:CPU runs a convolution fast only in the layout its Eigen kernels take.
Outside loops a compiler pass rewrites the other layouts into that one; in
the body of a `lax.scan` (where every ticketjax training step runs) the
weight- and input-gradient convolutions stay in their own layouts and run
as naive loops, about 10x slower (jax-ml/jax#12868; Conv-2, batch 8: 0.6 s
per step in a scan, 0.06 s outside), and a convolution vmapped over seeds
becomes a grouped convolution, which has no fast CPU kernel either.

`conv_general_dilated` here computes the same convolution as a sum over
kernel positions: the padded input's strided window at each position
([B * out, C]) times that position's [C, O] slice of the kernel (for few
input channels, as one matmul of the windows side by side, im2col). Its
gradients are slices, pads and matmuls, which XLA:CPU runs fast in any
loop and batches well under `vmap` (a 64-channel 3x3 layer on 32x32
inputs, batch 60, 8 seeds vmapped in a scan: 68 GFLOP/s on 2 cores, about
half the machine's matmul peak). It is wrapped in `jax.checkpoint`, so the
backward pass keeps the input and kernel, not one window per position.
`adapter.conv` uses it on the CPU backend only; accelerators keep
`lax.conv_general_dilated`. The sums run in another order than XLA's
convolution, so results differ from it by float rounding.

Channels-last layouts (what `nnx.Conv` passes), any strides and padding,
no dilation and one feature group; anything else goes to
`lax.conv_general_dilated` unchanged.
"""
import jax
from jax import lax
import jax.numpy as jnp

from ticketjax.core import kernels


def _channels_last(dimension_numbers, ndim: int) -> bool:
  if dimension_numbers is None:
    return False
  dn = lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim,
                                  dimension_numbers)
  spatial = tuple(range(1, ndim - 1))
  return (dn.lhs_spec == (0, ndim - 1) + spatial
          and dn.rhs_spec == (ndim - 1, ndim - 2) + tuple(range(ndim - 2))
          and dn.out_spec == dn.lhs_spec)


def _trivial(dilation) -> bool:
  if dilation is None or isinstance(dilation, int):
    return dilation in (None, 1)
  return all(int(d) == 1 for d in dilation)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None, **kwargs):
  """`lax.conv_general_dilated`; channels-last ones by shifted matmuls."""
  ndim = lhs.ndim
  if not (_channels_last(dimension_numbers, ndim) and _trivial(lhs_dilation)
          and _trivial(rhs_dilation) and feature_group_count == 1
          and kwargs.get('preferred_element_type') is None):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, precision=precision,
        **kwargs)
  return _shifted_matmuls(lhs, rhs, tuple(int(v) for v in window_strides),
                          padding if isinstance(padding, str) else tuple(
                              tuple(int(v) for v in p) for p in padding),
                          precision)


def _shifted_matmuls_impl(lhs, rhs, strides, padding, precision):
  spatial_in = lhs.shape[1:-1]
  window = rhs.shape[:-2]
  if isinstance(padding, str):
    pads = lax.padtype_to_pads(spatial_in, window, strides, padding)
  else:
    pads = padding
  x = jnp.pad(lhs, [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)])
  out = tuple((n + lo + hi - k) // s + 1 for n, (lo, hi), k, s
              in zip(spatial_in, pads, window, strides))
  offsets, windows = _positions(window), []
  for offset in offsets:
    limit = ((x.shape[0],)
             + tuple(o + (n - 1) * s + 1
                     for o, n, s in zip(offset, out, strides))
             + (x.shape[-1],))
    windows.append(lax.slice(x, (0,) + offset + (0,), limit,
                             (1,) + strides + (1,)))
  c_in, c_out = rhs.shape[-2:]
  if len(windows) * c_in <= 2 * c_out:
    # few input channels (a first layer): one [B*out, K*C] x [K*C, O]
    # matmul beats K thin ones that each write the whole output
    cols = jnp.concatenate(windows, axis=-1).reshape(-1, len(windows) * c_in)
    y = jnp.dot(cols, rhs.reshape(-1, c_out), precision=precision)
  else:  # no K-times-larger patch matrix
    y = sum(jnp.dot(w.reshape(-1, c_in), rhs[offset], precision=precision)
            for w, offset in zip(windows, offsets))
  return y.reshape((lhs.shape[0],) + out + (c_out,))


# keeps lhs and rhs for the backward pass and re-slices the windows there
_shifted_matmuls = jax.checkpoint(_shifted_matmuls_impl,
                                  static_argnums=(2, 3, 4))


def _positions(window):
  """Kernel positions in row-major order (the order of rhs.reshape)."""
  positions = [()]
  for k in window:
    positions = [p + (i,) for p in positions for i in range(k)]
  return positions


def for_backend() -> object:
  """This module's convolution where the CPU kernels are on
  (`core/kernels.py`: by default on the CPU backend), else
  `lax.conv_general_dilated`."""
  return (conv_general_dilated if kernels.enabled()
          else lax.conv_general_dilated)
