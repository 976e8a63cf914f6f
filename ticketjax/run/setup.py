"""From a config to the pieces of a run, every check made before any work.

The config stops here: `build(config)` validates the whole config against
the registries (model, data set, optimizer, schedule), loads the data set
(failing clearly if it is not prepared), and returns typed pieces. Library
functions below it never see a ConfigDict.
"""
import dataclasses
from typing import Any, Mapping, Sequence

import jax

from ticketjax import data as data_lib
from ticketjax import models as models_lib
from ticketjax.core import augment as augment_lib
from ticketjax.core import grid as grid_lib
from ticketjax.core import kernels
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.core.types import Dataset, Model
from ticketjax.run import workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How long and in what batches to train.

  Attributes:
    steps: optimizer steps per training run.
    batch_size: examples per step and seed.
    eval_every: steps between evaluations (and progress updates).
    eval_batch_size: evaluation chunk size (memory, not semantics).
    member_group: members per compiled group (`Trainer.member_group`; 0 =
      all at once). Float rounding only, so not semantic.
    checkpoint_every_s: seconds between the saves inside a training stage
      that a killed run resumes from (`steps.MidStage`; 0: after every
      evaluation chunk). Not semantic: the results are the same.
  """
  steps: int
  batch_size: int
  eval_every: int
  eval_batch_size: int = 1000
  member_group: int = 0
  checkpoint_every_s: float = 600.0

  def validate(self) -> None:
    for name in ('steps', 'batch_size', 'eval_every', 'eval_batch_size'):
      if int(getattr(self, name)) < 1:
        raise ValueError(f'train.{name} must be a positive integer, got '
                         f'{getattr(self, name)}')
    if int(self.member_group) < 0:
      raise ValueError(f'train.member_group must be >= 0, got '
                       f'{self.member_group}')
    if not float(self.checkpoint_every_s) >= 0:  # (NaN too)
      raise ValueError('train.checkpoint_every_s must be a number of '
                       f'seconds >= 0, got {self.checkpoint_every_s}')


@dataclasses.dataclass(frozen=True)
class Pieces:
  """What a job needs: data, model, optimizer config and trainer."""
  dataset: Dataset
  model: Model
  optimizer: optim.OptimizerConfig
  train: TrainConfig
  trainer: train_lib.Trainer
  seed: int
  num_seeds: int
  first_seed: int = 0
  grid: grid_lib.GridSpec = grid_lib.GridSpec()

  def seed_keys(self):
    """Root keys of this run's seeds [first_seed, first_seed + num_seeds)."""
    return train_lib.seed_keys(self.seed, self.num_seeds, self.first_seed)

  def lineage_keys(self):
    """Seed keys repeated for every grid point: [G * S], point-major."""
    keys = self.seed_keys()
    return jax.numpy.concatenate([keys] * self.grid.size)


def as_dict(config_section) -> dict:
  if hasattr(config_section, 'to_dict'):
    return config_section.to_dict()
  return dict(config_section)


def typed_section(cls, section: Mapping, where: str):
  """`cls(**section)`; ValueError naming unknown fields of `config.where`."""
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(section) - fields)
  if unknown:
    raise ValueError(f'unknown fields {unknown} in config.{where}; valid '
                     f'fields are {sorted(fields)}')
  values = dict(section)
  if 'boundaries' in values:
    values['boundaries'] = tuple(int(b) for b in values['boundaries'])
  return cls(**values)


def tuple_field(field: str, value) -> tuple:
  """The value of tuple field `config.<field>` as a tuple (a scalar: a
  1-tuple). ValueError if it holds '(a,b)', 'a,b' or '(a)': an override
  whose quotes the shell took off (`--config.x.y=(a,b)`, which the flag
  parser keeps as one string). No tuple field's values hold commas or
  brackets."""
  values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
  for v in values:
    if isinstance(v, str) and (',' in v or v.startswith(('(', '['))):
      raise ValueError(
          f'config.{field} holds {v!r}, one string, not a tuple: quote a '
          f'tuple override whole, e.g. --config.{field}="(\'a\', \'b\')", '
          'or give one value without brackets')
  return values


