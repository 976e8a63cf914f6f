"""Frankle & Carbin's lottery experiment on real data: LeNet-300-100 on
Fashion-MNIST (60,000 / 10,000 images from the Debian package, prepared
offline: `python -m launch.prepare --dataset=fashion_mnist`, or on first use).

As F&C's MNIST protocol (F&C Figure 2): Adam 1.2e-3, batch 60,
layerwise pruning (hidden layers 20%, output 10% per level), rewind to
init, 5 seeds, 5,000 validation images held out of train for the
early-stopping iteration (minimum validation loss), the reinit, shuffle and
random controls, and the `finetune` control (the ticket's mask on the
trained weights: "standard pruning", seed document's Phase 2), all in one
compiled program per level.

  python -m launch.main --config=configs/imp_lenet300_fashion_mnist.py \\
      --workdir=/tmp/tj

Changed from the paper, to fit about an hour on 2 CPU cores: 15,000
iterations per level instead of 50,000 (16 epochs of the 55,000 training
images; F&C's MNIST tickets early-stop within ~20,000), 14 levels (down to
4.4% of the weights) instead of 20, and the controls only at the levels
CONTROL_LEVELS (the last four span 91-96% sparsity). Measured here: 305
steps/s for 5 members, 59 for 25, so about 36 minutes of training on 2
cores. The table and plots: docs/results.md.

Variants: seeds=N, levels=N, steps=N, structure=S (unstructured, N:M such
as 2:4, or channels; core/structure.py), controls=A/B (default reinit/
shuffle/random/finetune; 'none' for none), smoke (2 seeds, 1 level of 20
steps on the real data).
"""
from configs import common
from configs import imp_common

STEPS = 15_000
LEVELS = 14
CONTROL_LEVELS = (2, 5, 8, 11, 12, 13, 14)


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=5, levels=LEVELS, steps=STEPS,
                          structure='unstructured', controls='', smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'])
  common.lenet_mnist_protocol(c)
  c.data.name = 'fashion_mnist'
  c.train.steps = opts['steps']
  c.train.eval_every = 250
  c.imp.rates.dense = 0.2
  c.imp.rates.output = 0.1
  c.imp.controls = ('reinit', 'shuffle', 'random', 'finetune')
  c.imp.control_levels = CONTROL_LEVELS
  c.imp.structure = str(opts['structure'])
  if opts['controls']:
    c.imp.controls = tuple(
        v for v in str(opts['controls']).split('/') if v != 'none')
  if opts['smoke']:
    c.imp.control_levels = ()
    return imp_common.smoke(c, opts)
  return c
