"""Pruning at initialization on the MNIST-1D MLP: score the init, prune, train.

The 40-100-100-10 residual MLP of the MNIST-1D ticket protocol (the IMP and
CS configs use it too, so the runs compare): every kernel is pruned once at
init to each target density by the chosen score, then the sparse network
trains 1500 Adam steps with its mask fixed. Five densities x 4 seeds = 20
members in one compiled program.

  python -m launch.main --config=configs/pai_mnist1d.py --workdir=/tmp/tj_pai

Variants (comma-separated after ':'):
  score=S    magnitude (default), random, snip, grasp or synflow
             (core/scores.py; synflow prunes in 100 rounds);
  scope=S    layerwise (default: every layer keeps the density) or global;
  seeds=N    N seeds (default 4);
  smoke      2 seeds, densities 50% and 10%, 40 steps: a test run.

About 25-70 s on 2 CPU cores. Expected final test accuracy (4 seeds,
magnitude, layerwise): 61.4 ± 0.5% at 50% of the weights, 49.1 ± 1.3% at
10%, 18.2 ± 1.6% at 2%; every score and scope in docs/results.md
("Pruning at initialization").
"""
from configs import common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, score='magnitude', scope='layerwise', seeds=4,
                          smoke=False)
  c = common.base_config()
  c.job = 'pai'
  c.num_seeds = opts['seeds']
  common.mnist1d_mlp_protocol(c, 100)
  c.pai = ml_collections.ConfigDict()
  c.pai.densities = (0.5, 0.2, 0.1, 0.05, 0.02)
  c.pai.score = opts['score']
  c.pai.scope = opts['scope']
  c.pai.prune_exclude = ()
  c.pai.score_batch = 256
  if opts['smoke']:
    c.pai.densities = (0.5, 0.1)
    c.train.steps = 40
    c.train.eval_every = 20
  return c
