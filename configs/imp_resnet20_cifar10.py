"""ResNet-20 on CIFAR-10: global pruning with rewinding to step k.

Frankle et al. 2020 (LMC, arXiv 1912.05671): SGD momentum 0.9, lr 0.1 with
x0.1 at 32K and 48K of 63K iterations, weight decay 1e-4, batch 128; global
magnitude pruning of 20% of the conv kernels per level (the output layer is
not pruned), survivors rewound to their values at step k = 2000 (the whole
training state of that step); random 32x32 crops of the 4-pixel padded
images and random horizontal flips (`data.augment='crop_flip'`). CIFAR-10
must be prepared in the TFDS data dir.

  python -m launch.main --config=configs/imp_resnet20_cifar10.py --workdir=/tmp/tj

Expected: dense about 91.7%; matching tickets down to about 16.8% of
weights. Runtime: many hours on 2 CPU cores; use a GPU.
Variants: seeds=N, levels=N, k=A/B/.. (a grid over the rewind step, all
in one program per level, e.g. k=0/500/2000 as in Frankle et al. 2020's
rewinding study), smoke (2 seeds, 1 level of 4 steps; a k grid becomes
0/2).
"""
from configs import common
from configs import imp_common


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=3, levels=10, k='', smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'],
                           rates=0.2)
  c.data.name = 'cifar10'
  c.data.val_size = 5000
  c.data.augment = 'crop_flip'
  c.model.name = 'resnet20'
  c.optimizer.name = 'momentum'
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 1e-4
  c.optimizer.schedule = 'step'
  c.optimizer.boundaries = (32_000, 48_000)
  c.train.steps = 63_000
  c.train.batch_size = 128
  c.train.eval_every = 1000
  c.imp.rule = 'global_magnitude'
  c.imp.prune_exclude = ('output',)
  c.imp.rewind = 'step'
  c.imp.rewind_step = 2000
  c.grid.rewind_step = common.slash_ints(opts['k'])
  return imp_common.smoke(c, opts, steps=4) if opts['smoke'] else c
