"""Dense training on MNIST-1D with the MNIST-1D notebook protocol.

Adam 1e-2, batch 100, 6000 steps (the MNIST-1D paper's MLP baseline), 3 seeds in one
compiled program; prints the test accuracy per seed.

  python -m launch.main --config=configs/dense_mnist1d.py --workdir=/tmp/tj
  python -m launch.main --config=configs/dense_mnist1d.py:cnn --workdir=/tmp/tj

Variants (comma-separated after ':'):
  cnn       the MNIST-1D paper's 1-D CNN instead of the MLP 40-100-100-10;
  seeds=N   N seeds instead of 3;
  smoke     60 steps, 2 seeds: a seconds-long check used by the tests.

Runtime on 2 CPU cores and expected result (measured, docs/results.md,
"Dense MNIST-1D baselines"): MLP about 20 s, mean test accuracy about 65.7%
(published 65-68%); CNN about 35 s, about 92.7% (published 92-94%).
"""
from configs import common


def get_config(arg=None):
  opts = common.parse_arg(arg, cnn=False, seeds=3, smoke=False)
  c = common.base_config()
  c.job = 'dense'
  c.num_seeds = opts['seeds']
  c.data.name = 'mnist1d'
  c.model.name = 'mnist1d_cnn' if opts['cnn'] else 'mnist1d_mlp'
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-2
  c.train.steps = 6000
  c.train.batch_size = 100
  c.train.eval_every = 500
  if opts['smoke']:
    c.train.steps = 60
    c.train.eval_every = 30
  return c
