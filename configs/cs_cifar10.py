"""Continuous Sparsification on ResNet-20 / CIFAR-10: the official recipe.

Savarese et al.'s repo defaults (lolemacs/continuous-sparsification): every 3x3 conv masked
(1x1 shortcut convs and the output layer are not), s_init 0, lambda 1e-8,
beta 1 -> 200 over 85 epochs per round, 3 rounds, weights rewound to epoch
2; SGD Nesterov lr 0.1, momentum 0.9, weight decay 1e-4 (none on the
logits), x0.1 at epochs 56 and 71, batch 128, 5,000 validation images.
Random crops of the 4-pixel padded images and horizontal flips, as the repo
(`data.augment='crop_flip'`). CIFAR-10 must be prepared in the TFDS data
dir.

  python -m launch.main --config=configs/cs_cifar10.py --workdir=/tmp/tj

Runtime: days on 2 CPU cores; use a GPU. Expected (repo README): tickets
of about 70-80% density at 91.5-92% test accuracy with augmentation; not
measured here.
Variants: seeds=N, smoke (2 lambdas x 2 seeds, 1 round of 2 epochs of batch
8; meant for TFDS mock data in the tests: on the real data set an epoch is
long).
"""
from configs import common
from configs import cs_common

STEPS_PER_EPOCH = 45_000 // 128
EPOCHS = 85


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=1, smoke=False)
  c = cs_common.cs_config(seeds=opts['seeds'], lambdas=(1e-8,),
                          epochs_per_round=EPOCHS,
                          prune_exclude=('output', 'shortcut'))
  c.data.name = 'cifar10'
  c.data.val_size = 5000
  c.data.augment = 'crop_flip'
  c.model.name = 'resnet20'
  c.optimizer.name = 'nesterov'
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 1e-4
  c.optimizer.schedule = 'step'
  c.optimizer.boundaries = (56 * STEPS_PER_EPOCH, 71 * STEPS_PER_EPOCH)
  c.train.steps = EPOCHS * STEPS_PER_EPOCH
  c.train.batch_size = 128
  c.train.eval_every = 5 * STEPS_PER_EPOCH
  if opts['smoke']:
    cs_common.smoke(c, (1e-8, 1e-4))
    c.optimizer.schedule = 'constant'
    c.optimizer.boundaries = ()
  return c
