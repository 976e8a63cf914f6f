"""One-shot LLM pruners on one linear layer: magnitude, Wanda, SparseGPT.

Pure functions of arrays (no Flax, no I/O). A kernel is laid out (in, out)
as in Flax: the weight matrix W of the papers (rows = outputs, columns =
inputs) is `kernel.T`, so the papers' "columns" are the kernel's rows here.
Every rule returns a boolean mask (True = kept) of the kernel's shape, so
the framework can use each of them as a mask generator.

Targets (`parse_target`):

  * a number s in [0, 1): unstructured sparsity;
  * 'N:M' (the spelling of `structure.parse`, e.g. '2:4'): every group of M
    consecutive INPUT weights of each output keeps exactly N of them. The
    input count (and SparseGPT's block size) must divide by M.

Counts, all exact (`int(count * s)` in Python float arithmetic, as the
reference code computes them):

  * `magnitude`: per matrix, the `int(in * out * s)` smallest |w| pruned;
  * `wanda`: per output (a column of the kernel), `int(in * s)` pruned;
  * `sparsegpt`: per block of `blocksize` inputs (all outputs), `int(block
    inputs * out * s)` pruned, the last block possibly narrower;
  * 'N:M': exactly N kept in every group of M inputs of every output.

Ties are broken by position, as a stable ascending sort would: the earlier
flat index of the (in, out) kernel (of the block, for SparseGPT; of the
output's column, for Wanda) is pruned first; inside an N:M group the later
input is kept. The references' thresholds (`score <= thr`) can prune tied
weights beyond the count; these functions never do.

Calibration statistics are accumulated batch by batch from a layer's inputs
x of shape (..., in): `hessian_add` sums XᵀX in float32 with matmul
precision HIGHEST and counts the tokens; `sq_norm_add` sums x_j² per input
feature. The sums are kept, not the references' running means (SparseGPT
keeps `2/n · XᵀX` with n counting sequences, Wanda the mean over batches):
a positive scale changes neither Wanda's per-output ranking nor SparseGPT's
result, whose damping is relative to mean(diag H) (up to float rounding),
so the plain sum is what both rules need. Divide by `count` for a mean.

SparseGPT (Frantar & Alistarh, 2023) follows the reference's `fasterprune`:
dead inputs (diag H == 0) get H_ii = 1 and their weights zeroed; H is
damped by percdamp * mean(diag H); U is the upper Cholesky factor of H⁻¹
(H⁻¹ = UᵀU); inputs are visited in blocks of `blocksize`, left to right.
At a block's start (unstructured) or at each N:M group's start, the mask is
chosen by the OBS saliency w² / U_jj² on the current, already updated
weights; then each input j of the block is pruned or kept (q) and the rest
of the block gets the OBS update `-= U[j, j:] ⊗ (w - q) / U_jj`; after the
block, the later inputs get the block's errors at once (the lazy update).
All in float32 with matmul precision HIGHEST. One program is compiled per
(shape, target, blocksize): blocks run in a `lax.fori_loop` (a narrower
last block once more), the inputs of a block in an inner `lax.fori_loop`.
"""
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import selection
from ticketjax.core import structure as structure_lib

HIGHEST = jax.lax.Precision.HIGHEST
VALID_TARGETS = ("a sparsity in [0, 1) for unstructured pruning (e.g. 0.5) "
                 "or 'N:M' with 1 <= N < M, keeping N of every M "
                 "consecutive inputs of each output (e.g. '2:4')")


class Target(NamedTuple):
  """What a one-shot rule prunes to; `n == 0` means unstructured."""
  sparsity: float = 0.0
  n: int = 0
  m: int = 0

  @property
  def is_nm(self) -> bool:
    return self.n > 0

  @property
  def name(self) -> str:
    return f'{self.n}:{self.m}' if self.is_nm else f'{self.sparsity:g}'


def parse_target(target) -> Target:
  """A `Target` from a sparsity, an 'N:M' string, a `Structure` or a Target.

  Raises:
    ValueError: anything else, naming what is valid.
  """
  if isinstance(target, Target):
    target = (target.name if target.is_nm
              else target.sparsity)
  if isinstance(target, structure_lib.Structure) and target.kind == 'nm':
    target = target.name
  if (isinstance(target, numbers.Real) and not isinstance(target, bool)
      and np.isfinite(target) and 0.0 <= target < 1.0):
    return Target(sparsity=float(target))
  if isinstance(target, str):
    try:
      st = structure_lib.parse(target)
    except ValueError:
      st = None
    if st is not None and st.kind == 'nm':
      return Target(n=st.n, m=st.m)
  raise ValueError(f'unknown pruning target {target!r}; valid targets are '
                   f'{VALID_TARGETS}')


