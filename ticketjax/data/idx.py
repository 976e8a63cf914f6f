"""Reading the IDX files MNIST and Fashion-MNIST are distributed as.

An IDX file (LeCun's format) is a big-endian header, `0x00 0x00`, a type
byte (0x08: unsigned byte), the number of dimensions, one uint32 size per
dimension, then the data in C order. The files may be gzipped (`.gz`).
Every way a file can be wrong (missing, not IDX, another type, truncated,
trailing bytes) is one ValueError naming the file.
"""
import gzip
import os

import numpy as np

_UBYTE = 0x08


def read(path: str) -> np.ndarray:
  """The uint8 array stored in the IDX file `path` (gzipped or not)."""
  if not os.path.isfile(path):
    raise ValueError(f'no IDX file {path}')
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:  # a cut or damaged gzip stream
    raise ValueError(f'{path} is damaged ({e}); download it again') from None
  if len(data) < 4 or data[:2] != b'\0\0':
    raise ValueError(f'{path} is not an IDX file (no IDX header)')
  if data[2] != _UBYTE:
    raise ValueError(f'{path} holds IDX type 0x{data[2]:02x}; expected '
                     'unsigned bytes (0x08)')
  ndim = data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f'{path} is truncated (its header is cut)')
  shape = tuple(int(d) for d in np.frombuffer(data[4:header], '>u4'))
  size = int(np.prod(shape))
  if len(data) != header + size:
    what = ('truncated' if len(data) < header + size
            else 'longer than its header says')
    raise ValueError(f'{path} is {what}: the header says {shape} = {size} '
                     f'bytes, the file holds {len(data) - header}')
  return np.frombuffer(data, np.uint8, size, header).reshape(shape)


def read_split(images_path: str, labels_path: str,
               num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """(images [N, H, W] uint8, labels [N] uint8) of one split; ValueError if
  the two files do not belong together."""
  images, labels = read(images_path), read(labels_path)
  if images.ndim != 3:
    raise ValueError(f'{images_path} holds an array of shape {images.shape}; '
                     'expected images [N, height, width]')
  if labels.ndim != 1:
    raise ValueError(f'{labels_path} holds an array of shape {labels.shape}; '
                     'expected labels [N]')
  if len(images) != len(labels):
    raise ValueError(f'{labels_path} has {len(labels)} labels but '
                     f'{images_path} has {len(images)} images: the files do '
                     'not belong together')
  if labels.size and labels.max() >= num_classes:
    raise ValueError(f'{labels_path} holds label {labels.max()}; expected '
                     f'0..{num_classes - 1}')
  return images, labels
