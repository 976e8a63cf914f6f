r"""The MNIST-1D lottery experiment: IMP on an MLP, layerwise, rewind to init.

Frankle & Carbin's protocol on the MNIST-1D MLP (Greydanus & Kobak's
lottery-tickets notebook):
layerwise magnitude pruning of the kernels, 20% per level (output layer
10%), survivors rewound to their step-0 values, with the three controls
(random reinit, layerwise shuffle, iterative random pruning) at every level,
all seeds and branches in one compiled program per level.

  python -m launch.main --config=configs/imp_mlp_mnist1d.py --workdir=/tmp/tj

Variants (comma-separated after ':'):
  seeds=N    N seeds (default 4);
  levels=N   pruning levels after the dense level (default 10, about 11%
             of the hidden kernels left);
  width=N    hidden width of the 40-N-N-10 residual MLP (default 100);
  lr=A/B/..  a grid over the learning rate (one program, ticketjax.core.grid);
  rate=A/..  a grid over the pruning rate, one rate for every layer
             (replaces the 20%/10% rates);
  k=A/B/..   rewind to step k instead of init (imp.rewind='step'), a grid
             over k: every level runs all k in one program;
  rule=R     layerwise (default: F&C's 20% per layer, output 10%) or
             global (20% of all prunable kernels pooled, by magnitude);
  structure=S  unstructured (default), N:M (e.g. 2:4: level 1 prunes to
             2 of every 4 inputs, later levels below 50% in that
             pattern) or channels (whole units; the rates count units);
  controls=A/B  the control branches (default all three; 'none' for none);
  smoke      2 seeds, 2 levels of 40 steps: a seconds-long test run
             (a seeds= or levels= given with it wins; k past the 40
             steps become as many steps spread between the largest k
             that fits, or 0, and 40: 0/100/500 runs as 0/13/26, which
             the title shows).

A 2 x 2 grid, 4 seeds per point, 16 searches in one program per level:

  python -m launch.main \
    --config=configs/imp_mlp_mnist1d.py:lr=1e-2/3e-3,rate=0.2/0.4 \
    --workdir=/tmp/tj
"""
from configs import common
from configs import imp_common
import ml_collections


# rule variant -> (imp.rule, imp.rates; None keeps F&C's layerwise rates)
RULES = {
    'layerwise': ('layerwise_magnitude', None),
    'global': ('global_magnitude', 0.2),
}


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=4, levels=10, width=100, lr='',
                          rate='', k='', rule='layerwise',
                          structure='unstructured', controls='', smoke=False)
  if opts['rule'] not in RULES:
    raise ValueError(f"unknown rule variant {opts['rule']!r}; valid rules "
                     f'are {sorted(RULES)}')
  rule, rates = RULES[opts['rule']]
  c = imp_common.imp_config(
      seeds=opts['seeds'], levels=opts['levels'],
      rates=rates if rates is not None else ml_collections.ConfigDict(
          {'dense': 0.2, 'output': 0.1}))
  c.imp.rule = rule
  c.imp.structure = str(opts['structure'])
  if opts['controls']:
    c.imp.controls = tuple(
        v for v in str(opts['controls']).split('/') if v != 'none')
  common.mnist1d_mlp_protocol(c, opts['width'])
  c.grid.learning_rate = common.slash_floats(opts['lr'])
  c.grid.pruning_rate = common.slash_floats(opts['rate'])
  c.grid.rewind_step = common.slash_ints(opts['k'])
  if c.grid.rewind_step:
    c.imp.rewind = 'step'
  if opts['smoke']:
    c.imp.levels = opts.or_smoke('levels', min(opts['levels'], 2))
    c.train.steps = 40
    c.train.eval_every = 20
    if c.grid.rewind_step:
      c.grid.rewind_step = common.smoke_rewind_steps(c.grid.rewind_step, 40)
  return c
