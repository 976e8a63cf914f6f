"""Inference speed of a channel-pruned network: compacted vs masked dense.

  python benchmarks/compaction.py [--model=lenet_300_100] [--units=0.5]
      [--batches=1,100,10000] [--rounds=20]
      [--checkpoint=RUN/checkpoints/NAME[:i]]

Prunes the model's init to `--units` of its hidden units by channel
magnitude (`structure='channels'`, layerwise, the output layer whole), or
takes member i of a saved channel-pruned run (`--checkpoint`, e.g. an IMP
level of `imp_lenet300_fashion_mnist.py:structure=channels`; its model is
the run's), compacts it (`models/compact.py`) and times, for each batch
size, one jitted forward pass of

  * masked: the full-width network with its params masked inside the
    program, as ticketjax evaluates a masked member;
  * compact: the narrower dense network `compact` exports;

best of `--rounds` interleaved rounds, on the same inputs in the same run.
Checks first that both give the same outputs. Prints a table with the
speedup (masked time / compact time) and the parameter counts. Weight
values do not change the speed of a dense matmul, so the init's mask is as
good as a trained one for timing.
"""
import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from ticketjax.core import masks as masks_lib  # noqa: E402
from ticketjax.core import pruning  # noqa: E402
from ticketjax.models import compact as compact_lib  # noqa: E402
from ticketjax.models import get_model  # noqa: E402
from ticketjax.run import store  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='lenet_300_100')
  parser.add_argument('--units', type=float, default=0.5,
                      help='fraction of hidden units kept, in (0, 1]')
  parser.add_argument('--batches', default='1,100,10000')
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--checkpoint', default='',
                      help='RUN/checkpoints/NAME[:i]: a saved member')
  args = parser.parse_args()
  if not 0.0 < args.units <= 1.0:
    parser.error(f'--units {args.units} lies outside (0, 1]: it is the '
                 'fraction of hidden units kept')
  try:
    batches = [int(b) for b in args.batches.split(',')]
    compact_lib.check(args.model, {})
  except ValueError as e:
    parser.error(str(e))
  if args.checkpoint:
    path, _, member = args.checkpoint.partition(':')
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    try:
      config = json.load(open(os.path.join(run_dir, 'config.json')))
      args.model = config['model']['name']
      compact_lib.check(args.model, config['model'].get('kwargs', {}))
      raw = store.Checkpoints(run_dir).restore_raw(os.path.basename(path))
    except (OSError, KeyError, ValueError) as e:
      parser.error(f'--checkpoint {args.checkpoint}: {e}')
    raw = raw.get('ticket', raw)  # an IMP level holds the ticket's state
    take = lambda tree: jax.tree.map(lambda v: jnp.asarray(v[int(
        member or 0)]), tree)
    params, state, mask = (take(raw['params']), take(raw['model_state']),
                           jax.tree.map(lambda v: v.astype(bool),
                                        take(raw['mask'])))
    model = get_model(args.model, **config['model'].get('kwargs', {}))
  else:
    model = get_model(args.model)
    params, state = model.init(jax.random.PRNGKey(0))
    mask = pruning.layerwise_magnitude(params, masks_lib.ones_like(params),
                                       1.0 - args.units,
                                       structure='channels')
  small_model, small, info = compact_lib.compact(args.model, {}, params, mask)
  in_dim = int(small[sorted(small)[0]]['kernel'].shape[0])

  masked = jax.jit(lambda p, m, x: model.apply(
      masks_lib.apply(p, m), state, x, train=False)[0])
  compact = jax.jit(lambda p, x: small_model.apply(p, {}, x, train=False)[0])
  rows = []
  for batch in batches:
    x = jax.random.normal(jax.random.PRNGKey(batch), (batch, in_dim))
    a = np.asarray(masked(params, mask, x))
    b = np.asarray(compact(small, x))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    best = {'masked': float('inf'), 'compact': float('inf')}
    for _ in range(args.rounds):
      for name, fn in (('masked', lambda: masked(params, mask, x)),
                       ('compact', lambda: compact(small, x))):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best[name] = min(best[name], time.perf_counter() - start)
    rows.append((batch, best['masked'], best['compact']))

  print(f"{args.model} on {jax.devices()[0].device_kind}: hidden widths "
        f"{info['widths_before']} -> {info['widths']}, parameters "
        f"{info['params_before']:,} -> {info['params']:,} "
        f"({info['params'] / info['params_before']:.3f}); best of "
        f'{args.rounds} interleaved rounds\n')
  print('| batch | masked dense (ms) | compacted (ms) | speedup |')
  print('|---|---|---|---|')
  for batch, t_masked, t_compact in rows:
    print(f'| {batch} | {1e3 * t_masked:.3f} | {1e3 * t_compact:.3f} | '
          f'{t_masked / t_compact:.2f}x |')


if __name__ == '__main__':
  main()
