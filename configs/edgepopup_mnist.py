"""Edge-Popup on MNIST: subnetworks of a frozen random LeNet-300-100.

The recipe of the reference code's MNIST example (SGD lr 0.1, momentum
0.9, weight decay 5e-4 on the scores, cosine; allenai/hidden-networks) at batch
128 for about 20 epochs, signed Kaiming constant weights, k 0.3/0.5/0.7 and
the dense LeNet trained with the same recipe. MNIST must be prepared in the
TFDS data dir (the error message says how if not).

  python -m launch.main --config=configs/edgepopup_mnist.py --workdir=/tmp/ep

Variants: k=K (one value or several joined by '/'), seeds=N (default 2),
steps=N (default 9400), smoke (2 seeds, k 0.3/0.7, 40 steps; a k=,
steps= or seeds= given with it wins).

Runtime and result: not measured (MNIST is not prepared on the 2-core
development machine; the tests validate this config on TFDS mock data
only). Each step trains 6 members of 266K scores: expect tens of minutes
on 2 CPU cores.
"""
from configs import common
from configs import edgepopup_mnist1d


def get_config(arg=None):
  opts = common.parse_arg(arg, k='0.3/0.5/0.7', seeds=2, steps=9400,
                          smoke=False)
  c = common.base_config()
  c.job = 'edgepopup'
  c.num_seeds = opts['seeds']
  c.data.name = 'mnist'
  c.model.name = 'lenet_300_100'
  edgepopup_mnist1d.sgd_recipe(c, weight_decay=5e-4)
  c.train.steps = opts['steps']
  c.train.batch_size = 128
  c.train.eval_every = 470
  c.edgepopup = edgepopup_mnist1d.edgepopup_section(opts['k'])
  return edgepopup_mnist1d.smoke(c, opts) if opts['smoke'] else c
