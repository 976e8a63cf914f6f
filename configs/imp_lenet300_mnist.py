"""Frankle & Carbin's LeNet-300-100 lottery ticket protocol on MNIST.

Adam 1.2e-3, batch 60, 50K iterations per level, layerwise pruning (fc 20%,
output 10%), rewind to init, controls at every level (F&C Figure 2).
MNIST must be prepared in the TFDS data dir (see the error message if not).

  python -m launch.main --config=configs/imp_lenet300_mnist.py --workdir=/tmp/tj

Expected (F&C): dense about 98%; tickets at or above dense down to about
3.6% of weights; reinit falls below dense from 21%. Runtime on 2 CPU cores:
hours (16 members of 266K params, 50K steps per level); use a GPU.
Variants: seeds=N, levels=N, smoke (2 seeds, 1 level of 20 steps).
"""
from configs import common
from configs import imp_common


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=5, levels=20, smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'])
  common.lenet_mnist_protocol(c)
  c.train.eval_every = 500
  c.imp.rates.dense = 0.2
  c.imp.rates.output = 0.1
  return imp_common.smoke(c, opts) if opts['smoke'] else c
