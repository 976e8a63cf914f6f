"""Early-Bird tickets on MNIST-1D: unstructured on the MLP, channels on a CNN
with BatchNorm, and early-bird IMP.

Default: the 40-100-100-10 residual MLP of the ticket protocol (Adam 1e-2,
batch 100, 1500 steps, about 43 epochs of 35 steps: 3,500 training examples
after the 500 held out for validation), layerwise magnitude
masks at densities 50/20/10% checked every epoch (window 5, epsilon 0.1);
each Early-Bird ticket and the full-training ticket of its density
retrain from the init for 1500 steps next to the dense network. 4 seeds.

  python -m launch.main --config=configs/early_bird_mnist1d.py --workdir=/tmp/tj
  python -m launch.main --config=configs/early_bird_mnist1d.py:cnn --workdir=/tmp/tj
  python -m launch.main --config=configs/early_bird_mnist1d.py:levels=8 --workdir=/tmp/tj

Variants (comma-separated after ':'):
  cnn            the MNIST-1D CNN with BatchNorm (25 channels per
                 convolution), channel masks by BatchNorm |scale| over all
                 convolutions together (global), the network-slimming L1
                 penalty 1e-4 on the scales during the search; densities
                 70/50/30% of the channels (the paper's 30/50/70% pruned);
                 the dense CNN protocol (6000 steps, about 171 epochs);
  levels=L       early-bird IMP: L levels pruning 20% of the survivors
                 each, every level trained only until its mask settles;
  densities=A/B  fractions kept (one-shot; not with levels=);
  scope=S        layerwise or global (default: layerwise; global with cnn);
  seeds=N        seeds (default 4);
  smoke          2 seeds, 200 steps, checks every 10 steps, window 3.

Runtime on 2 CPU cores: MLP about 1 minute, CNN about 4.5 minutes (its
table reproduced exactly on 2026-12-07), early-bird IMP with 8 levels a
few minutes. Results: docs/results.md
("Early-Bird tickets").
"""
from configs import common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, cnn=False, levels=0, densities='', scope='',
                          seeds=4, smoke=False)
  c = common.base_config()
  c.job = 'early_bird'
  c.num_seeds = opts['seeds']
  common.mnist1d_mlp_protocol(c, 100)
  eb = c.early_bird = ml_collections.ConfigDict()
  eb.densities = (0.5, 0.2, 0.1)
  eb.score = 'magnitude'
  eb.scope = 'layerwise'
  eb.structure = 'unstructured'
  eb.prune_exclude = ()
  eb.window = 5
  eb.epsilon = 0.1
  eb.l1 = 0.0
  eb.check_every = 0
  eb.levels = int(opts['levels'])
  eb.rate = 0.2
  if opts['cnn']:
    c.model.name = 'mnist1d_cnn'
    c.model.kwargs = ml_collections.ConfigDict({'batch_norm': True})
    c.train.steps = 6000
    c.train.eval_every = 500
    eb.densities = (0.7, 0.5, 0.3)
    eb.score = 'bn_scale'
    eb.scope = 'global'
    eb.structure = 'channels'
    eb.l1 = 1e-4
  if 'scope' in opts.given:
    eb.scope = opts['scope']
  if 'densities' in opts.given:
    if eb.levels:
      raise ValueError(
          f"config variants levels={eb.levels} and densities="
          f"{opts['densities']} conflict: early-bird IMP prunes {eb.rate:g} "
          'of the survivors per level, one-shot Early-Bird prunes to the '
          'densities; give one of them')
    eb.densities = common.slash_floats(opts['densities'])
  if opts['smoke']:
    c.train.steps = 200
    c.train.eval_every = 100
    eb.check_every = 10
    eb.window = 3
  return c
