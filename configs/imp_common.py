"""Shared blocks of the IMP configs: the `imp` section and the smoke shrink."""
from configs import common
import ml_collections


def imp_config(seeds: int, levels: int,
               rates=None) -> ml_collections.ConfigDict:
  """A base config with job 'imp' and F&C-style defaults (layerwise, init).

  `rates` is one number (global rules) or None for F&C's layerwise spec.
  """
  c = common.base_config()
  c.job = 'imp'
  c.num_seeds = seeds
  c.imp = ml_collections.ConfigDict()
  c.imp.levels = levels
  c.imp.rule = 'layerwise_magnitude'
  c.imp.rates = rates if rates is not None else ml_collections.ConfigDict(
      {'dense': 0.2, 'conv': 0.1, 'output': 0.1})
  c.imp.rewind = 'init'
  c.imp.rewind_step = 0
  c.imp.target_density = 0.0
  c.imp.prune_exclude = ()
  c.imp.controls = ('reinit', 'shuffle', 'random')
  c.imp.control_levels = ()
  c.imp.structure = 'unstructured'  # (out of the hash at this default)
  return c


def smoke(c: ml_collections.ConfigDict, opts: common.Variant,
          steps: int = 20, levels: int = 1) -> ml_collections.ConfigDict:
  """Seconds-long variant for tests (on their mock data; a real data set's
  whole test split is still evaluated): `levels` levels of `steps` steps,
  unless the variant `opts` gave levels= or steps= itself (the seed count
  comes from `common.parse_arg`: 2 unless given).

  Batches of 8 (of 4 below 20 steps) and 4 validation examples fit TFDS
  mock data of 16 examples. The CIFAR nets use 4 steps: a Conv-6 step
  costs about a thousand MLP steps.
  """
  levels = opts.or_smoke('levels', levels)  # (a variant not given, or
  steps = opts.or_smoke('steps', steps)  # not a variant here: the default)
  c.imp.levels = levels
  c.train.steps = steps
  c.train.eval_every = max(1, steps // 2)
  c.train.batch_size = min(c.train.batch_size, 8 if steps >= 20 else 4)
  c.data.val_size = min(c.data.val_size, 4)
  c.train.eval_batch_size = 64
  if c.imp.rewind_step:  # at a chunk end: one compiled chunk length
    c.imp.rewind_step = c.train.eval_every
  if c.grid.rewind_step:
    c.grid.rewind_step = common.smoke_rewind_steps(c.grid.rewind_step, steps)
  if c.optimizer.boundaries:
    c.optimizer.boundaries = (steps // 2, 3 * steps // 4)
  return c


def conv_cifar10(arg, *, model: str, learning_rate: float, steps: int,
                 conv_rate: float) -> ml_collections.ConfigDict:
  """Frankle & Carbin's Conv-N on CIFAR-10 (Adam, batch 60, layerwise)."""
  opts = common.parse_arg(arg, seeds=5, levels=20, smoke=False)
  c = imp_config(seeds=opts['seeds'], levels=opts['levels'])
  c.data.name = 'cifar10'
  c.data.val_size = 5000
  c.model.name = model
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = learning_rate
  c.train.steps = steps
  c.train.batch_size = 60
  c.train.eval_every = 1000
  c.imp.rates.conv = conv_rate
  return smoke(c, opts, steps=4) if opts['smoke'] else c