def method_section(config, name: str, cls, tuples: Sequence[str] = (),
                   floats: Sequence[str] = ()):
  """The typed `config.<name>` section of a method (`cls`, a dataclass).

  Fields in `tuples` become tuples (a scalar: a 1-tuple), those in `floats`
  tuples of floats. ValueError if the section is missing, has unknown
  fields (naming the valid ones) or a `floats` field holds no numbers.
  """
  if name not in config:
    fields = sorted(f.name for f in dataclasses.fields(cls))
    raise ValueError(f'job {config.job!r} needs a config.{name} section '
                     f'with fields {fields}')
  section = as_dict(config[name])
  for field in (*tuples, *floats):
    if field in section:
      section[field] = tuple_field(f'{name}.{field}', section[field])
  for field in floats:
    if field in section:
      try:
        section[field] = tuple(float(v) for v in section[field])
      except (TypeError, ValueError):
        raise ValueError(
            f'config.{name}.{field} = {config[name][field]!r} is not a '
            'number or a tuple of numbers, e.g. (0.5, 0.1)') from None
  return typed_section(cls, section, name)


def optimizer_config(config) -> optim.OptimizerConfig:
  return typed_section(optim.OptimizerConfig, as_dict(config.optimizer),
                'optimizer')


def train_config(config) -> TrainConfig:
  cfg = typed_section(TrainConfig, as_dict(config.train), 'train')
  cfg.validate()
  return cfg


def model_from_config(config, dataset: Dataset | None = None) -> Model:
  kwargs = as_dict(config.model.get('kwargs', {}))
  if dataset is not None:
    kwargs.setdefault('num_classes', dataset.num_classes)
  return models_lib.get_model(config.model.name, **kwargs)


def check_seeds(config) -> None:
  if int(config.num_seeds) < 1:
    raise ValueError(f'num_seeds must be >= 1, got {config.num_seeds}')
  if int(config.get('first_seed', 0)) < 0:
    raise ValueError(f'first_seed must be >= 0, got {config.first_seed}')


def build(config: Any) -> Pieces:
  """Validates `config` and builds the pieces; raises ValueError if bad.

  Cheap checks (names, ranges) come first, then the data set is loaded,
  then the model's shapes are checked against the data with an abstract
  forward pass (no compute).
  """
  check_seeds(config)
  kernels.set_mode(config.get('cpu_kernels', 'auto'))
  train_cfg = train_config(config)
  opt_cfg = optimizer_config(config)
  opt_cfg.validate(train_cfg.steps)
  grid = grid_lib.from_config(config)
  grid_lib.check_values(grid)
  if (config.data.name not in data_lib.DATASETS and
      config.data.name not in data_lib.TEXT_DATASETS):
    raise ValueError(f'unknown data set {config.data.name!r}; valid data '
                     f'sets are {sorted(data_lib.DATASETS)} and the text '
                     f'data sets {sorted(data_lib.TEXT_DATASETS)}')
  augment_lib.check_name(config.data.get('augment', 'none'))
  if config.model.name not in models_lib.MODELS:
    raise ValueError(f'unknown model {config.model.name!r}; valid models '
                     f'are {sorted(models_lib.MODELS)}')
  if config.data.get('data_dir'):
    workdir_lib.check_folder(config.data.data_dir, 'data.data_dir')
  source = as_dict(config.model.get('kwargs', {})).get('source')
  if source:  # before the data, whose tokenizer may be the source's
    from ticketjax.models import pretrained as pretrained_lib  # pylint: disable=g-import-not-at-top
    try:
      pretrained_lib.check_source(source)
    except ValueError as e:
      raise ValueError(f'model.kwargs.source: {e}') from None
  dataset = data_lib.load_dataset(
      config.data.name, data_dir=config.data.get('data_dir') or None,
      val_size=int(config.data.get('val_size', 0)),
      context=config.data.get('context'),  # text only (default 128)
      tokenizer=config.data.get('tokenizer'))  # text only (default 'char')
  if dataset.x_train.shape[0] < train_cfg.batch_size:
    raise ValueError(
        f'train.batch_size {train_cfg.batch_size} exceeds the '
        f'{dataset.x_train.shape[0]} training examples of {dataset.name}')
  spec = data_lib.DATASETS.get(config.data.name)  # None for text
  augment = augment_lib.get_augment(config.data.get('augment', 'none'),
                                    dataset.x_train.shape[1:],
                                    spec and spec.mean, spec and spec.std)
  model = model_from_config(config, dataset)
  check_model_fits_data(model, dataset)
  trainer = train_lib.Trainer(
      model, optim.make_optimizer(opt_cfg, train_cfg.steps,
                                  per_member=grid.optimizer_names),
      batch_size=train_cfg.batch_size,
      eval_batch_size=train_cfg.eval_batch_size,
      member_group=int(train_cfg.member_group), augment=augment)
  return Pieces(dataset, model, opt_cfg, train_cfg, trainer,
                int(config.seed), int(config.num_seeds),
                int(config.get('first_seed', 0)), grid)


