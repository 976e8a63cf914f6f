"""Data layer: small data sets as whole numpy arrays.

`load_dataset(name, ...)` returns a `ticketjax.types.Dataset` for any name in
`DATASETS` (`mnist1d`, `fashion_mnist`, `mnist_5k`, `mnist`, `cifar10`) or
`TEXT_DATASETS` (`shakespeare`, `austen`, `pydoc`: next-token windows for
language models, `text`). Everything is read through TFDS ArrayRecord data
sources, so neither TensorFlow nor network access is needed: MNIST-1D is
generated offline by the `Mnist1d` builder, Fashion-MNIST, the 5k MNIST and
the text corpora are prepared offline from package files (`image_builders`,
`text_builders`), and the others must be prepared beforehand
(`DataNotPreparedError` says how). `document_text` gives one document of a
text corpus (e.g. Pride and Prejudice) as raw text.
"""
from ticketjax.data.loaders import DataNotPreparedError
from ticketjax.data.loaders import DATASETS
from ticketjax.data.loaders import DatasetSpec
from ticketjax.data.loaders import document_text
from ticketjax.data.loaders import load_dataset
from ticketjax.data.loaders import resolve_data_dir
from ticketjax.data.mnist1d_builder import Mnist1d
from ticketjax.data.text import TEXT_DATASETS

__all__ = [
    'DATASETS',
    'DataNotPreparedError',
    'DatasetSpec',
    'Mnist1d',
    'TEXT_DATASETS',
    'document_text',
    'load_dataset',
    'resolve_data_dir',
]