def check_kernel(kernel, target: Target, blocksize: int | None = None):
  """ValueError unless `kernel` is (in, out) and fits the target's groups."""
  if jnp.ndim(kernel) != 2:
    raise ValueError(f'a one-shot rule takes a dense (in, out) kernel, got '
                     f'shape {jnp.shape(kernel)}')
  n_in = jnp.shape(kernel)[0]
  if target.is_nm and n_in % target.m:
    raise ValueError(f'{target.name} groups {target.m} inputs, but the '
                     f'kernel has {n_in} inputs (shape {jnp.shape(kernel)})')
  if blocksize is not None:
    if (not isinstance(blocksize, numbers.Integral)
        or isinstance(blocksize, bool) or blocksize < 1):
      raise ValueError(f'blocksize must be a positive integer, got '
                       f'{blocksize!r}')
    if target.is_nm and min(blocksize, n_in) % target.m:
      raise ValueError(f'{target.name} needs a blocksize that divides by '
                       f'{target.m} (groups may not straddle blocks), got '
                       f'{blocksize}')


def _pruned_count(count: int, sparsity: float) -> int:
  return int(count * sparsity)


# ---------------------------------------------------------------- statistics


class HessianState(NamedTuple):
  """Σ XᵀX over the calibration tokens (float32) and the token count."""
  xtx: jax.Array
  count: jax.Array


class SqNormState(NamedTuple):
  """Σ_tokens x_j² per input feature (float32) and the token count."""
  sq_norm: jax.Array
  count: jax.Array


def _tokens(x) -> jax.Array:
  """(..., in) -> (tokens, in) in float32."""
  x = jnp.asarray(x, jnp.float32)
  return x.reshape(-1, x.shape[-1])


def hessian_init(n_in: int) -> HessianState:
  """An empty `HessianState` for a layer with `n_in` inputs."""
  return HessianState(jnp.zeros((n_in, n_in), jnp.float32),
                      jnp.zeros((), jnp.int32))


@jax.jit
def hessian_add(state: HessianState, x: jax.Array) -> HessianState:
  """`state` plus the batch x (..., in): XᵀX summed, tokens counted."""
  x = _tokens(x)
  xtx = jnp.matmul(x.T, x, precision=HIGHEST)
  return HessianState(state.xtx + xtx, state.count + x.shape[0])


def sq_norm_init(n_in: int) -> SqNormState:
  """An empty `SqNormState` for a layer with `n_in` inputs."""
  return SqNormState(jnp.zeros((n_in,), jnp.float32),
                     jnp.zeros((), jnp.int32))


@jax.jit
def sq_norm_add(state: SqNormState, x: jax.Array) -> SqNormState:
  """`state` plus the batch x (..., in): Σ_tokens x_j² per feature."""
  x = _tokens(x)
  return SqNormState(state.sq_norm + jnp.sum(x * x, axis=0),
                     state.count + x.shape[0])


# ----------------------------------------------------------------- selection


def _keep_largest(keys: jax.Array, kept: int) -> jax.Array:
  """The `kept` largest keys of an array, mask of its shape."""
  return selection.keep_largest(keys, kept).reshape(keys.shape)


def _keep_largest_per_output(keys: jax.Array, kept: int) -> jax.Array:
  """The `kept` largest keys of each column of an (in, out) array."""
  return jax.vmap(lambda k: selection.keep_largest(k, kept),
                  in_axes=1, out_axes=1)(keys)


def _keep_nm(keys: jax.Array, n: int, m: int) -> jax.Array:
  """The N largest keys of every group of M rows, per column."""
  return structure_lib.nm_allowed(keys, jnp.ones(keys.shape, bool), n, m)


def _select(scores: jax.Array, target: Target, per_output: bool
            ) -> jax.Array:
  """Kept mask: the highest `scores` of the matrix (or of each output)."""
  keys = selection.float_keys(scores)
  if target.is_nm:
    return _keep_nm(keys, target.n, target.m)
  n_in, n_out = scores.shape
  if per_output:
    return _keep_largest_per_output(
        keys, n_in - _pruned_count(n_in, target.sparsity))
  size = n_in * n_out
  return _keep_largest(keys, size - _pruned_count(size, target.sparsity))


