"""Tests for `ticketjax.data`: the MNIST-1D builder and the data set loaders.

MNIST-1D is generated and prepared once per session in a temporary data
directory; the image data sets run under `tfds.testing.mock_data`, so nothing
is downloaded and no prepared copy is needed.
"""
import collections
import json
import os
import random
import shutil
import sys
import time

import mnist1d.data
import numpy as np
import pytest
import tensorflow_datasets as tfds

import ticketjax.data
from ticketjax.data import DataNotPreparedError
from ticketjax.data import load_dataset
from ticketjax.data import kept
from ticketjax.data import loaders
from ticketjax.data import resolve_data_dir

# train class counts of the default MNIST-1D (the mnist1d generator, offline).
_TRAIN_CLASS_COUNTS = [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]


def _row_keys(x):
  """Returns each row's bytes, to compare rows as set elements."""
  return [row.tobytes() for row in np.ascontiguousarray(x)]


@pytest.fixture(autouse=True)
def _nothing_kept(monkeypatch):
  """Every test reads its data sets (the loader keeps none from before)."""
  monkeypatch.setattr(kept, 'KEPT', collections.OrderedDict())


@pytest.fixture(scope='session')
def reference():
  """`make_dataset`'s own arrays, with the global RNG state left intact."""
  np_state, py_state = np.random.get_state(), random.getstate()
  arrays = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
  np.random.set_state(np_state)
  random.setstate(py_state)
  return arrays


@pytest.fixture(scope='session')
def prepared(tmp_path_factory):
  """Prepares MNIST-1D once; records timing and the RNG side effects."""
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  np.random.seed(7)
  random.seed(7)
  start = time.perf_counter()
  dataset = load_dataset('mnist1d', data_dir=data_dir)
  seconds = time.perf_counter() - start
  after = (np.random.rand(), random.random())
  np.random.seed(7)
  random.seed(7)
  rng_preserved = after == (np.random.rand(), random.random())
  return {'data_dir': data_dir, 'dataset': dataset, 'seconds': seconds,
          'rng_preserved': rng_preserved}


def test_importing_does_not_import_tensorflow():
  assert 'ticketjax.data' in sys.modules
  assert 'tensorflow' not in sys.modules


def test_public_api():
  assert set(ticketjax.data.__all__) >= {
      'load_dataset', 'DATASETS', 'resolve_data_dir', 'DataNotPreparedError',
      'Mnist1d'}
  assert set(ticketjax.data.DATASETS) == {
      'mnist1d', 'mnist', 'fashion_mnist', 'mnist_5k', 'cifar10'}
  assert issubclass(DataNotPreparedError, ValueError)
  assert ticketjax.data.Mnist1d.name == 'mnist1d'


def test_mnist1d_matches_make_dataset(prepared, reference):
  ds = prepared['dataset']
  assert ds.name == 'mnist1d' and ds.num_classes == 10
  assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
  assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
  np.testing.assert_allclose(
      ds.x_train, reference['x'].astype(np.float32), rtol=0, atol=1e-6)
  np.testing.assert_allclose(
      ds.x_test, reference['x_test'].astype(np.float32), rtol=0, atol=1e-6)
  np.testing.assert_array_equal(ds.y_train, reference['y'])
  np.testing.assert_array_equal(ds.y_test, reference['y_test'])
  assert 'tensorflow' not in sys.modules


def test_mnist1d_shapes_and_class_counts(prepared):
  ds = prepared['dataset']
  assert ds.x_train.shape == (4000, 40) and ds.y_train.shape == (4000,)
  assert ds.x_test.shape == (1000, 40) and ds.y_test.shape == (1000,)
  assert ds.x_val.shape == (0, 40) and ds.x_val.dtype == np.float32
  assert ds.y_val.shape == (0,) and ds.y_val.dtype == np.int32
  counts = np.bincount(ds.y_train, minlength=10).tolist()
  assert counts == _TRAIN_CLASS_COUNTS
  assert abs(ds.x_train.mean()) < 5e-3
  assert abs(ds.x_train.std() - 0.998) < 5e-3


