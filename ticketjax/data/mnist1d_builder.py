"""TFDS builder that generates MNIST-1D offline.

MNIST-1D (Greydanus & Kobak, ICML 2024) is a procedurally generated 1-D
stand-in for MNIST: 4000 train / 1000 test sequences of length 40, 10 classes.
The `mnist1d` package's `get_dataset` tries an HTTP download first, so this
builder never calls it; it runs the deterministic generator
`mnist1d.data.make_dataset(get_dataset_args())` (seed 42, equal to the
published frozen set) and stores the result as a regular TFDS data set.
Storing it through TFDS gives MNIST-1D the same on-disk cache, versioning and
`tfds.data_source` random access as the image data sets.

TFDS shuffles examples when it writes them, so each example carries its
position in the generator's arrays as the `index` feature; readers sort by it
to recover the generation order.

The generator reseeds numpy's global random state and TFDS draws from Python's
while it writes; `prepare` saves and restores both, so preparing the data set
has no effect on other code that uses the global generators (a seeded run
draws the same numbers whether or not the data set was already prepared).
"""
import contextlib
import fcntl
import os
import random
import sys
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from ticketjax.data import image_builders

SEQUENCE_LENGTH = 40
NUM_CLASSES = 10

_DESCRIPTION = """\
MNIST-1D: 10 hand-designed 1-D digit templates, each padded, scaled,
translated, noised, sheared and resampled to 40 points, then standardised
globally. Generated offline with `mnist1d.data.make_dataset` and the package's
default arguments (5000 examples, 80/20 train/test split, seed 42).
"""

_CITATION = """\
@inproceedings{greydanus2024scaling,
  title={Scaling down deep learning with {MNIST-1D}},
  author={Greydanus, Sam and Kobak, Dmitry},
  booktitle={International Conference on Machine Learning},
  year={2024}
}
"""


def _is_headless() -> bool:
  """Returns whether no display server is reachable (Linux/BSD only)."""
  if sys.platform.startswith(('win', 'darwin')):
    return False
  return not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _use_agg_if_headless() -> None:
  """Selects matplotlib's Agg backend when nobody has chosen one and no display.

  Importing `mnist1d` imports `matplotlib.pyplot`. The backend is left alone
  when pyplot is already imported, when `MPLBACKEND` is set, when the user has
  picked a backend explicitly, or when a display is available.
  """
  if 'matplotlib.pyplot' in sys.modules or os.environ.get('MPLBACKEND'):
    return
  if not _is_headless():
    return
  import matplotlib  # pylint: disable=g-import-not-at-top
  try:
    chosen = matplotlib.get_backend(auto_select=False)
  except TypeError:  # matplotlib < 3.10: no way to ask without resolving.
    return
  if chosen is None:
    matplotlib.use('Agg')


@contextlib.contextmanager
def _preserved_global_rng() -> Iterator[None]:
  """Restores numpy's and Python's global random state on exit."""
  np_state = np.random.get_state()
  py_state = random.getstate()
  try:
    yield
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)


def generate_arrays() -> dict[str, np.ndarray]:
  """Runs the MNIST-1D generator with its default arguments.

  Returns:
    The generator's dict: `x` (4000, 40), `y` (4000,), `x_test` (1000, 40),
    `y_test` (1000,), plus `t` and `templates`. `x` arrays are float64 as
    generated.
  """
  _use_agg_if_headless()
  import mnist1d.data  # pylint: disable=g-import-not-at-top
  with _preserved_global_rng():
    return mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())


class Mnist1d(tfds.core.GeneratorBasedBuilder):
  """MNIST-1D as a TFDS data set named `mnist1d`, generated without network."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'mnist1d 0.0.2 default arguments, seed 42.'}

  # TFDS derives `code_path` through a check that imports the backport
  # `importlib_resources`, which TFDS only requires on Python < 3.9; the
  # plain file path (TFDS's own fallback) avoids that dependency.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    """Declares the features: `x` float32 (40,), `label`, `index`."""
    return tfds.core.DatasetInfo(
        builder=self,
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            'x': tfds.features.Tensor(
                shape=(SEQUENCE_LENGTH,), dtype=np.float32),
            'label': tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            'index': tfds.features.Scalar(dtype=np.int64),
        }),
        supervised_keys=('x', 'label'),
        homepage='https://github.com/greydanus/mnist1d',
        citation=_CITATION,
        license='Apache-2.0',
    )

  def _split_generators(self, dl_manager):
    """Generates the data once and splits it as the generator does."""
    del dl_manager  # Nothing to download.
    arrays = generate_arrays()
    return {
        'train': self._generate_examples(arrays['x'], arrays['y']),
        'test': self._generate_examples(arrays['x_test'], arrays['y_test']),
    }

  def _generate_examples(self, x: np.ndarray, y: np.ndarray):
    """Yields `(index, example)` pairs in the generator's order."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    for i in range(len(y)):
      yield i, {'x': x[i], 'label': int(y[i]), 'index': i}


def prepare(data_dir: str) -> None:
  """Generates MNIST-1D into `data_dir` (ArrayRecord) unless already there.

  Processes that prepare it at the same time take turns (a lock file
  `data_dir/mnist1d.lock`): the first generates, the others find it there.

  Args:
    data_dir: TFDS data directory; the data lands in `data_dir/mnist1d/1.0.0`.
  """
  builder = Mnist1d(data_dir=data_dir, file_format='array_record')
  if builder.is_prepared():
    return
  if '://' in data_dir:  # remote storage: no local lock file
    with _preserved_global_rng():
      builder.download_and_prepare()
    return
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, 'mnist1d.lock'), 'a', encoding='utf-8') as f:
    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
    builder = Mnist1d(data_dir=data_dir, file_format='array_record')
    if builder.is_prepared():  # another process prepared it meanwhile
      return
    with _preserved_global_rng(), image_builders.preparing('mnist1d',
                                                           data_dir):
      builder.download_and_prepare()
