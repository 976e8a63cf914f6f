"""Edge-Popup on CIFAR-10: subnetworks of a frozen random Conv-N.

The paper's Conv-N recipe (Ramanujan et al. 2020, its configs): SGD lr 0.1, momentum 0.9,
weight decay 1e-4 on the scores, cosine, batch 128, 100 epochs (39,000
steps), signed Kaiming constant weights (unscaled), k 0.3/0.5/0.7, and the
dense Conv-N trained with the same recipe. No data augmentation by default
(`--config.data.augment=crop_flip` adds crops and flips). CIFAR-10 must be
prepared in the TFDS data dir.

  python -m launch.main --config=configs/edgepopup_cifar10.py --workdir=/tmp/ep
  python -m launch.main --config=configs/edgepopup_cifar10.py:model=conv6,k=0.5 --workdir=/tmp/ep

Variants: model=conv2|conv4|conv6 (default conv4), k=K (one value or
several joined by '/'), seeds=N (default 1), steps=N, smoke (1 seed, k
0.3/0.7, 40 steps; a k=, steps= or seeds= given with it wins).

Runtime and result: not measured (CIFAR-10 is not prepared on the 2-core
development machine; the tests validate this config on TFDS mock data
only). Hours on 2 CPU cores: use a GPU. The paper's plots show Conv-4 at
k = 0.5 near its dense Adam-trained accuracy (read values off its Figs. 3-5
before targeting them).
"""
from configs import common
from configs import edgepopup_mnist1d

MODELS = ('conv2', 'conv4', 'conv6')


def get_config(arg=None):
  opts = common.parse_arg(arg, model='conv4', k='0.3/0.5/0.7', seeds=1,
                          steps=39_000, smoke=False)
  if opts['model'] not in MODELS:
    raise ValueError(f"unknown variant model={opts['model']!r}; valid "
                     f'models are {list(MODELS)}')
  c = common.base_config()
  c.job = 'edgepopup'
  c.num_seeds = opts['seeds']
  c.data.name = 'cifar10'
  c.model.name = opts['model']
  edgepopup_mnist1d.sgd_recipe(c, weight_decay=1e-4)
  c.train.steps = opts['steps']
  c.train.batch_size = 128
  c.train.eval_every = 1950
  c.edgepopup = edgepopup_mnist1d.edgepopup_section(opts['k'])
  return edgepopup_mnist1d.smoke(c, opts) if opts['smoke'] else c