def test_mnist1d_prepare_preserves_global_rng(prepared):
  assert prepared['rng_preserved']


def test_mnist1d_second_load_reuses_prepared_files(prepared, monkeypatch):
  version_dir = os.path.join(prepared['data_dir'], 'mnist1d', '1.0.0')
  files = sorted(os.listdir(version_dir))
  assert any('array_record' in f for f in files)
  mtimes = {f: os.stat(os.path.join(version_dir, f)).st_mtime_ns
            for f in files}

  def fail(*args, **kwargs):
    raise AssertionError('MNIST-1D was generated again')

  monkeypatch.setattr(mnist1d.data, 'make_dataset', fail)
  again = load_dataset('mnist1d', data_dir=prepared['data_dir'])
  np.testing.assert_array_equal(again.x_train, prepared['dataset'].x_train)
  np.testing.assert_array_equal(again.y_test, prepared['dataset'].y_test)
  assert sorted(os.listdir(version_dir)) == files
  assert mtimes == {f: os.stat(os.path.join(version_dir, f)).st_mtime_ns
                    for f in files}


def test_val_split(prepared):
  full = prepared['dataset']
  ds = load_dataset('mnist1d', data_dir=prepared['data_dir'], val_size=500,
                    split_seed=3)
  assert ds.x_train.shape == (3500, 40) and ds.y_train.shape == (3500,)
  assert ds.x_val.shape == (500, 40) and ds.y_val.shape == (500,)
  np.testing.assert_array_equal(ds.x_test, full.x_test)

  position = {key: i for i, key in enumerate(_row_keys(full.x_train))}
  assert len(position) == 4000  # Rows are unique, so rows identify examples.
  train_ix = np.array([position[k] for k in _row_keys(ds.x_train)])
  val_ix = np.array([position[k] for k in _row_keys(ds.x_val)])
  assert not set(train_ix) & set(val_ix)
  assert set(train_ix) | set(val_ix) == set(range(4000))
  assert np.all(np.diff(train_ix) > 0)  # Both keep their original order.
  assert np.all(np.diff(val_ix) > 0)
  np.testing.assert_array_equal(ds.y_train, full.y_train[train_ix])
  np.testing.assert_array_equal(ds.y_val, full.y_train[val_ix])
  expected_val = np.random.default_rng(3).permutation(4000)[:500]
  assert set(val_ix) == set(expected_val)

  same = load_dataset('mnist1d', data_dir=prepared['data_dir'], val_size=500,
                      split_seed=3)
  np.testing.assert_array_equal(same.x_val, ds.x_val)
  np.testing.assert_array_equal(same.x_train, ds.x_train)
  other = load_dataset('mnist1d', data_dir=prepared['data_dir'], val_size=500,
                       split_seed=4)
  assert not np.array_equal(other.x_val, ds.x_val)


@pytest.mark.parametrize('val_size', [4000, 10_000])
def test_val_size_too_large(prepared, val_size):
  with pytest.raises(ValueError, match=r'0 <= val_size <= 3999') as info:
    load_dataset('mnist1d', data_dir=prepared['data_dir'], val_size=val_size)
  assert f'got {val_size}' in str(info.value)


def test_val_size_negative_fails_before_loading(tmp_path):
  with pytest.raises(ValueError, match='0 <= val_size') as info:
    load_dataset('mnist1d', data_dir=str(tmp_path), val_size=-1)
  assert 'got -1' in str(info.value)
  assert not os.listdir(tmp_path)


def test_val_size_not_an_integer(tmp_path):
  with pytest.raises(ValueError, match='integer'):
    load_dataset('mnist1d', data_dir=str(tmp_path), val_size=1.5)


def test_unknown_name(tmp_path):
  with pytest.raises(ValueError, match="'imagenet'") as info:
    load_dataset('imagenet', data_dir=str(tmp_path))
  for known in ('mnist1d', 'mnist', 'fashion_mnist', 'cifar10'):
    assert known in str(info.value)


