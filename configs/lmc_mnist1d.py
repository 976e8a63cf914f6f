r"""Instability analysis on MNIST-1D (Frankle et al. 2020, arXiv 1912.05671).

From the dense trajectory's weights W_k at each rewind step k, C copies per
seed train to the end with different data orders; every pair of copies is
interpolated at 30 alphas and its test-error barrier is the instability of
W_k (stable: under 2%). Default: the MNIST-1D CNN with the notebook's
Adam 1e-2 and batch 100 for 3000 steps (half the notebook's 6000: test
accuracy is already at its plateau, about 92%, by then), 3 seeds x 2
copies, k in {0, 25, 50, 100, 250, 500, 1000}.

  python -m launch.main --config=configs/lmc_mnist1d.py --workdir=/tmp/tj

IMP subnetworks of the MNIST-1D MLP (masks from an imp_mlp_mnist1d run,
whose protocol the `mlp` variant shares):

  python -m launch.main --config=configs/imp_mlp_mnist1d.py --workdir=/tmp/tj
  python -m launch.main --config=configs/lmc_mnist1d.py:mlp,levels=3/6/10 \
      --workdir=/tmp/tj --config.lmc.imp_run=/tmp/tj/imp-203b350a7d83

Those tickets were found by IMP rewound to init and are applied at every
k. The paper's protocol finds each k's tickets by IMP rewound to k: give
an IMP grid over rewind steps, and each k takes its own point's tickets
(the rewind steps must be the grid's):

  python -m launch.main --config=configs/imp_mlp_mnist1d.py:k=0/100/500,levels=10,controls=none \
      --workdir=/tmp/tj
  python -m launch.main --config=configs/lmc_mnist1d.py:mlp,levels=3/6/10,rewind=0/100/500,random \
      --workdir=/tmp/tj --config.lmc.imp_run=/tmp/tj/imp-<hash of the grid>

Variants (comma-separated after ':'):
  mlp        the 40-100-100-10 residual MLP with the IMP protocol (1500
             steps; rewind steps 0/25/50/100/250/500);
  levels=A/B IMP levels to analyse besides the dense network (needs
             --config.lmc.imp_run);
  random     with levels=: also a random mask at each ticket's per-layer
             counts (network level_LLL_random), the sparsity-alone control;
  seeds=N    N seeds (default 3); copies=N copies per seed (default 2);
  rewind=A/B rewind steps, e.g. rewind=0/100/1000;
  smoke      2 seeds x 2 copies, 60 steps, k in {0, 30}: seconds (a
             seeds=, copies= or rewind= given with it wins; rewind steps
             must lie below the 60 steps). The tickets of an
             imp_mlp_mnist1d smoke run (40 steps) need its steps too:
             :mlp,levels=1,smoke,rewind=0/20 --config.train.steps=40
             --config.train.eval_every=20.

Runtime on 2 CPU cores and result (measured): docs/results.md, "Instability
of the dense MNIST-1D CNN" and "Instability of IMP tickets".
Results in the run folder: report.md (the table), barrier.png (barrier
against k, ±1 std band) and paths.png (error along the path per network).
"""
from configs import common


def get_config(arg=None):
  opts = common.parse_arg(arg, mlp=False, levels='', seeds=3, copies=2,
                          rewind='', random=False, smoke=False)
  c = common.base_config()
  c.job = 'lmc'
  c.num_seeds = opts['seeds']
  if opts['mlp']:
    common.mnist1d_mlp_protocol(c, 100)
    rewind = (0, 25, 50, 100, 250, 500)
  else:
    c.data.name = 'mnist1d'
    c.model.name = 'mnist1d_cnn'
    c.optimizer.name = 'adam'
    c.optimizer.learning_rate = 1e-2
    c.train.steps = 3000
    c.train.batch_size = 100
    c.train.eval_every = 500
    rewind = (0, 25, 50, 100, 250, 500, 1000)
  if 'rewind' in opts.given:
    rewind = common.slash_ints(opts['rewind'])
  c.lmc = common.lmc_section(rewind, opts['copies'], opts['levels'])
  if opts['random']:
    c.lmc.random_masks = True
  if opts['smoke']:  # a copies= or rewind= given with it wins
    c.train.steps = 60
    c.train.eval_every = 30
    if 'rewind' not in opts.given:
      c.lmc.rewind_steps = (0, 30)  # one chunk length: fewer compiles
  return c
