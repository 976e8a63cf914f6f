"""Time `oneshot.sparsegpt` on SmolLM2-135M's projection shapes.

  python benchmarks/oneshot_layer.py [--targets=0.5,2:4] [--repeats=5]
      [--blocksize=128] [--tokens=2048]

For each distinct (in, out) shape of SmolLM2-135M's linear projections
(q/o 576x576, k/v 576x192, gate/up 576x1536, down 1536x576) and each
target, builds a random kernel and a random SPD Hessian XᵀX of `--tokens`
correlated inputs, compiles `sparsegpt` once (timed apart), then prints the
median of `--repeats` timed runs in milliseconds. The estimate for the
whole model is 30 decoder blocks x the 7 projections of a block (210
linears), the pruning alone (no calibration forward passes).
"""
import argparse
import functools
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from ticketjax.core import oneshot  # noqa: E402

HIDDEN, KV, FFN, BLOCKS = 576, 192, 1536, 30
PROJECTIONS = {  # name -> (in, out), the kernel layout
    'q': (HIDDEN, HIDDEN), 'k': (HIDDEN, KV), 'v': (HIDDEN, KV),
    'o': (HIDDEN, HIDDEN), 'gate': (HIDDEN, FFN), 'up': (HIDDEN, FFN),
    'down': (FFN, HIDDEN)}


def _problem(shape, tokens, seed=0):
  """A random kernel and a random SPD Hessian of correlated inputs."""
  rng = np.random.default_rng(seed)
  n_in, n_out = shape
  mix = rng.normal(size=(n_in, n_in)) / np.sqrt(n_in)
  x = rng.normal(size=(tokens, n_in)) @ mix + 0.3 * rng.normal(
      size=(tokens, n_in))
  kernel = rng.normal(size=shape) / np.sqrt(n_in)
  return (jax.device_put(kernel.astype(np.float32)),
          jax.device_put((x.T @ x).astype(np.float32)))


def _time(fn, repeats):
  """(first call incl. compile, median, min of `repeats` warm calls), s."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return first, float(np.median(times)), min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--targets', default='0.5,2:4')
  parser.add_argument('--repeats', type=int, default=7)
  parser.add_argument('--blocksize', type=int, default=128)
  parser.add_argument('--tokens', type=int, default=2048)
  args = parser.parse_args()
  targets = [t if ':' in t else float(t) for t in args.targets.split(',')]
  device = jax.devices()[0]
  print(f'device: {device.platform} ({device.device_kind}), '
        f'{len(jax.devices())} device(s); jax {jax.__version__}; '
        f'blocksize {args.blocksize}, median of {args.repeats}')
  shapes = sorted(set(PROJECTIONS.values()))
  ms, fastest = {}, {}
  print(f"{'shape (in x out)':>17} {'target':>6} {'compile+1st s':>13} "
        f"{'median ms':>9} {'min ms':>8}")
  for shape in shapes:
    kernel, hessian = _problem(shape, args.tokens)
    for target in targets:
      run = functools.partial(oneshot.sparsegpt, kernel, hessian, target,
                              blocksize=args.blocksize)
      first, median, least = _time(run, args.repeats)
      ms[shape, target], fastest[shape, target] = 1e3 * median, 1e3 * least
      print(f'{shape[0]:>8} x {shape[1]:<6} {str(target):>6} {first:>13.2f} '
            f'{1e3 * median:>9.1f} {1e3 * least:>8.1f}')
  for target in targets:
    for label, table in (('median', ms), ('min', fastest)):
      per_block = sum(table[s, target] for s in PROJECTIONS.values())
      print(f'SmolLM2-135M, {target} ({label}): one block (7 projections) '
            f'{per_block:.0f} ms; all {BLOCKS * len(PROJECTIONS)} '
            f'projections {BLOCKS * per_block / 1e3:.1f} s')


if __name__ == '__main__':
  main()
