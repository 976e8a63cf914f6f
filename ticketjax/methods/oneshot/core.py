"""One-shot pruning of a decoder LM, block by block: the pure pieces.

The procedure of SparseGPT's and Wanda's reference code: the calibration
windows are embedded once; then for each block in order, one pass through
the *dense* block gathers the statistics of every projection's input
(`oneshot.hessian_add` for SparseGPT, `oneshot.sq_norm_add` for Wanda;
magnitude needs none), every projection of the block is pruned (uniform
target per projection), and a pass through the *pruned* block gives the
next block its inputs. Embeddings, norms and the tied output projection
stay dense.

`prune` returns the pruned params and the mask (True = kept; non-kernel
leaves all True), so a one-shot mask can also start a ticket search.
`perplexity` is exp of the mean next-token cross-entropy over windows.
"""
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import oneshot
from ticketjax.models import transformer

METHODS = ('magnitude', 'wanda', 'sparsegpt')
# projections that multiply the same activation as another one in a block
# (`transformer.block_with_inputs`): their statistics are gathered once
SAME_INPUT = {'attn/key': 'attn/query', 'attn/value': 'attn/query',
              'mlp/up': 'mlp/gate'}


def check_method(method: str) -> None:
  if method not in METHODS:
    raise ValueError(f'unknown one-shot method {method!r}; valid methods '
                     f'are {list(METHODS)}')


def _batches(n: int, batch: int):
  return [(i, min(i + batch, n)) for i in range(0, n, batch)]


def _get(tree: dict, path: str):
  for name in path.split('/'):
    tree = tree[name]
  return tree


def _set(tree: dict, path: str, value) -> dict:
  """A copy of nested dict `tree` with `path` set to `value`."""
  head, _, rest = path.partition('/')
  out = dict(tree)
  out[head] = _set(tree[head], rest, value) if rest else value
  return out


def check_fits(cfg: transformer.DecoderConfig, params: dict, methods,
               targets, blocksize: int) -> None:
  """ValueError unless every projection of `params` fits every target
  (N:M groups of its inputs; SparseGPT's column blocks): what `prune`
  would refuse block by block, checked before any of it runs."""
  for i in range(cfg.num_layers):
    block = params[transformer.block_name(i)]
    for path in transformer.BLOCK_KERNELS[cfg.style]:
      kernel = _get(block, path + '/kernel')
      for method in methods:
        for target in targets:
          try:
            oneshot.check_kernel(
                kernel, oneshot.parse_target(target),
                blocksize if method == 'sparsegpt' else None)
          except ValueError as e:
            raise ValueError(f'{method} to {target}: '
                             f'{transformer.block_name(i)}/{path}: {e}'
                             ) from None


def prune(cfg: transformer.DecoderConfig, params: dict, calib_NxT,
          method: str, target, *, batch: int = 8, blocksize: int = 128,
          percdamp: float = 0.01,
          on_block: Callable[[int], None] | None = None
          ) -> tuple[dict, dict]:
  """Prunes every projection of every block of `params` to `target`.

  Args:
    cfg: the decoder's config.
    params: its params (`transformer` layout).
    calib_NxT: int calibration windows (N, T).
    method: 'magnitude', 'wanda' or 'sparsegpt'.
    target: a sparsity in [0, 1) or 'N:M' (`oneshot.parse_target`).
    batch: windows per forward pass (memory, not semantics).
    blocksize, percdamp: SparseGPT's column block and damping.
    on_block: called with each block's index once it is pruned.

  Returns:
    (pruned params, mask): SparseGPT also updates the kept weights.
  """
  check_method(method)
  oneshot.parse_target(target)
  calib = jnp.asarray(calib_NxT, jnp.int32)
  spans = _batches(calib.shape[0], batch)
  embed = jax.jit(lambda p, t: transformer.embed(cfg, p, t))
  step = jax.jit(lambda bp, h: transformer.block_with_inputs(cfg, bp, h))
  forward = jax.jit(lambda bp, h: transformer.block(cfg, bp, h))
  # magnitude needs no activations: no forward pass at all
  needs_inputs = method != 'magnitude'
  h = (jnp.concatenate([embed(params, calib[a:b]) for a, b in spans])
       if needs_inputs else None)
  params = dict(params)
  mask = jax.tree.map(lambda x: jnp.ones(jnp.shape(x), bool), params)
  for i in range(cfg.num_layers):
    name = transformer.block_name(i)
    block_params = params[name]
    paths = transformer.BLOCK_KERNELS[cfg.style]
    stats = {}
    if method != 'magnitude':
      for a, b in spans:  # the dense block's inputs
        _, inputs = step(block_params, h[a:b])
        for path in paths:
          if path in SAME_INPUT:
            continue
          x = inputs[path]
          if method == 'sparsegpt':
            old = stats.get(path) or oneshot.hessian_init(x.shape[-1])
            stats[path] = oneshot.hessian_add(old, x)
          else:
            old = stats.get(path) or oneshot.sq_norm_init(x.shape[-1])
            stats[path] = oneshot.sq_norm_add(old, x)
    for path, same in SAME_INPUT.items():
      if path in paths and same in stats:
        stats[path] = stats[same]
    block_mask = mask[name]
    for path in paths:
      kernel = _get(block_params, path + '/kernel')
      if method == 'magnitude':
        keep = oneshot.magnitude(kernel, target)
        kernel = jnp.where(keep, kernel, 0.0)
      elif method == 'wanda':
        keep = oneshot.wanda(kernel, stats[path], target)
        kernel = jnp.where(keep, kernel, 0.0)
      else:
        kernel, keep = oneshot.sparsegpt(kernel, stats[path], target,
                                         blocksize=blocksize,
                                         percdamp=percdamp)
      block_params = _set(block_params, path + '/kernel', kernel)
      block_mask = _set(block_mask, path + '/kernel', keep)
    params[name] = block_params
    mask[name] = block_mask
    if needs_inputs:  # the pruned block's outputs feed the next block
      h = jnp.concatenate([forward(block_params, h[a:b]) for a, b in spans])
    if on_block is not None:
      on_block(i)
  return params, mask


def perplexity(cfg: transformer.DecoderConfig, params: dict, x_NxT, y_NxT,
               batch: int = 8) -> dict:
  """{'loss': mean next-token cross-entropy (nats), 'perplexity': its exp,
  'tokens': how many} over windows x with targets y (int (N, T))."""
  x, y = (jnp.asarray(a, jnp.int32) for a in (x_NxT, y_NxT))

  @jax.jit
  def nll(p, xs, ys):
    logits = transformer.apply(cfg, p, xs)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, ys[..., None], -1))

  total = sum(float(nll(params, x[a:b], y[a:b]))
              for a, b in _batches(x.shape[0], batch))
  tokens = int(np.prod(y.shape))
  loss = total / tokens
  return {'loss': loss, 'perplexity': float(np.exp(loss)),
          'tokens': tokens}


def timed(fn, *args, **kwargs):
  """(fn's result with every array ready, wall seconds)."""
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kwargs))
  return out, time.perf_counter() - start