@functools.partial(jax.jit, static_argnames=('target',))
def _magnitude(kernel, target):
  return _select(jnp.abs(kernel.astype(jnp.float32)), target, False)


@functools.partial(jax.jit, static_argnames=('target',))
def _wanda(kernel, sq_norm, target):
  scale = jnp.sqrt(sq_norm.astype(jnp.float32))[:, None]
  return _select(jnp.abs(kernel.astype(jnp.float32)) * scale, target, True)


def magnitude(kernel: jax.Array, target) -> jax.Array:
  """Kept mask of the largest |w|: per matrix, or per output in N:M groups.

  Unstructured prunes exactly `int(in * out * s)` weights of the matrix (the
  SparseGPT repo's `--gmp` baseline, without its tie overshoot).
  """
  target = parse_target(target)
  check_kernel(kernel, target)
  return _magnitude(jnp.asarray(kernel), target)


def wanda(kernel: jax.Array, sq_norm, target) -> jax.Array:
  """Wanda's kept mask: the highest |w_ij| * sqrt(sq_norm_i) per output.

  Args:
    kernel: (in, out).
    sq_norm: (in,) Σ_tokens x_i² (or a `SqNormState`); any positive scale.
    target: see `parse_target`.

  Returns:
    The kept mask; each output (column) loses exactly `int(in * s)`
    weights, or keeps N of every M inputs. The weights are not updated.
  """
  target = parse_target(target)
  check_kernel(kernel, target)
  if isinstance(sq_norm, SqNormState):
    sq_norm = sq_norm.sq_norm
  if jnp.shape(sq_norm) != jnp.shape(kernel)[:1]:
    raise ValueError(f'sq_norm must have shape (in,) = '
                     f'{jnp.shape(kernel)[:1]}, got {jnp.shape(sq_norm)}')
  return _wanda(jnp.asarray(kernel), jnp.asarray(sq_norm), target)


# ----------------------------------------------------------------- SparseGPT


def _inverse_factor(hessian: jax.Array, percdamp) -> tuple:
  """(U, dead): the upper Cholesky factor of the damped H⁻¹, dead inputs.

  Dead inputs (diag H == 0) get H_ii = 1 before the damping
  λ = percdamp * mean(diag H).
  """
  n = hessian.shape[0]
  diag = jnp.diagonal(hessian)
  dead = diag == 0
  idx = jnp.arange(n)
  h = hessian.at[idx, idx].set(jnp.where(dead, 1.0, diag))
  damp = percdamp * jnp.mean(jnp.diagonal(h))
  h = h.at[idx, idx].add(damp)
  lower = jnp.linalg.cholesky(h)
  h_inv = jax.scipy.linalg.cho_solve((lower, True), jnp.eye(n, dtype=h.dtype))
  return jnp.triu(jnp.linalg.cholesky(h_inv, upper=True)), dead


def _saliency(w: jax.Array, d: jax.Array) -> jax.Array:
  """OBS saliency w² / U_jj² of rows w (k, out) with diagonal d (k,)."""
  return jnp.square(w) / jnp.square(d)[:, None]


def _obs_columns(k1, u1, m1, err1, lo, count):
  """Prune or keep inputs lo..lo+count of a block, one at a time (OBS).

  Input j keeps q = w where `m1` says so and 0 elsewhere; the inputs after
  it in the block absorb the error: k1 -= U1[j, :] ⊗ (w - q) / U1_jj (U1 is
  upper triangular, so earlier inputs are untouched).
  """
  def step(j, carry):
    k1, err1 = carry
    w = k1[j]
    q = jnp.where(m1[j], w, 0.0)
    err = (w - q) / u1[j, j]
    k1 = k1 - u1[j][:, None] * err[None, :]
    return k1.at[j].set(q), err1.at[j].set(err)
  return jax.lax.fori_loop(lo, lo + count, step, (k1, err1))


