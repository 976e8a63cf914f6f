"""Edge-Popup on MNIST-1D: subnetworks of frozen random networks.

Scores trained with the paper's recipe (SGD lr 0.1, momentum 0.9, weight
decay 5e-4 on the scores, cosine, batch 100), signed Kaiming constant
weights, every k and seed in one compiled program; then the same network
trained normally with the same recipe and seeds, the comparison line.

  python -m launch.main --config=configs/edgepopup_mnist1d.py --workdir=/tmp/ep
  python -m launch.main --config=configs/edgepopup_mnist1d.py:cnn,k=0.5,seeds=2 --workdir=/tmp/ep

Variants (comma-separated after ':'):
  cnn          the MNIST-1D 1-D CNN instead of the 40-w-w-10 residual MLP;
  channels=N   CNN channels (default 100);
  width=N      MLP hidden width (default 100);
  k=K          fractions kept: one value or several joined by '/'
               (default 0.3/0.5/0.7);
  seeds=N      seeds (default 3);
  steps=N      training steps (default 3000, 75 epochs);
  controls=A/B sanity checks of the found supermasks, evaluated: shuffle,
               reinit, invert (e.g. controls=shuffle/reinit/invert);
  smoke        2 seeds, k 0.3/0.7, 40 steps: the tests' run (~20 s); a
               seeds=, k= or steps= given with it wins.
A run folder keeps its seed count (it is out of the hash): another count in
the same workdir is refused. report.md shows the table, accuracy.png (test
accuracy against k) and curves.png (test accuracy and loss against step).

Measured on 2 CPU cores shared with other jobs (load 2-6; wall time of the
whole command): final-step test accuracy in %, mean ± std over seeds for
k = 0.3 / 0.5 / 0.7, and the dense network trained with the same recipe.
  (default: MLP width 100)    50.6 / 54.3 / 52.3, dense 65.7       45 s
  :width=500                  57.4 / 57.9 / 57.7, dense 69.5      3.3 min
  :width=2000,seeds=1         58.1 / 60.0 / 58.7, dense 70.3       15 min
  :cnn,k=0.5,seeds=2          k=0.5: 75.1 ± 0.6, dense 94.0        13 min
  :cnn,seeds=1 and --config.edgepopup.dense_baseline=False
                              68.3 / 74.5 / 75.9                   11 min
Wider random MLPs hold better subnetworks; the untrained subnetwork of the
100-channel CNN beats the trained MLP (65.7) by about 9 points.
"""
import ml_collections

from configs import common


def k_values(value) -> tuple[float, ...]:
  """0.5 -> (0.5,); '0.3/0.5' -> (0.3, 0.5) (',' separates variants)."""
  if isinstance(value, (int, float)):
    return (float(value),)
  if isinstance(value, (tuple, list)):
    return tuple(float(v) for v in value)
  try:
    return tuple(float(v) for v in str(value).split('/'))
  except ValueError:
    raise ValueError(f"k={value!r}: give fractions kept joined by '/', e.g. "
                     'k=0.3/0.5/0.7') from None


def edgepopup_section(k) -> ml_collections.ConfigDict:
  """The `edgepopup` section: paper defaults (signed constant, unscaled)."""
  return ml_collections.ConfigDict({
      'k': k_values(k),
      'init': 'signed_constant',
      'scale_fan': False,
      'dense_baseline': True,
  })


def sgd_recipe(c: ml_collections.ConfigDict, weight_decay: float
               ) -> ml_collections.ConfigDict:
  """The paper's optimizer: SGD 0.1, momentum 0.9, cosine, coupled L2."""
  c.optimizer.name = 'momentum'
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = weight_decay
  c.optimizer.schedule = 'cosine'
  return c


def smoke(c: ml_collections.ConfigDict, opts: common.Variant
          ) -> ml_collections.ConfigDict:
  """The tests' variant: k 0.3/0.7, 40 steps of batch 16 (`parse_arg`
  caps the seeds at 2); a k= or steps= the variant `opts` gave wins."""
  if 'k' not in opts.given:
    c.edgepopup.k = (0.3, 0.7)
  if 'steps' not in opts.given:
    c.train.steps = 40
  c.train.eval_every = 10
  c.train.batch_size = min(c.train.batch_size, 16)
  c.train.eval_batch_size = 64
  return c


def get_config(arg=None):
  opts = common.parse_arg(arg, cnn=False, channels=100, width=100,
                          k='0.3/0.5/0.7', seeds=3, steps=3000, controls='',
                          smoke=False)
  c = common.base_config()
  c.job = 'edgepopup'
  c.num_seeds = opts['seeds']
  c.data.name = 'mnist1d'
  if opts['cnn']:
    c.model.name = 'mnist1d_cnn'
    c.model.kwargs = ml_collections.ConfigDict({'channels': opts['channels']})
  else:
    c.model.name = 'mnist1d_mlp'
    c.model.kwargs = ml_collections.ConfigDict({'width': opts['width']})
  sgd_recipe(c, weight_decay=5e-4)
  c.train.steps = opts['steps']
  c.train.batch_size = 100
  c.train.eval_every = 500
  c.edgepopup = edgepopup_section(opts['k'])
  c.edgepopup.controls = tuple(
      v for v in str(opts['controls']).split('/') if v)
  return smoke(c, opts) if opts['smoke'] else c
