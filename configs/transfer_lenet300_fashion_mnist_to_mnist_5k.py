"""Ticket transfer (Morcos et al. 2019): Fashion-MNIST tickets on MNIST.

The LeNet-300-100 tickets of an `imp_lenet300_fashion_mnist` run (mask and
initial weights) trained on the 5,000 real MNIST digits, next to the
target's own tickets (an `imp_lenet300_mnist_5k` run), the transferred
mask on a fresh init, and a random mask of the same per-layer density, at
several levels, all in one program. Training as the target run's (Adam
1.2e-3, batch 60, 2,000 iterations, 500 validation images).

  python -m launch.main \\
      --config=configs/transfer_lenet300_fashion_mnist_to_mnist_5k.py \\
      --config.transfer.source_run=DIR/imp-<fashion hash> \\
      --config.transfer.target_run=DIR/imp-<mnist_5k hash> --workdir=DIR

Runtime: a few minutes on 2 CPU cores (4 levels x 4 branches x 5 seeds).
Variants: seeds=N, steps=N, smoke (2 seeds, 20 steps, levels (1,)).
"""
from configs import common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=5, steps=2000, smoke=False)
  c = common.base_config()
  c.job = 'transfer'
  c.num_seeds = opts['seeds']
  common.lenet_mnist_protocol(c)
  c.data.name = 'mnist_5k'
  c.data.val_size = 500
  c.train.steps = opts['steps']
  c.train.eval_every = 100
  c.transfer = ml_collections.ConfigDict({
      'source_run': '', 'target_run': '', 'levels': (5, 8, 11, 13),
      'controls': ('reinit', 'random')})
  if opts['smoke']:  # a steps= given with it wins
    c.train.steps = opts.or_smoke('steps', 20)
    c.train.eval_every = 10
    c.train.batch_size = 8
    c.data.val_size = 4
    c.transfer.levels = (1,)
  return c