def test_resolve_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'env'))
  assert resolve_data_dir(str(tmp_path / 'cfg')) == str(tmp_path / 'cfg')
  assert resolve_data_dir() == str(tmp_path / 'env')
  assert resolve_data_dir('') == str(tmp_path / 'env')
  monkeypatch.delenv('TFDS_DATA_DIR')
  assert resolve_data_dir() == os.path.abspath(
      os.path.expanduser(tfds.core.constants.DATA_DIR))
  assert resolve_data_dir('gs://bucket/tfds') == 'gs://bucket/tfds'


_IMAGE_SETS = [
    ('mnist', (28, 28, 1), (0.1307,), (0.3081,)),
    ('fashion_mnist', (28, 28, 1), (0.2860,), (0.3530,)),
    ('cifar10', (32, 32, 3), (0.4914, 0.4822, 0.4465),
     (0.2470, 0.2435, 0.2616)),
]


@pytest.mark.parametrize('name,shape,mean,std', _IMAGE_SETS)
def test_image_loader_under_mock_data(tmp_path, name, shape, mean, std):
  with tfds.testing.mock_data(num_examples=12):
    ds = load_dataset(name, data_dir=str(tmp_path), val_size=2)
  assert ds.name == name and ds.num_classes == 10
  assert ds.x_train.shape == (10,) + shape and ds.x_val.shape == (2,) + shape
  assert ds.x_test.shape == (12,) + shape
  for x in (ds.x_train, ds.x_val, ds.x_test):
    assert x.dtype == np.float32
    # Undoing the normalisation must give back uint8 pixel values.
    pixels = (x * np.float32(std) + np.float32(mean)) * 255
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)
    assert pixels.min() > -1e-3 and pixels.max() < 255 + 1e-3
  for y in (ds.y_train, ds.y_val, ds.y_test):
    assert y.dtype == np.int32 and y.ndim == 1
    assert y.min() >= 0 and y.max() < 10


def test_image_normalisation_is_per_channel(tmp_path):
  with tfds.testing.mock_data(num_examples=64):
    ds = load_dataset('cifar10', data_dir=str(tmp_path))
  black = (0.0 - np.array([0.4914, 0.4822, 0.4465])) / np.array(
      [0.2470, 0.2435, 0.2616])
  white = (1.0 - np.array([0.4914, 0.4822, 0.4465])) / np.array(
      [0.2470, 0.2435, 0.2616])
  per_channel_min = ds.x_train.min(axis=(0, 1, 2))
  per_channel_max = ds.x_train.max(axis=(0, 1, 2))
  assert np.all(per_channel_min >= black - 1e-5)
  assert np.all(per_channel_max <= white + 1e-5)
  # 64 random images reach both ends of the pixel range in every channel.
  np.testing.assert_allclose(per_channel_min, black, atol=0.05)
  np.testing.assert_allclose(per_channel_max, white, atol=0.05)


def test_unprepared_mnist_raises(tmp_path):
  data_dir = str(tmp_path)
  with pytest.raises(DataNotPreparedError) as info:
    load_dataset('mnist', data_dir=data_dir)
  message = str(info.value)
  assert os.path.join(data_dir, 'mnist') in message
  assert 'tfds build mnist --file_format=array_record' in message
  assert '--data_dir=DIR' in message
  assert 'TFDS_DATA_DIR' in message


def test_mnist_prepared_as_tfrecord_raises(tmp_path):
  version_dir = tmp_path / 'mnist' / '3.0.1'
  version_dir.mkdir(parents=True)
  info = {'name': 'mnist', 'version': '3.0.1', 'fileFormat': 'tfrecord',
          'splits': [{'name': 'train', 'shardLengths': ['10']}]}
  (version_dir / 'dataset_info.json').write_text(json.dumps(info))
  with pytest.raises(DataNotPreparedError, match='array_record'):
    load_dataset('mnist', data_dir=str(tmp_path))