def _prune_block(k1, u1, target: Target):
  """One block of inputs: (pruned rows, their errors, kept mask).

  Args:
    k1: (b, out) the block's rows of the kernel, lazy updates applied.
    u1: (b, b) the block's diagonal block of U.
    target: the block's target; unstructured prunes exactly
      `int(b * out * s)` of the block.
  """
  d = jnp.diagonal(u1)
  err1 = jnp.zeros_like(k1)
  if not target.is_nm:
    m1 = _select(_saliency(k1, d), target, False)
    k1, err1 = _obs_columns(k1, u1, m1, err1, 0, k1.shape[0])
    return k1, err1, m1

  m = target.m

  def group(g, carry):
    k1, err1, m1 = carry
    lo = g * m
    w = jax.lax.dynamic_slice_in_dim(k1, lo, m, 0)
    dg = jax.lax.dynamic_slice_in_dim(d, lo, m, 0)
    mg = _select(_saliency(w, dg), target, True)
    m1 = jax.lax.dynamic_update_slice_in_dim(m1, mg, lo, 0)
    k1, err1 = _obs_columns(k1, u1, m1, err1, lo, m)
    return k1, err1, m1
  m1 = jnp.zeros(k1.shape, bool)
  return jax.lax.fori_loop(0, k1.shape[0] // m, group, (k1, err1, m1))


def _block_step(k, mask, u, start, size: int, target: Target, last: bool):
  """Prune inputs [start, start + size) and lazily update those after."""
  k1 = jax.lax.dynamic_slice_in_dim(k, start, size, 0)
  u1 = jax.lax.dynamic_slice(u, (start, start), (size, size))
  q1, err1, m1 = _prune_block(k1, u1, target)
  if not last:  # U is upper triangular: earlier rows get exactly 0
    rows = jax.lax.dynamic_slice_in_dim(u, start, size, 0)  # (size, in)
    k = k - jnp.matmul(rows.T, err1, precision=HIGHEST)
  k = jax.lax.dynamic_update_slice_in_dim(k, q1, start, 0)
  mask = jax.lax.dynamic_update_slice_in_dim(mask, m1, start, 0)
  return k, mask


@functools.partial(jax.jit, static_argnames=('target', 'blocksize'))
def _sparsegpt(kernel, hessian, percdamp, target, blocksize):
  with jax.default_matmul_precision('highest'):
    k = kernel.astype(jnp.float32)
    u, dead = _inverse_factor(hessian.astype(jnp.float32),
                              jnp.asarray(percdamp, jnp.float32))
    k = jnp.where(dead[:, None], 0.0, k)
    mask = jnp.ones(k.shape, bool)
    n_in = k.shape[0]
    b = min(blocksize, n_in)
    full, rest = divmod(n_in, b)

    def block(i, carry):
      return _block_step(*carry, u, i * b, b, target, last=False)
    k, mask = jax.lax.fori_loop(0, full, block, (k, mask))
    if rest:
      k, mask = _block_step(k, mask, u, full * b, rest, target, last=True)
    return jnp.where(mask, k, 0.0).astype(kernel.dtype), mask


def sparsegpt(kernel: jax.Array, hessian, target, blocksize: int = 128,
              percdamp: float = 0.01) -> tuple[jax.Array, jax.Array]:
  """SparseGPT on one layer: (updated kernel, kept mask).

  Args:
    kernel: (in, out).
    hessian: (in, in) XᵀX of the layer's calibration inputs (or a
      `HessianState`); any positive scale (the damping is relative).
    target: see `parse_target`.
    blocksize: inputs per block (the reference's 128); a multiple of M for
      N:M. The mask of a block is chosen at its start (unstructured).
    percdamp: λ = percdamp * mean(diag H) is added to diag H. With 0, H must
      be positive definite (else the result is NaN).

  Returns:
    (new_kernel, mask): new_kernel in the kernel's dtype, exactly 0 where
    mask is False; the kept weights carry the OBS updates. Each block of
    `blocksize` inputs loses exactly `int(block inputs * out * s)` weights
    (the reference's `<=` threshold can prune ties beyond it), or each group
    of M inputs of every output keeps N. Dead inputs (diag H == 0) have
    their weights set to 0; they score 0 and are pruned first.
  """
  target = parse_target(target)
  check_kernel(kernel, target, blocksize)
  if isinstance(hessian, HessianState):
    hessian = hessian.xtx
  n_in = jnp.shape(kernel)[0]
  if jnp.shape(hessian) != (n_in, n_in):
    raise ValueError(f'hessian must have shape (in, in) = {(n_in, n_in)}, '
                     f'got {jnp.shape(hessian)}')
  if not (isinstance(percdamp, numbers.Real) and np.isfinite(percdamp)
          and percdamp >= 0):
    raise ValueError(f'percdamp must be a finite number >= 0, got '
                     f'{percdamp!r}')
  return _sparsegpt(jnp.asarray(kernel), jnp.asarray(hessian),
                    float(percdamp), target, int(blocksize))
