"""Records on disk: JSON lines per record and member, atomic JSON summaries.

`metrics.jsonl` holds one JSON object per record and seed (keys are listed
in WORKSPACE.md); `summary.json` holds the aggregates. Values are plain
Python numbers, so any tool reads them without ticketjax.
"""
import hashlib
import json
import math
import os
import sys
from typing import Iterable, Mapping, Sequence

import numpy as np

from ticketjax.run import hosts


# non-finite floats in files read back exactly (`exact=True`)
NON_FINITE = {'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf}


def to_python(value, exact: bool = False):
  """numpy/jax scalars and arrays -> Python numbers and lists (for JSON).

  Non-finite floats become None: every file ticketjax writes is strict
  JSON (no NaN or Infinity literals, which other readers reject). With
  `exact` they become the strings 'NaN', 'Infinity' and '-Infinity'
  instead, which `from_exact` turns back into the same floats (records a
  resumed stage computes on from).
  """
  if isinstance(value, Mapping):
    return {str(k): to_python(v, exact) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_python(v, exact) for v in value]
  if hasattr(value, 'tolist'):
    return to_python(np.asarray(value).tolist(), exact)
  if isinstance(value, float) and not math.isfinite(value):
    return (('NaN' if math.isnan(value) else
             'Infinity' if value > 0 else '-Infinity') if exact else None)
  return value


def from_exact(value):
  """The inverse of `to_python(..., exact=True)`: the strings of
  non-finite floats back to floats."""
  if isinstance(value, dict):
    return {k: from_exact(v) for k, v in value.items()}
  if isinstance(value, list):
    return [from_exact(v) for v in value]
  return NON_FINITE.get(value, value) if isinstance(value, str) else value


def member_records(who: Sequence[Mapping], per_member: Mapping,
                   **base) -> list[dict]:
  """One record per member: `base`, who member i is (`who[i]`) and its
  values of the {name: [M]} arrays `per_member`, as Python floats."""
  arrays = {k: np.asarray(v) for k, v in per_member.items()}
  return [{**base, **w, **{k: float(v[i]) for k, v in arrays.items()}}
          for i, w in enumerate(who)]


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSON-lines file ([] if there is none); ValueError
  naming the file if it is damaged."""
  if not os.path.exists(path):
    return []
  with open(path, encoding='utf-8') as f:
    text = f.read()
  try:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
  except json.JSONDecodeError as e:
    raise ValueError(f'{path} is damaged (not valid JSON lines: {e}); '
                     'delete it to recompute it, or use a new workdir'
                     ) from None


def intact(path: str) -> bool:
  """Whether `path` exists and reads as JSON (JSON lines for `.jsonl`).

  A damaged file is reported on stderr as being recomputed: call this for
  files the caller recomputes when they are not intact.
  """
  if not os.path.exists(path):
    return False
  try:
    (read_jsonl if path.endswith('.jsonl') else read_json)(path)
  except ValueError as e:
    print(f'{str(e).split("; delete")[0]}: recomputing it', file=sys.stderr)
    return False
  return True


def _sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()  # (streamed)


def content_sum(path: str) -> str:
  """sha256 of a file's bytes, or of a folder's files (their names and
  bytes, in name order, subfolders included; hidden ones, such as caches
  and checkpoints of editors, left out)."""
  if not os.path.isdir(path):
    return _sha256(path)
  digest = hashlib.sha256()
  for root, dirs, files in os.walk(path):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for name in sorted(f for f in files if not f.startswith('.')):
      full = os.path.join(root, name)
      digest.update(os.path.relpath(full, path).encode() + b'\0')
      digest.update(_sha256(full).encode())
  return digest.hexdigest()


def seal(folder: str, names: Sequence[str], sums: str) -> None:
  """Writes `folder/sums`: the sha256 of each file `names` in `folder`
  (no names: unsealed, while they are being written)."""
  write_json(os.path.join(folder, sums),
             {name: _sha256(os.path.join(folder, name)) for name in names})


def sealed(folder: str, names: Sequence[str], sums: str) -> bool:
  """Whether the files `names` in `folder` are there, parse (`intact`) and
  have the sha256 sums `seal` wrote: a file emptied or cut at a line end
  still parses. A damaged one is reported on stderr as being recomputed;
  unsealed ones (a mid-run or cut write) are not sealed, silently; without
  `sums` (a folder from before them) parsing suffices."""
  if not all(intact(os.path.join(folder, name)) for name in names):
    return False
  path = os.path.join(folder, sums)
  if not os.path.exists(path):
    return True
  if not intact(path):
    return False
  want = read_json(path)
  if set(want) != set(names):
    return False
  for name in names:
    if _sha256(os.path.join(folder, name)) != want[name]:
      print(f'{os.path.join(folder, name)} is damaged (its sha256 differs '
            'from the one written with it): recomputing it', file=sys.stderr)
      return False
  return True


def write_atomic(path: str, write) -> None:
  """`write(tmp_path)`, then a rename onto `path`: readers and a rerun after
  a kill see the old file or the whole new one, never a part.

  With several processes only process 0 writes, and every process waits
  until it has (`hosts`): all then read the same file.
  """
  if hosts.is_main():
    root, ext = os.path.splitext(path)
    tmp = f'{root}.tmp{ext}'  # keeps the extension (matplotlib reads it)
    write(tmp)
    os.replace(tmp, path)
  hosts.barrier(f'wrote {path}')


def write_text(path: str, text: str) -> None:
  """Writes `text` atomically."""
  def write(tmp):
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
  write_atomic(path, write)


def write_json(path: str, obj, exact: bool = False) -> None:
  """Writes strict JSON atomically (temp file + rename); `exact`: see
  `to_python`."""
  write_text(path, json.dumps(to_python(obj, exact), indent=2,
                              sort_keys=True, allow_nan=False) + '\n')


def write_jsonl(path: str, lines: Iterable[Mapping]) -> None:
  """Writes one JSON object per line (sorted keys), atomically."""
  write_text(path, ''.join(
      json.dumps(to_python(rec), sort_keys=True, allow_nan=False) + '\n'
      for rec in lines))


def read_json(path: str):
  """The JSON in `path`; ValueError naming the file if it is damaged."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'{path} is damaged (not valid JSON: {e}); delete it '
                     'to recompute it, or use a new workdir') from None
