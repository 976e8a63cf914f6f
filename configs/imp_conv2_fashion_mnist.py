"""Frankle & Carbin's Conv-2 lottery experiment on Fashion-MNIST.

Conv-2 (two 3x3 convolutions of 64, a max-pool, dense 256-256, output) on
the 28x28x1 images: Adam 2e-4, batch 60, layerwise pruning (convolutions
10%, dense 20%, output 10% per level), rewind to init, 5 seeds, 5,000
validation images, the reinit, shuffle and random controls (F&C
Figure 2, their CIFAR-10 Conv-2 protocol on this data set).

  python -m launch.main --config=configs/imp_conv2_fashion_mnist.py \\
      --workdir=/tmp/tj

Cost: on the 2-core CPU, 500 steps of 5 members with two evaluations of
15,000 images took 8 min 4 s (about 0.11 s per member-step, about 20 s per
member to evaluate): the defaults (5 seeds, 2,000 steps per level instead
of F&C's 20,000, 8 levels, controls at levels 4 and 8) would take about 8
hours here (estimated from that): use a GPU. `:cpu` is sized for well
under an hour: 2 seeds, 300 steps, 3 levels, controls at level 3, 1,000
validation images, evaluation every 150 steps (its run: docs/results.md).

Variants: seeds=N, levels=N, steps=N, cpu, smoke (2 seeds, 1 level of 4
steps; sized for the tests' mock data: on the real Fashion-MNIST each of
its evaluations covers the 10,000 test images, so it takes minutes on 2
cores: level 0 took 62 s, level 1 about 4 minutes, from a stopped run).
"""
from configs import common
from configs import imp_common
import ml_collections

STEPS = 2000
LEVELS = 8
CONTROL_LEVELS = (4, 8)


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=5, levels=LEVELS, steps=STEPS,
                          cpu=False, smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'])
  c.data.name = 'fashion_mnist'
  c.data.val_size = 5000
  c.model.name = 'conv2'
  c.model.kwargs = ml_collections.ConfigDict({'input_shape': (28, 28, 1)})
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-4
  c.train.steps = opts['steps']
  c.train.batch_size = 60
  c.train.eval_every = 250
  # CPU convolutions unfold 3x3 patches: evaluating 1,000 images for 8
  # members took 18 GB and was killed; 100 at a time fits (out of the hash)
  c.train.eval_batch_size = 100
  c.imp.rates.conv = 0.1
  c.imp.control_levels = CONTROL_LEVELS
  if opts['cpu']:
    given = lambda name, cpu: opts[name] if name in opts.given else cpu
    c.num_seeds = given('seeds', 2)
    c.imp.levels = given('levels', 3)
    c.train.steps = given('steps', 300)
    c.train.eval_every = 150
    c.data.val_size = 1000
    c.imp.control_levels = (c.imp.levels,)
  if opts['smoke']:
    c.imp.control_levels = ()
    return imp_common.smoke(c, opts, steps=4)
  return c
