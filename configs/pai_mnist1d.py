"""Pruning at initialization on the MNIST-1D MLP: score the init, prune, train.

The 40-100-100-10 residual MLP of the MNIST-1D ticket protocol (the IMP and
CS configs use it too, so the runs compare): every kernel is pruned once at
init to each target density by the chosen score, then the sparse network
trains 1500 Adam steps with its mask fixed. Five densities x 4 seeds = 20
members in one compiled program.

  python -m launch.main --config=configs/pai_mnist1d.py --workdir=/tmp/tj_pai

Variants (comma-separated after ':'):
  score=S        magnitude (default), random, snip, grasp or synflow
                 (core/scores.py; synflow prunes in 100 rounds, another
                 number with --config.pai.rounds=N), or
                 magnitude_normalized (|w| over the L2 norm of its layer's
                 kept weights);
  scope=S        layerwise (default: every layer keeps the density) or
                 global;
  at=W           init (default) or trained: score the weights after dense
                 training and train the mask from the init (one-shot
                 pruning after training; with magnitude, a one-shot ticket);
  controls=A/B   sanity-check branches next to the original masks: shuffle,
                 reinit, invert (e.g. controls=shuffle/reinit/invert);
  structure=S    unstructured (default), N:M (e.g. 2:4) or channels;
  densities=A/B  target densities (default 0.5/0.2/0.1/0.05/0.02);
  seeds=N        N seeds (default 4);
  smoke          2 seeds, densities 50% and 10%, 40 steps: a test run.

About 25-70 s on 2 CPU cores (x2 for at=trained, x(1 + controls) with
controls). Expected final test accuracy (4 seeds, magnitude, layerwise):
61.9 ± 2.1% at 50% of the weights, 49.1 ± 1.4% at 10%, 18.2 ± 1.6% at 2%;
every score, scope and control in docs/results.md ("Pruning at
initialization").
"""
from configs import common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, score='magnitude', scope='layerwise', seeds=4,
                          at='init', controls='', structure='unstructured',
                          densities='0.5/0.2/0.1/0.05/0.02', smoke=False)
  c = common.base_config()
  c.job = 'pai'
  c.num_seeds = opts['seeds']
  common.mnist1d_mlp_protocol(c, 100)
  c.pai = pai_section(opts)
  if opts['smoke']:
    if 'densities' not in opts.given:
      c.pai.densities = (0.5, 0.1)
    c.train.steps = 40
    c.train.eval_every = 20
  return c


def pai_section(opts) -> ml_collections.ConfigDict:
  """The `pai` section from the variants shared by the PaI configs."""
  s = ml_collections.ConfigDict()
  s.densities = common.slash_floats(opts['densities'])
  s.score = opts['score']
  s.scope = opts['scope']
  s.prune_exclude = ()
  s.score_batch = 256
  s.rounds = 0  # 0: the score's own (100 for synflow, else 1)
  s.structure = str(opts['structure'])
  s.controls = tuple(v for v in str(opts['controls']).split('/') if v)
  s.prune_at = opts['at']
  return s
