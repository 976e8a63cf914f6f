"""Dynamic sparse training of LeNet-300-100 on Fashion-MNIST: static, SET
and RigL on the protocol of configs/imp_lenet300_fashion_mnist.py, so the
runs compare with its tickets at the same densities and steps: Adam 1.2e-3,
batch 60, 15,000 steps, 5,000 validation images held out.

The default densities are exactly the IMP run's weights remaining at its
levels 7, 10 and 13 (21.07%, 10.83%, 5.57%: 20% per level, 10% for the
output layer). Masks move every 100 steps until 75% of training (drop
fraction 0.3, cosine decay). Variants x distributions x densities x 5 seeds
in one program.

  apt-get install -y dataset-fashion-mnist   # once; prepared on first use
  python -m launch.main --config=configs/dst_lenet300_fashion_mnist.py \\
      --workdir=/tmp/tj

Variants: those of configs/dst_mnist1d.py (densities=, dist=, every=,
seeds=, smoke: 2 seeds, 20 steps, updates every 5, 4 validation images),
and steps=N.

About 20 minutes on 2 CPU cores (90 members). Measured: docs/results.md
("Dynamic sparse training").
"""
from configs import common
from configs import dst_mnist1d
import ml_collections

# IMP's weights remaining at levels 7, 10 and 13 (configs/imp_lenet300_...)
DENSITIES = '0.2107212622/0.1082757325/0.0557250188'


def get_config(arg=None):
  opts = common.parse_arg(arg, densities=DENSITIES, dist='uniform/erk',
                          every=100, seeds=5, steps=15_000, smoke=False)
  c = dst_mnist1d.get_config(
      f"densities={opts['densities']},dist={opts['dist']},"
      f"every={opts['every']},seeds={opts['seeds']}")
  common.lenet_mnist_protocol(c)
  c.model.kwargs = ml_collections.ConfigDict()  # not the MNIST-1D width
  c.data.name = 'fashion_mnist'
  c.train.steps = opts['steps']
  c.train.eval_every = 250
  if opts['smoke']:  # a steps= or every= given with it wins
    c.train.steps = opts.or_smoke('steps', 20)
    c.train.eval_every = 10
    c.dst.update_every = opts.or_smoke('every', 5)
    c.data.val_size = min(c.data.val_size, 4)
  return c
