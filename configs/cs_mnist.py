"""Continuous Sparsification on LeNet-300-100 / MNIST (TFDS, prepared).

LeNet-300-100 with Frankle & Carbin's optimizer (Adam 1.2e-3, batch 60,
55,000 train / 5,000 validation), so the tickets compare with
`imp_lenet300_mnist`. Each lambda x seed member searches in one program:
3 rounds of 20 epochs (beta 1 -> 200), weights rewound to epoch 2, then the
hard masks are retrained from epoch 2 to 50,000 steps. MNIST must be
prepared in the TFDS data dir (see README).

  python -m launch.main --config=configs/cs_mnist.py --workdir=/tmp/tj

Runtime: hours on 2 CPU cores (3 x 20 epochs x 916 steps x members); not
measured here (no prepared MNIST on this machine). Expected: tickets at
several densities from one run; not yet measured.
Variants: seeds=N, smoke (2 lambdas x 2 seeds, 1 round of 2 epochs of batch
8; meant for TFDS mock data in the tests: on the real data set an epoch is
long).
"""
from configs import common
from configs import cs_common


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=2, smoke=False)
  c = cs_common.cs_config(
      seeds=opts['seeds'], lambdas=(1e-6, 1e-5, 1e-4), s_init=0.5,
      epochs_per_round=20, mask_learning_rate=3e-4)
  common.lenet_mnist_protocol(c)
  c.train.eval_every = 5000
  return cs_common.smoke(c, (1e-5, 1e-3)) if opts['smoke'] else c
