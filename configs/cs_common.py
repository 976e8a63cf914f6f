"""The `cs` section and smoke variant shared by the CS config files."""
from configs import common
import ml_collections


def cs_config(*, seeds: int, lambdas, **cs_fields) -> ml_collections.ConfigDict:
  """A `cs` job config: `base_config` plus a `cs` section.

  The section starts from the official repo's defaults (lolemacs/continuous-sparsification:
  s_init 0, beta 1 -> 200, 3 rounds, rewind to epoch 2, the weights'
  optimizer kind and rate for the logits); `cs_fields` override them.
  """
  c = common.base_config()
  c.job = 'cs'
  c.num_seeds = seeds
  c.cs = ml_collections.ConfigDict()
  c.cs.lambdas = tuple(lambdas)
  c.cs.s_init = 0.0
  c.cs.beta_max = 200.0
  c.cs.rounds = 3
  c.cs.epochs_per_round = 85
  c.cs.rewind_epoch = 2
  c.cs.mask_optimizer = ''
  c.cs.mask_learning_rate = 0.0
  c.cs.hard_mask_scale = False
  c.cs.prune_exclude = ()
  c.cs.compare_imp = ''
  for name, value in cs_fields.items():
    if name not in c.cs:
      raise ValueError(f'unknown cs field {name!r}; valid fields are '
                       f'{sorted(c.cs)}')
    c.cs[name] = value
  return c


def smoke(c: ml_collections.ConfigDict, lambdas, *, steps: int = 20,
          tiny_batches: bool = True) -> ml_collections.ConfigDict:
  """Seconds-long variant: 2 seeds, 2 lambdas, 1 round of 2 epochs.

  `tiny_batches` (batch 8, 4 validation examples) fits TFDS mock data of
  64 examples; the epoch is CS's unit, so on a real data set of that name
  the epochs are full length.
  """
  c.cs.lambdas = tuple(lambdas)
  c.cs.rounds = 1
  c.cs.epochs_per_round = 2
  c.cs.rewind_epoch = 0
  c.train.steps = steps
  c.train.eval_every = steps // 2
  if tiny_batches:
    c.data.val_size = 4
    c.train.batch_size = 8
    c.train.eval_batch_size = 64
  return c
