"""Continuous Sparsification on the MNIST-1D MLP: one vmapped lambda sweep.

The MLP, data, optimizer and ticket training of `imp_mlp_mnist1d` (Adam
1e-2, batch 100, 1500 steps, 500 validation examples), so the CS tickets
are directly comparable with IMP's. Every lambda x seed member searches in
one compiled program: ROUNDS rounds of EPOCHS epochs (beta 1 -> 200 each
round), weights rewound to epoch REWIND (here 0, as IMP rewinds to init),
then each member's hard mask is retrained from the rewind point.

  python -m launch.main --config=configs/cs_mnist1d.py --workdir=/tmp/tj

Set `--config.cs.compare_imp=DIR/imp-<hash>` to draw IMP's ticket curve of
the same model in `accuracy.png`.

Variants (comma-separated after ':'):
  seeds=N    N seeds per lambda (default 4);
  width=N    hidden width (default 100);
  smoke      1 round of 2 short epochs, 2 lambdas, 2 seeds: seconds.
"""
from configs import common
import ml_collections

LAMBDAS = (1e-5, 3e-5, 1e-4, 2e-4, 4e-4)


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=4, width=100, smoke=False)
  c = common.base_config()
  c.job = 'cs'
  c.num_seeds = opts['seeds']
  c.data.name = 'mnist1d'
  c.data.val_size = 500
  c.model.name = 'mnist1d_mlp'
  c.model.kwargs = ml_collections.ConfigDict({'width': opts['width']})
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-2
  c.train.steps = 1500
  c.train.batch_size = 100
  c.train.eval_every = 250

  c.cs = ml_collections.ConfigDict()
  c.cs.lambdas = LAMBDAS
  c.cs.s_init = 0.0
  c.cs.beta_max = 200.0
  c.cs.rounds = 2
  c.cs.epochs_per_round = 40
  c.cs.rewind_epoch = 0
  c.cs.mask_learning_rate = 0.0
  c.cs.hard_mask_scale = False
  c.cs.prune_exclude = ()
  c.cs.compare_imp = ''
  if opts['smoke']:
    c.num_seeds = min(opts['seeds'], 2)
    c.cs.lambdas = (1e-5, 1e-3)
    c.cs.rounds = 1
    c.cs.epochs_per_round = 2
    c.train.steps = 40
    c.train.eval_every = 20
  return c
