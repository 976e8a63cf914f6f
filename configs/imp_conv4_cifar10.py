"""Frankle & Carbin's Conv-4 lottery ticket protocol on CIFAR-10.

Adam 3e-4, batch 60, 25_000 iterations per level, layerwise pruning (conv
10%, fc 20%, output 10%), rewind to init, controls at every level
(ALGORITHMS.md 1.2). CIFAR-10 must be prepared in the TFDS data dir.

  python -m launch.main --config=configs/imp_conv4_cifar10.py --workdir=/tmp/tj

Expected (F&C): best test-accuracy gain about +3.4pp, tickets above dense
while more than 2% of weights remain. Runtime: hours on 2 CPU cores; use a
GPU. Variants: seeds=N, levels=N, smoke (2 seeds, 1 level of 20 steps).
"""
from configs import common
from configs import imp_common


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=5, levels=20, smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'])
  c.data.name = 'cifar10'
  c.data.val_size = 5000
  c.model.name = 'conv4'
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 3e-4
  c.train.steps = 25_000
  c.train.batch_size = 60
  c.train.eval_every = 1000
  c.imp.rates.conv = 0.1
  return imp_common.smoke(c) if opts['smoke'] else c
