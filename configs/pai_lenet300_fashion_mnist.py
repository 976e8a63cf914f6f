"""Pruning at initialization (or once after training) of LeNet-300-100 on
Fashion-MNIST, on the protocol of configs/imp_lenet300_fashion_mnist.py, so
the runs compare with its tickets: Adam 1.2e-3, batch 60, 15,000 steps, 5
seeds, 5,000 validation images held out for the early-stopping point.
Six target densities x 5 seeds = 30 members in one compiled program.

  python -m launch.main --config=configs/pai_lenet300_fashion_mnist.py \\
      --workdir=/tmp/tj

Variants: those of configs/pai_mnist1d.py (score=, scope=, at=, controls=,
structure=, densities=, seeds=, smoke: 2 seeds, 50/10%, 20 steps, 4
validation images), and steps=N. Default densities
50/20/10/5/2/1%.

About 6 minutes per score on 2 CPU cores (7 with at=trained; the controls
add a program's worth each). Measured: docs/results.md ("Pruning at
initialization", "Sanity checks: which weights, or how many per layer?"
and "Layer collapse").
"""
from configs import common
from configs import pai_mnist1d

STEPS = 15_000


def get_config(arg=None):
  opts = common.parse_arg(arg, score='magnitude', scope='layerwise', seeds=5,
                          at='init', controls='', structure='unstructured',
                          densities='0.5/0.2/0.1/0.05/0.02/0.01',
                          steps=STEPS, smoke=False)
  c = common.base_config()
  c.job = 'pai'
  c.num_seeds = opts['seeds']
  common.lenet_mnist_protocol(c)
  c.data.name = 'fashion_mnist'
  c.train.steps = opts['steps']
  c.train.eval_every = 250
  c.pai = pai_mnist1d.pai_section(opts)
  c.pai.score_batch = 100  # SNIP's MNIST batch (Lee et al. 2019)
  if opts['smoke']:
    if 'densities' not in opts.given:
      c.pai.densities = (0.5, 0.1)
    c.train.steps = opts.or_smoke('steps', 20)  # a steps= given wins
    c.train.eval_every = 10
    c.data.val_size = min(c.data.val_size, 4)  # as imp_common.smoke
  return c
