"""Dynamic sparse training on the MNIST-1D MLP: static, SET and RigL.

The 40-100-100-10 residual MLP of the ticket protocol (1500 Adam steps at
1e-2, batch 100; the IMP and PaI configs share it): every member trains
sparse from a random mask at its density; SET and RigL move the mask every
100 steps until 75% of training (drop fraction 0.3, cosine decay), static
never does. Variants x distributions x densities x 4 seeds in one program.

  python -m launch.main --config=configs/dst_mnist1d.py --workdir=/tmp/tj

Variants (comma-separated after ':'):
  densities=A/B   fractions kept (default 0.2/0.1/0.05);
  dist=A/B        uniform, er and/or erk (default uniform/erk);
  every=N         steps between mask updates (default 100);
  seeds=N         seeds (default 4);
  smoke           2 seeds, densities 20/5%, 60 steps, updates every 10.

About 1.5 minutes on 2 CPU cores (72 members). Expected final test
accuracy at 20 / 10 / 5% (4 seeds, ERK): static 57.0 / 51.6 / 41.4%, SET
61.3 / 53.6 / 46.7%, RigL 60.4 / 55.1 / 49.4%; all of it in docs/results.md
("Dynamic sparse training").
"""
from configs import common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, densities='0.2/0.1/0.05', dist='uniform/erk',
                          every=100, seeds=4, smoke=False)
  c = common.base_config()
  c.job = 'dst'
  c.num_seeds = opts['seeds']
  common.mnist1d_mlp_protocol(c, 100)
  c.dst = ml_collections.ConfigDict()
  c.dst.densities = common.slash_floats(opts['densities'])
  c.dst.variants = ('static', 'set', 'rigl')
  c.dst.distributions = tuple(v for v in str(opts['dist']).split('/') if v)
  c.dst.update_every = opts['every']
  c.dst.drop_fraction = 0.3
  c.dst.end_fraction = 0.75
  c.dst.prune_exclude = ()
  if opts['smoke']:
    if 'densities' not in opts.given:
      c.dst.densities = (0.2, 0.05)
    c.train.steps = 60
    c.train.eval_every = 30
    if 'every' not in opts.given:
      c.dst.update_every = 10
  return c
