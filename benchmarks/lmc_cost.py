"""Cost of one instability analysis against training its copies alone.

  python benchmarks/lmc_cost.py [--config=configs/lmc_mnist1d.py[:ARG]]
      [--copies=2] [--seeds=1] [--rewind=0] [--rounds=3]

Takes the analysis config (default: the MNIST-1D CNN of
configs/lmc_mnist1d.py, 3000 steps), builds W_k of every seed, and times
with warm compilation caches, best of `--rounds`:

  * train: the C copies per seed trained from W_k to the end, the way the
    `lmc` job trains them (`instability.copy_states`, `Trainer.train`);
  * path: every pair of copies evaluated at 30 alphas on the test split
    (`lmc.pair_path_metrics`, one compiled program, as the job does);
  * loop: the same path evaluated alpha by alpha from Python (a jitted
    single-network evaluation per call), for contrast.

and prints (train + path) / train, the cost of the analysis relative to
training the copies alone (target: at most 1.3).
"""
import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import common  # noqa: E402
from ticketjax.core import train as train_lib  # noqa: E402
from ticketjax.methods.lmc import core as instability  # noqa
from ticketjax.methods.lmc import job as lmc_run
from ticketjax.methods.lmc import path as lmc
from ticketjax.run import setup as setup_lib


def best_time(fn, rounds):
  jax.block_until_ready(fn())  # compile and warm up
  best = float('inf')
  for _ in range(rounds):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/lmc_mnist1d.py')
  parser.add_argument('--copies', type=int, default=2)
  parser.add_argument('--seeds', type=int, default=1)
  parser.add_argument('--rewind', type=int, default=0)
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args()

  config = common.from_file(args.config)
  config.num_seeds = args.seeds
  config.lmc.copies = args.copies
  config.lmc.rewind_steps = (args.rewind,)
  cfg = lmc_run.lmc_config(config)
  pieces = setup_lib.build(config)
  cfg.validate(pieces.train.steps)
  trainer, steps = pieces.trainer, pieces.train.steps
  data = train_lib.to_device(pieces.dataset)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      train_lib.seed_keys(pieces.seed, args.seeds))
  rewind_S = trainer.init_states(init_keys, noise_keys)
  if args.rewind:
    rewind_S, _ = trainer.train(rewind_S, data, args.rewind)
  masks_NS = jax.tree.map(lambda m: m[None], rewind_S.mask)
  start_M = instability.copy_states(rewind_S, masks_NS, noise_keys,
                                    args.copies)
  final_M, _ = trainer.train(start_M, data, steps - args.rewind)
  pairs = instability.pairs(1, args.seeds, args.copies)
  a_P, b_P = instability.endpoints(final_M, pairs, args.seeds, args.copies)
  alpha = lmc.alphas(cfg.num_alphas)

  def train():
    return trainer.train(start_M, data, steps - args.rewind)[0].params

  def path():
    return lmc.pair_path_metrics(
        trainer, a_P.params, b_P.params, a_P.model_state, b_P.model_state,
        data.x_test, data.y_test, alpha, x_stats=data.x_train,
        recompute_stats=cfg.recompute_stats,
        stats_batches=cfg.stats_batches)['error']

  @jax.jit
  def one_alpha(pa, pb, sa, sb, al):  # no BatchNorm re-estimation here
    return trainer.evaluate_one(lmc.interpolate(pa, pb, al),
                                lmc.interpolate(sa, sb, al), data.x_test,
                                data.y_test)['accuracy']

  def loop():
    out = []
    for p in range(len(pairs)):
      ends = [train_lib.unstack(t, p) for t in (
          a_P.params, b_P.params, a_P.model_state, b_P.model_state)]
      out += [one_alpha(*ends, al) for al in np.asarray(alpha)]
    return out

  t_train = best_time(train, args.rounds)
  t_path = best_time(path, args.rounds)
  t_loop = best_time(loop, 1)
  print(f'device: {jax.devices()[0].device_kind} x{jax.device_count()}; '
        f'{pieces.model.name} on {pieces.dataset.name}, {args.seeds} seed(s) '
        f'x {args.copies} copies from k={args.rewind} to {steps} steps, '
        f'{len(pairs)} pair(s) x {cfg.num_alphas} alphas on '
        f'{data.x_test.shape[0]} test examples')
  print(f'train copies alone:        {t_train:8.2f} s')
  print(f'path, one vmapped program: {t_path:8.3f} s')
  print(f'path, Python loop over alpha: {t_loop:5.3f} s')
  print(f'analysis / training = (train + path) / train = '
        f'{(t_train + t_path) / t_train:.3f} (target <= 1.3)')


if __name__ == '__main__':
  main()
