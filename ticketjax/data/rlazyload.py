"""Reads character vectors from an R lazy-load database, without R.

An installed R package keeps its data sets in a lazy-load database: `NAME.rdx`
is a gzip-compressed serialized R list whose `variables` entry maps each
object's name to `(offset, length)` in `NAME.rdb`, and each such slice of
`NAME.rdb` is 4 bytes of big-endian uncompressed length, then (when the
index's `compressed` entry is TRUE) a zlib stream. Both hold R's binary
serialization format ('X', XDR big-endian, versions 2 and 3), documented in
R's `src/main/serialize.c`.

This reader understands the part of that format that plain data needs:
NULL, symbols, pairlists (attributes), character, logical, integer, double
and generic vectors, and back-references. Anything else (closures,
environments, ALTREP objects...) is one ValueError naming its type code.
Character vectors come back as `list[str | None]` (`None` for NA), numeric
ones as numpy arrays, lists as Python lists; attributes are dropped, except
`names` of a list, which makes it a dict.
"""
import gzip
import os
import struct
import zlib
from typing import Any

import numpy as np

# SEXP type codes (serialize.c).
_NILSXP, _SYMSXP, _LISTSXP = 0, 1, 2
_CHARSXP, _LGLSXP, _INTSXP, _REALSXP = 9, 10, 13, 14
_STRSXP, _VECSXP = 16, 19
_REFSXP, _NILVALUE_SXP = 255, 254
_IS_OBJECT, _HAS_ATTR, _HAS_TAG = 1 << 8, 1 << 9, 1 << 10
_LATIN1, _UTF8, _ASCII = 1 << 2, 1 << 3, 1 << 6  # CHARSXP levels bits
_NUMERIC = {_LGLSXP: '>i4', _INTSXP: '>i4', _REALSXP: '>f8'}


class _Reader:
  """Walks one XDR serialization stream."""

  def __init__(self, data: bytes, where: str):
    self._data = data
    self._pos = 0
    self._where = where
    self._refs: list[Any] = []

  def _take(self, n: int) -> bytes:
    if self._pos + n > len(self._data):
      raise ValueError(f'{self._where}: R data ends early (wanted {n} bytes '
                       f'at byte {self._pos} of {len(self._data)})')
    out = self._data[self._pos:self._pos + n]
    self._pos += n
    return out

  def _int(self) -> int:
    return struct.unpack('>i', self._take(4))[0]

  def _length(self) -> int:
    n = self._int()
    if n == -1:  # long vector: two more words
      upper, lower = self._int(), self._int()
      n = (upper << 32) + (lower & 0xFFFFFFFF)
    return n

  def header(self) -> None:
    """Checks the format ('X\\n', XDR) and skips the version words."""
    if self._take(2) != b'X\n':
      raise ValueError(f'{self._where}: not R data in XDR format')
    version = self._int()
    self._int()  # R version that wrote it
    self._int()  # oldest R version that can read it
    if version == 3:
      self._take(self._int())  # native encoding name
    elif version != 2:
      raise ValueError(f'{self._where}: R serialization version {version}')

  def item(self) -> Any:
    """Reads one serialized object."""
    flags = self._int()
    kind = flags & 0xFF
    if kind == _NILVALUE_SXP:
      return None
    if kind == _REFSXP:
      index = flags >> 8 or self._int()
      return self._refs[index - 1]
    if kind == _SYMSXP:
      name = self.item()
      self._refs.append(name)
      return name
    if kind == _LISTSXP:
      return self._pairlist(flags)
    if kind == _CHARSXP:
      return self._chars(flags)
    if kind in _NUMERIC:
      n = self._length()
      value = np.frombuffer(self._take(n * int(_NUMERIC[kind][-1])),
                            dtype=_NUMERIC[kind]).astype(_NUMERIC[kind][1:])
    elif kind == _STRSXP:
      value = [self.item() for _ in range(self._length())]
    elif kind == _VECSXP:
      value = [self.item() for _ in range(self._length())]
    else:
      raise ValueError(f'{self._where}: R object of type code {kind} is not '
                       'supported (only plain data vectors and lists)')
    if flags & _HAS_ATTR:
      names = self._pairlist_dict(self.item()).get('names')
      if kind == _VECSXP and names is not None:
        value = dict(zip(names, value))
    return value

  def _chars(self, flags: int) -> str | None:
    n = self._int()
    if n == -1:
      return None  # NA_character_
    raw = self._take(n)
    levels = flags >> 12
    return raw.decode('latin-1' if levels & _LATIN1 else 'utf-8')

  def _pairlist(self, flags: int) -> list[tuple[Any, Any]]:
    """A pairlist as [(tag, value)], read iteratively along the CDRs."""
    out = []
    while True:
      if flags & _HAS_ATTR:
        self.item()  # a pairlist's own attributes: not needed
      tag = self.item() if flags & _HAS_TAG else None
      out.append((tag, self.item()))
      flags = self._int()
      if flags & 0xFF == _NILVALUE_SXP:
        return out
      if flags & 0xFF != _LISTSXP:
        raise ValueError(f'{self._where}: malformed pairlist')

  @staticmethod
  def _pairlist_dict(pairs) -> dict[Any, Any]:
    return dict(pairs or [])


def _deserialize(data: bytes, where: str) -> Any:
  reader = _Reader(data, where)
  reader.header()
  return reader.item()


def read_lazyload(folder: str, base: str = 'Rdata') -> dict[str, Any]:
  """Reads every object of the lazy-load database `folder/base.{rdx,rdb}`.

  Args:
    folder: the folder holding the two files (an R package's `data/`).
    base: their common name.

  Returns:
    `{object name: value}` in the index's order.

  Raises:
    ValueError: a file is missing, damaged, or holds an unsupported object.
  """
  rdx, rdb = (os.path.join(folder, f'{base}.{ext}') for ext in ('rdx', 'rdb'))
  for path in (rdx, rdb):
    if not os.path.isfile(path):
      raise ValueError(f'no file {path}')
  try:
    with gzip.open(rdx, 'rb') as f:
      index = _deserialize(f.read(), rdx)
    with open(rdb, 'rb') as f:
      db = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise ValueError(f'cannot read {rdx}: {e}') from None
  if not isinstance(index, dict) or not isinstance(
      index.get('variables'), dict):
    raise ValueError(f'{rdx} is not a lazy-load index (no variables)')
  compressed = index.get('compressed')
  if compressed is None or int(np.asarray(compressed).ravel()[0]) != 1:
    raise ValueError(f'{rdx}: only zlib-compressed databases are supported '
                     f'(compressed = {compressed!r})')
  out = {}
  for name, where in index['variables'].items():
    offset, length = (int(v) for v in where)
    chunk = db[offset:offset + length]
    if len(chunk) != length or length < 4:
      raise ValueError(f'{rdb} ends before object {name!r}')
    size = struct.unpack('>I', chunk[:4])[0]
    try:
      data = zlib.decompress(chunk[4:])
    except zlib.error as e:
      raise ValueError(f'{rdb}: object {name!r} is damaged ({e})') from None
    if len(data) != size:
      raise ValueError(f'{rdb}: object {name!r} is {len(data)} bytes, its '
                       f'header says {size}')
    out[name] = _deserialize(data, f'{rdb}[{name}]')
  return out
