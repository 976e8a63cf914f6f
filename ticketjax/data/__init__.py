"""Data layer: small classification data sets as whole numpy arrays.

`load_dataset(name, ...)` returns a `ticketjax.types.Dataset` for any name in
`DATASETS` (`mnist1d`, `fashion_mnist`, `mnist_5k`, `mnist`, `cifar10`).
Everything is read through TFDS ArrayRecord data sources, so neither
TensorFlow nor network access is needed: MNIST-1D is generated offline by
the `Mnist1d` builder, Fashion-MNIST and the 5k MNIST are prepared offline
from package files (`image_builders`), and the others must be prepared
beforehand (`DataNotPreparedError` says how).
"""
from ticketjax.data.loaders import DataNotPreparedError
from ticketjax.data.loaders import DATASETS
from ticketjax.data.loaders import DatasetSpec
from ticketjax.data.loaders import load_dataset
from ticketjax.data.loaders import resolve_data_dir
from ticketjax.data.mnist1d_builder import Mnist1d

__all__ = [
    'DATASETS',
    'DataNotPreparedError',
    'DatasetSpec',
    'Mnist1d',
    'load_dataset',
    'resolve_data_dir',
]
