"""Cost of RigL's mask updates against static sparse training.

  python benchmarks/dst_cost.py [--config=configs/dst_mnist1d.py[:ARG]]
      [--density=0.1] [--seeds=4] [--steps=1000] [--rounds=3]

Builds the config's trainer twice on the same start states (an ERK random
mask at `--density`, `--seeds` members): the plain trainer (static sparse
training) and the one with RigL's `mask_update` in its step (every
`dst.update_every` steps until `end_fraction` of `train.steps`). Times
`--steps` training steps of each, compiled and warm, in interleaved rounds
(best of `--rounds`), and prints RigL / static (target: at most 1.10).
With the default 1,000 steps of a 1,500-step run, RigL updates at
t = 100, 200, ..., 1,100 fall inside the timed window.
"""
import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import common  # noqa: E402
from ticketjax.core import train as train_lib  # noqa: E402
from ticketjax.methods.dst import core  # noqa: E402
from ticketjax.methods.dst import job as dst_job  # noqa: E402
from ticketjax.run import setup as setup_lib  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default='configs/dst_mnist1d.py')
  parser.add_argument('--density', type=float, default=0.1)
  parser.add_argument('--seeds', type=int, default=4)
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args()
  config = common.from_file(args.config)
  config.num_seeds = args.seeds
  config.dst.densities = (args.density,)
  config.dst.distributions = ('erk',)
  try:
    pieces = setup_lib.build(config)
    cfg = dst_job.dst_config(config)
  except ValueError as e:
    parser.error(str(e))
  if args.steps > pieces.train.steps:
    parser.error(f'--steps {args.steps} exceeds train.steps '
                 f'{pieces.train.steps}')
  data = train_lib.to_device(pieces.dataset)
  out = {}
  for variant in ('static', 'rigl'):
    run_cfg = dataclasses.replace(cfg, variants=(variant,))
    trainer = dst_job.trainer_for(pieces, run_cfg)
    state = dst_job.start_states(pieces, run_cfg, trainer)
    if variant == 'static':  # the plain trainer: no update in the step
      trainer = dataclasses.replace(trainer, mask_update=None)
    out[variant] = (trainer, state)
  best = {v: float('inf') for v in out}
  for v, (trainer, state) in out.items():  # compile and warm up
    jax.block_until_ready(trainer.train(state, data, args.steps))
  for _ in range(args.rounds):
    for v, (trainer, state) in out.items():
      start = time.perf_counter()
      jax.block_until_ready(trainer.train(state, data, args.steps))
      best[v] = min(best[v], time.perf_counter() - start)
  end = cfg.end_step(pieces.train.steps)
  updates = len([t for t in range(args.steps)
                 if bool(core.is_update_step(jnp.int32(t), cfg, end))])
  print(f'{pieces.model.name} on {jax.devices()[0].device_kind}, density '
        f'{args.density:g} (erk), {args.seeds} seeds, {args.steps} steps '
        f'with {updates} RigL updates, best of {args.rounds}:')
  print(f"static {best['static']:.3f} s, RigL {best['rigl']:.3f} s, "
        f"RigL / static = {best['rigl'] / best['static']:.3f}")


if __name__ == '__main__':
  main()