@pytest.mark.parametrize('damage', ['truncate', 'flip', 'info'])
def test_damaged_prepared_data_is_named(prepared, tmp_path, damage):
  data_dir = str(tmp_path / 'tfds')
  shutil.copytree(prepared['data_dir'], data_dir)
  version_dir = os.path.join(data_dir, 'mnist1d', '1.0.0')
  (train,) = [f for f in os.listdir(version_dir) if '-train.array' in f]
  path = os.path.join(version_dir, 'dataset_info.json' if damage == 'info'
                      else train)
  with open(path, 'r+b') as f:
    size = os.path.getsize(path)
    if damage == 'flip':
      f.seek(size // 3)
      byte = f.read(1)
      f.seek(size // 3)
      f.write(bytes([byte[0] ^ 0x10]))
    else:
      f.truncate(size // 2)
  with pytest.raises(DataNotPreparedError, match=(
      rf"data set 'mnist1d' in {os.path.join(data_dir, 'mnist1d')} is "
      r'damaged .*; delete .*regenerated offline')):
    load_dataset('mnist1d', data_dir=data_dir)


def test_a_process_reads_a_data_set_once_until_its_files_change(
    prepared, tmp_path, monkeypatch):
  """The second load of the same prepared files reads nothing and gives
  read-only arrays; a file changed since (here one flipped byte) is read
  again, so the damage is still reported; TFDS mock data is never kept."""
  data_dir = str(tmp_path / 'tfds')
  shutil.copytree(prepared['data_dir'], data_dir)
  first = load_dataset('mnist1d', data_dir=data_dir)
  reads = []
  read = loaders._load_mnist1d_split
  monkeypatch.setattr(loaders, '_load_mnist1d_split',
                      lambda source: reads.append(1) or read(source))
  again = load_dataset('mnist1d', data_dir=data_dir, val_size=500)
  assert reads == []
  np.testing.assert_array_equal(again.x_test, first.x_test)
  assert len(again.y_train) + len(again.y_val) == len(first.y_train)
  with pytest.raises(ValueError, match='read-only'):
    again.x_test[0, 0] = 1.0
  version_dir = os.path.join(data_dir, 'mnist1d', '1.0.0')
  (train,) = [f for f in os.listdir(version_dir) if '-train.array' in f]
  path = os.path.join(version_dir, train)
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 3)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x10]))
  os.utime(path, ns=(1, 1))  # another mtime, whatever the clock's grain
  with pytest.raises(DataNotPreparedError, match='is damaged'):
    load_dataset('mnist1d', data_dir=data_dir)
  # a set over `KEEP_BYTES` is read every time
  monkeypatch.setattr(kept, 'KEEP_BYTES', 0)
  monkeypatch.setattr(kept, 'KEPT', collections.OrderedDict())
  load_dataset('mnist1d', data_dir=prepared['data_dir'])
  assert not kept.KEPT
  monkeypatch.setattr(kept, 'KEEP_BYTES', 256 << 20)
  # prepared and kept, but mocked: the mock's examples, and not kept
  load_dataset('mnist1d', data_dir=prepared['data_dir'])
  with tfds.testing.mock_data(num_examples=8):
    mocked = load_dataset('mnist1d', data_dir=prepared['data_dir'])
  assert len(mocked.y_test) == 8
  real = load_dataset('mnist1d', data_dir=prepared['data_dir'])
  np.testing.assert_array_equal(real.x_test, prepared['dataset'].x_test)


def test_an_error_of_the_code_is_not_reported_as_damaged_data(tmp_path):
  """A local `tree.py` shadowing dm-tree fails inside TFDS with an
  AttributeError: that passes through, rather than telling the user to
  delete a good data set; a file error is still 'damaged'."""
  def fail(error):
    def load():
      raise error
    return load
  guarded = lambda load: loaders._guarded('mnist1d', 'mnist1d',
                                          str(tmp_path), load)
  with pytest.raises(AttributeError, match='map_structure'):
    guarded(fail(AttributeError(
        "module 'tree' has no attribute 'map_structure'")))
  with pytest.raises(DataNotPreparedError, match='is damaged .*RuntimeError'):
    guarded(fail(RuntimeError('chunk hash mismatch')))
