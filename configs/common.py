"""Shared config blocks and the `:arg` variant parser of every config file.

A config file's `get_config(arg)` receives the text after ':' in
`--config=configs/X.py:ARG`. `parse_arg` turns 'smoke,seeds=8' into
{'smoke': True, 'seeds': 8}: bare words are flags, `k=v` values are parsed
as Python literals when they can be, else kept as strings. A value given in
ARG always wins: `smoke` shrinks only what ARG leaves at its default
(`:smoke,seeds=3` runs 3 seeds; `:smoke` alone runs at most `SMOKE_SEEDS`),
except a grid of rewind steps past a smoke run's end (`smoke_rewind_steps`).
"""
import ast
import importlib.util

import ml_collections


SMOKE_SEEDS = 2


def from_file(spec: str) -> ml_collections.ConfigDict:
  """`get_config(ARG)` of a config file given as FILE.py[:ARG] (for
  scripts that take a config without the absl launcher: benchmarks)."""
  path, _, arg = spec.partition(':')
  loader = importlib.util.spec_from_file_location('config_file', path)
  module = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(module)
  return module.get_config(arg or None)


class Variant(dict):
  """`parse_arg`'s values; `given` holds the names ARG set itself."""
  given: frozenset = frozenset()

  def or_smoke(self, name: str, smoke_value):
    """The value of `name`, or `smoke_value` under `smoke` unless ARG gave
    `name` itself."""
    if self.get('smoke') and name not in self.given:
      return smoke_value
    return self[name]


def parse_arg(arg: str | None, **defaults) -> Variant:
  """'smoke,seeds=8' -> {'smoke': True, 'seeds': 8}; unknown keys raise.

  Under `smoke`, a `seeds` left at its default becomes at most SMOKE_SEEDS.
  """
  out = Variant(defaults)
  given = set()
  for part in filter(None, (arg or '').split(',')):
    key, sep, value = part.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ValueError(f'unknown config variant {key!r}; valid variants are '
                       f'{sorted(defaults)}')
    given.add(key)
    if not sep:
      if not isinstance(defaults[key], bool):
        raise ValueError(f'config variant {key!r} needs a value, e.g. '
                         f'{key}={defaults[key]!r}')
      out[key] = True
      continue
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
    _check_type(key, value, out[key], defaults[key])
  out.given = frozenset(given)
  if 'seeds' in defaults:
    out['seeds'] = out.or_smoke('seeds', min(defaults['seeds'], SMOKE_SEEDS))
  return out


def _check_type(key: str, text: str, value, default) -> None:
  """A variant whose default is an int takes an int; a flag takes True or
  False (or is given bare); others take what their config reads."""
  if isinstance(default, bool):
    if not isinstance(value, bool):
      raise ValueError(f'config variant {key}={text} is a flag: write '
                       f'{key!r} alone, or {key}=True / {key}=False')
  elif isinstance(default, int) and (
      not isinstance(value, int) or isinstance(value, bool)):
    raise ValueError(f'config variant {key}={text} must be an integer, e.g. '
                     f'{key}={default}')


def smoke_rewind_steps(ks, steps: int) -> tuple[int, ...]:
  """A smoke run's grid of rewind steps: each k before its `steps` kept,
  and stand-ins for those past its end (the paper's k, e.g. 0/100/500):
  as many steps evenly spaced, in their order, between the largest k kept
  (0, a rewind to init, if none) and the end (0/100/500: 0/13/26;
  0/10/100: 0/10/25; 100: 20). A negative k is kept, for the check to
  refuse."""
  kept = [k for k in ks if k < steps]
  past = sorted(k for k in ks if k >= steps)
  low = max([0] + kept)
  inside = {k: low + (i + 1) * (steps - low) // (len(past) + 1)
            for i, k in enumerate(past)}
  mapped = tuple(inside.get(k, k) for k in ks)
  if past and len(set(mapped)) < len(set(ks)):
    raise ValueError(
        f'smoke: the rewind steps {list(past)} lie past the smoke run\'s '
        f'{steps} steps and have no distinct stand-ins after {low}; give '
        f'rewind steps below {steps} or fewer of them')
  return mapped