def check_model_fits_data(model: Model, dataset: Dataset) -> None:
  """An abstract forward pass: shape errors surface before any training."""
  try:
    params, state = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((2,) + dataset.x_train.shape[1:],
                             dataset.x_train.dtype)
    logits, _ = jax.eval_shape(
        lambda p, s, x: model.apply(p, s, x, train=False), params, state, x)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f'model {model.name!r} cannot run on {dataset.name!r} inputs of '
        f'shape {dataset.x_train.shape[1:]}: {e}') from e
  # a label per example, or per position ([N, T] next tokens of a text)
  want = (2,) + dataset.y_train.shape[1:] + (dataset.num_classes,)
  if logits.shape != want:
    raise ValueError(
        f'model {model.name!r} gives logits of shape {logits.shape[1:]} but '
        f'{dataset.name!r} needs {want[1:]} ({dataset.num_classes} classes'
        f"{' per position' if len(want) > 2 else ''})")


# -- pretrained language models and single documents (no training data set)

def pretrained(source: str):
  """(DecoderConfig, params, tokenizer) of a pretrained decoder LM
  (`models.pretrained.load_pretrained`): a GGUF's tokenizer from its metadata, a
  Hugging Face GPT-2 folder's from tokenizer.json or vocab.json +
  merges.txt. ValueError for anything else."""
  import os  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  from ticketjax.models import gguf_llama, pretrained as pretrained_lib  # pylint: disable=g-import-not-at-top
  cfg, params, path = pretrained_lib.load_pretrained(source)
  if path.endswith('.gguf'):
    return cfg, params, gguf_llama.tokenizer(path)
  tok_json = os.path.join(path, 'tokenizer.json')
  vocab, merges = (os.path.join(path, f) for f in ('vocab.json',
                                                   'merges.txt'))
  if os.path.isfile(tok_json):
    return cfg, params, tokenizers.Tokenizer.from_file(tok_json)
  if os.path.isfile(vocab) and os.path.isfile(merges):
    return cfg, params, tokenizers.ByteLevelBPETokenizer(vocab, merges)
  raise ValueError(f'{path} has no tokenizer.json nor vocab.json + '
                   'merges.txt to tokenize text for it')


def pretrained_params(source: str, random: bool = False) -> dict:
  """The params of a pretrained decoder (`models.pretrained`), or with
  `random` a fresh init (key 0) of its architecture."""
  from ticketjax.models import pretrained as pretrained_lib, transformer  # pylint: disable=g-import-not-at-top
  cfg, params, _ = pretrained_lib.load_pretrained(source)
  return transformer.init(cfg, jax.random.PRNGKey(0)) if random else params


def document(spec: str, data_dir: str | None = None) -> str:
  """The raw text of 'corpus:document' (e.g. 'austen:prideprejudice')."""
  corpus, sep, name = str(spec).partition(':')
  if not sep or not name:
    raise ValueError(f'document {spec!r}: write corpus:document, e.g. '
                     f"'austen:prideprejudice'; corpora "
                     f'{sorted(data_lib.TEXT_DATASETS)}')
  return data_lib.document_text(corpus, name, data_dir)
