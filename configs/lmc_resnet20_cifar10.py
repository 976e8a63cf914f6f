"""Instability of ResNet-20 on CIFAR-10 (Frankle et al. 2020, arXiv 1912.05671).

The paper's standard ResNet-20 protocol (SGD momentum 0.9, lr 0.1 with x0.1
at 32K and 48K of 63K iterations, weight decay 1e-4, batch 128), 3 seeds x
2 copies, rewind steps {0, 100, 250, 500, 1000, 2000}; BatchNorm statistics
are re-estimated along every path. The paper finds the dense network stable
from about iteration 2000 (3% of training). CIFAR-10 must be prepared in
the TFDS data dir. SGD noise is the data order and the crop + flip
augmentation, both drawn per copy.

  python -m launch.main --config=configs/lmc_resnet20_cifar10.py --workdir=/tmp/tj

IMP tickets: --config.lmc.imp_run=<workdir>/imp-<hash> of an
imp_resnet20_cifar10 run and the variant levels=A/B.
Runtime: many hours on 2 CPU cores; use a GPU. Not measured here.
Variants: seeds=N, copies=N, levels=A/B, smoke (2 seeds x 2 copies, 20
steps, k in {0, 10}).
Results in the run folder: report.md (the table), barrier.png (barrier
against k, ±1 std band) and paths.png (error along the path per network).
"""
from configs import common
from configs import imp_resnet20_cifar10


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=3, copies=2, levels='', smoke=False)
  c = imp_resnet20_cifar10.get_config(f"seeds={opts['seeds']}")
  del c.imp
  c.job = 'lmc'
  c.lmc = common.lmc_section((0, 100, 250, 500, 1000, 2000), opts['copies'],
                              opts['levels'])
  if opts['smoke']:
    c.train.steps = 20
    c.train.eval_every = 10
    c.train.batch_size = 8
    c.train.eval_batch_size = 64
    c.data.val_size = 4
    c.optimizer.boundaries = (10, 15)
    c.lmc.rewind_steps = (0, 10)
    c.lmc.stats_batches = 2
  return c