def slash_floats(text) -> tuple[float, ...]:
  """'1e-2/3e-3' (or one number, or '') -> (0.01, 0.003) for grid variants."""
  if isinstance(text, (int, float)):
    return (float(text),)
  try:
    return tuple(float(v) for v in str(text).split('/') if v)
  except ValueError:
    raise ValueError(f"{text!r} is not numbers joined by '/', e.g. "
                     '1e-2/3e-3') from None


def slash_ints(text) -> tuple[int, ...]:
  """'0/100/1000' (or one int, or '') -> (0, 100, 1000) for list variants."""
  if isinstance(text, int):
    return (text,)
  try:
    return tuple(int(v) for v in str(text).split('/') if v)
  except ValueError:
    raise ValueError(f"{text!r} is not integers joined by '/', e.g. "
                     '0/100/1000') from None


def lmc_section(rewind_steps, copies: int, levels
                ) -> ml_collections.ConfigDict:
  """The `lmc` section of an instability analysis (test split, 30 alphas).

  `levels` is an IMP-levels variant ('3/6/10' or ''); the IMP run folder is
  given on the command line (`--config.lmc.imp_run=...`).
  """
  s = ml_collections.ConfigDict()
  s.rewind_steps = tuple(rewind_steps)
  s.copies = copies
  s.num_alphas = 30
  s.splits = ('test',)
  s.dense = True
  s.imp_run = ''
  s.imp_levels = slash_ints(levels)
  s.recompute_stats = True
  s.stats_batches = 50
  return s


def base_config() -> ml_collections.ConfigDict:
  """Every field a job reads, with neutral defaults."""
  c = ml_collections.ConfigDict()
  c.job = 'dense'
  c.seed = 0
  c.first_seed = 0  # this run's seeds are [first_seed, +num_seeds)
  c.num_seeds = 3
  c.progress = True
  # CPU-only kernels: auto (on the CPU backend only), on or off
  c.cpu_kernels = 'auto'

  c.data = ml_collections.ConfigDict()
  c.data.name = 'mnist1d'
  c.data.data_dir = ''  # '' = $TFDS_DATA_DIR, else TFDS's default
  c.data.val_size = 0
  c.data.augment = 'none'  # or 'crop_flip' (images; ticketjax.augment)

  c.model = ml_collections.ConfigDict()
  c.model.name = 'mnist1d_mlp'
  c.model.kwargs = ml_collections.ConfigDict()

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.momentum = 0.9
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.weight_decay = 0.0
  c.optimizer.schedule = 'constant'
  c.optimizer.boundaries = ()
  c.optimizer.decay_factor = 0.1
  c.optimizer.warmup_steps = 0

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1000
  c.train.batch_size = 100
  c.train.eval_every = 250
  c.train.eval_batch_size = 1000
  c.train.member_group = 0  # > 0: bitwise the same on any device count
  c.train.checkpoint_every_s = 600.0  # saves a killed stage resumes from

  # A vmapped hyperparameter grid (ticketjax.core.grid): values per name, the
  # cartesian product runs in one program; an empty list is no grid.
  c.grid = ml_collections.ConfigDict()
  c.grid.learning_rate = ()
  c.grid.weight_decay = ()
  c.grid.pruning_rate = ()
  c.grid.rewind_step = ()
  return c


def mnist1d_mlp_protocol(c: ml_collections.ConfigDict, width: int
                         ) -> ml_collections.ConfigDict:
  """The MNIST-1D ticket protocol that IMP and CS share (so they compare).

  The 40-w-w-10 residual MLP, 500 validation examples, Adam 1e-2, batch
  100, 1500 steps per training run, evaluation every 250 steps.
  """
  c.data.name = 'mnist1d'
  c.data.val_size = 500
  c.model.name = 'mnist1d_mlp'
  c.model.kwargs = ml_collections.ConfigDict({'width': width})
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-2
  c.train.steps = 1500
  c.train.batch_size = 100
  c.train.eval_every = 250
  return c


def lenet_mnist_protocol(c: ml_collections.ConfigDict
                         ) -> ml_collections.ConfigDict:
  """Frankle & Carbin's LeNet-300-100 on MNIST: Adam 1.2e-3, batch 60.

  5,000 validation examples held out of train, 50,000 steps per run.
  """
  c.data.name = 'mnist'
  c.data.val_size = 5000
  c.model.name = 'lenet_300_100'
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1.2e-3
  c.train.steps = 50_000
  c.train.batch_size = 60
  return c
