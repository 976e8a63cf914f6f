"""Training throughput of the small character GPT: tokens/s and MFU.

  python benchmarks/lm_throughput.py [--seeds=1,4] [--steps=50] [--rounds=5]
      [--config=configs/imp_gpt_shakespeare.py]

Trains the model of the config (default: IMP's character GPT, 2 blocks of
width 64, context 64, batch 32, Adam, masks at 100% density) through
`ticketjax.core.train.Trainer` -- the compiled scan every search uses --
on random tokens of the config's vocabulary size (the values do not change
the work), S seeds at once, and prints training tokens/s and the model
FLOPs utilization (MFU): model FLOP/s over the FLOP/s of a large jitted
fp32 matmul measured in the same run (`throughput.matmul_peak`; the
machine's practical dense peak). Rounds are interleaved with the peak
measurement and the best of each is kept (`throughput.best_rates`).

Model FLOPs per token (forward and backward, the PaLM appendix count):
6 N + 6 L T d, where N is the parameter count of the projections and the
output projection (the tied embedding used as the vocabulary projection;
the embedding lookup itself is free), L blocks, T the context, d the width
(the attention scores and their weighted sum: 2 T d per layer forward, x3
with the backward, x2 for the two matmuls). Elementwise work (norms,
softmax, GELU, Adam, masking) is not counted, so the fraction is
conservative.
"""
import argparse
import os
import sys

# one host device: XLA's thread pool uses every core for one program (the
# seeds are vmapped, not sharded; `throughput` would make one per core)
if 'device_count' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_force_host_platform_device_count=1')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

import throughput  # the matmul peak and the interleaved rounds
from configs import common
from ticketjax.core import train as train_lib
from ticketjax.run import setup as setup_lib


def token_flops(params, cfg) -> float:
  """6 N + 6 L T d per trained token (module docstring)."""
  k = cfg.model.kwargs
  leaves = {'/'.join(str(getattr(p, 'key', p)) for p in path): x
            for path, x in jax.tree_util.tree_leaves_with_path(params)}
  n = sum(x.size for name, x in leaves.items() if name.endswith('kernel'))
  n += leaves["embed/embedding"].size  # the tied output projection
  return 6.0 * n + 6.0 * k.num_layers * k.context * k.d_model


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/imp_gpt_shakespeare.py')
  parser.add_argument('--seeds', default='1,4')
  parser.add_argument('--steps', type=int, default=50)
  parser.add_argument('--rounds', type=int, default=5)
  args = parser.parse_args()
  config = common.from_file(args.config)
  pieces = setup_lib.build(config)  # the config's data and model, checked
  vocab = pieces.dataset.num_classes
  batch, context = pieces.train.batch_size, config.model.kwargs.context
  rng = np.random.default_rng(0)
  x = rng.integers(0, vocab, (4096, context), dtype=np.int32)
  y = rng.integers(0, vocab, (4096, context), dtype=np.int32)
  empty = np.zeros((0, context), np.int32)
  data = train_lib.to_device(train_lib.DeviceData(x, y, empty, empty, x[:64],
                                                  y[:64]))
  trainer = pieces.trainer
  peak_fn = throughput.matmul_peak()
  trainers = {}
  for s in (int(v) for v in args.seeds.split(',')):
    init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
        train_lib.seed_keys(0, s))
    trainers[s] = (trainer, trainer.init_states(init_keys, noise_keys))
  params = jax.tree.map(lambda a: a[0], trainers[min(trainers)][1].params)
  flops = token_flops(params, config)
  best = throughput.best_rates(trainers, data, args.steps, args.rounds,
                               peak_fn)
  peak = best['peak']
  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}; '
        f'model {config.model.name} {dict(config.model.kwargs)}, vocabulary '
        f'{vocab}, batch {batch} x {context} tokens, '
        f'{flops / 1e6:.2f} MFLOP per token')
  print(f'matmul peak (2048^3 fp32): {peak / 1e9:.1f} GFLOP/s')
  for s in trainers:
    tokens = best[s] * s * batch * context
    print(f'{s:3d} seeds: {best[s]:7.1f} steps/s = {tokens:10,.0f} '
          f'tokens/s = {tokens * flops / 1e9:6.1f} GFLOP/s = MFU '
          f'{tokens * flops / peak:.3f}')


if __name__ == '__main__':
  main()
