"""Orbax behind one small module: named pytree checkpoints in a run folder.

Rewind points and level ends are saved under `<run_dir>/checkpoints/<name>`
(`rewind_step0`, `level_003`, ...). Orbax writes each checkpoint to a
temporary folder and renames it when complete, so a process killed in the
middle of a save leaves either the whole checkpoint or none: `exists(name)`
is the test of a finished save. This is the only module that imports
orbax, so a move to Orbax's v1 API touches one file.

Integrity. Once a save is complete, `SUMS` (`ticketjax.sha256` inside the
checkpoint folder) lists the sha256 of every file in it. `problem(name)`
names what is wrong with a checkpoint on disk: a listed file missing,
emptied, truncated or changed (a bit flip), or the list itself damaged. A
stage's checkpoint that a job can recompute is tested with `usable(name)`:
a damaged one is reported on stderr and recomputed (training is
deterministic, so the run ends with the same bytes as one never damaged).
`restore` refuses a damaged checkpoint with one ValueError naming the file,
and refuses one whose arrays have other shapes or dtypes than the
template (orbax itself would pad or cut them silently). A checkpoint
saved before checksums existed (no `SUMS`) is restored unchecked.
"""
import hashlib
import json
import os
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ticketjax.core.types import PyTree
from ticketjax.run import hosts
from ticketjax.run import records as records_lib

_CHECKPOINTER = None
SUMS = 'ticketjax.sha256'


def _file_sums(folder: str) -> dict:
  """{path relative to `folder`: sha256} of every file in it but `SUMS`."""
  sums = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, folder)
      if rel != SUMS:
        with open(path, 'rb') as f:
          sums[rel] = hashlib.sha256(f.read()).hexdigest()
  return sums


def seal(folder: str) -> None:
  """Writes `folder/SUMS` for a complete checkpoint folder (process 0)."""
  records_lib.write_json(os.path.join(folder, SUMS),
                         _file_sums(folder) if hosts.is_main() else {})


def _leaves(tree) -> dict:
  """{path as a tuple of names: leaf}; dicts and NamedTuples alike."""
  flat = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  name = lambda k: str(getattr(k, 'key', getattr(k, 'name',
                                                 getattr(k, 'idx', k))))
  return {tuple(name(k) for k in path): leaf for path, leaf in flat}


def problem(folder: str) -> str | None:
  """What is wrong with the checkpoint in `folder`, or None if it is whole
  (or was saved before checksums, with no `SUMS`)."""
  if not os.path.isdir(folder):
    return 'it is missing'
  path = os.path.join(folder, SUMS)
  if not os.path.exists(path):
    if not any(files for _, _, files in os.walk(folder)):
      return 'it is empty'
    return None
  try:
    with open(path, encoding='utf-8') as f:
      want = json.load(f)
  except ValueError:
    return f'its checksum list {SUMS} is damaged'
  have = _file_sums(folder)
  for rel, digest in sorted(want.items()):
    if rel not in have:
      return f'its file {rel} is missing'
    if have[rel] != digest:
      return (f'its file {rel} is not what was saved (emptied, truncated '
              'or changed: its sha256 differs)')
  return None


def _checkpointer() -> ocp.StandardCheckpointer:
  global _CHECKPOINTER
  if _CHECKPOINTER is None:
    _CHECKPOINTER = ocp.StandardCheckpointer()
  return _CHECKPOINTER


def check(folder: str) -> None:
  """ValueError naming the checkpoint `folder` if it is missing or damaged."""
  why = problem(folder)
  if why is not None:
    raise ValueError(
        f'checkpoint {folder} cannot be used: {why}. It cannot be recomputed '
        'from what is left of this run: delete the run folder (or this '
        'checkpoint and every later one) to recompute it')


class Checkpoints:
  """Named checkpoints under `<run_dir>/checkpoints/`."""

  def __init__(self, run_dir: str):
    # with several processes all save and restore together (orbax's
    # multi-host mode; shared storage)
    self.root = os.path.join(os.path.abspath(run_dir), 'checkpoints')

  def path(self, name: str) -> str:
    return os.path.join(self.root, name)

  def exists(self, name: str) -> bool:
    """True when a *complete* checkpoint `name` is on disk."""
    # Orbax saves into '<name>.orbax-checkpoint-tmp-*' and renames it to
    # '<name>' only when the save is complete.
    return os.path.isdir(self.path(name))

  def usable(self, name: str) -> bool:
    """`exists`, for a checkpoint the caller recomputes when it is not: a
    damaged one is reported on stderr and is not usable (the recomputed
    save replaces it)."""
    if not self.exists(name):
      return False
    why = problem(self.path(name))
    if why is not None:
      print(f'{self.path(name)} is damaged ({why}): recomputing it',
            file=sys.stderr)
    return why is None

  def check(self, name: str) -> None:
    """ValueError naming checkpoint `name` if it is missing or damaged."""
    check(self.path(name))

  def save(self, name: str, tree: PyTree) -> None:
    """Saves `tree` (arrays of any dtype) as `name`; blocks until durable,
    then writes its checksums."""
    os.makedirs(self.root, exist_ok=True)
    tree = jax.tree.map(np.asarray, tree)
    ckpt = _checkpointer()
    ckpt.save(self.path(name), tree, force=True)
    ckpt.wait_until_finished()
    seal(self.path(name))

  def restore(self, name: str, like: PyTree) -> Any:
    """Restores `name` into the structure, shapes and dtypes of `like`;
    ValueError if it is damaged or holds other shapes or dtypes."""
    self.check(name)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), np.result_type(x)), like)
    saved = _leaves(
        _checkpointer().metadata(self.path(name)).item_metadata.tree)
    for path, want in _leaves(abstract).items():
      have = saved.get(path)
      if have is not None and (tuple(have.shape) != tuple(want.shape) or (
          np.dtype(have.dtype) != np.dtype(want.dtype))):
        raise ValueError(
            f"checkpoint {self.path(name)} holds {'/'.join(path)} as "
            f'{np.dtype(have.dtype)}{list(have.shape)}, but this run needs '
            f'{np.dtype(want.dtype)}{list(want.shape)}: it was saved by '
            'another model or seed count; use a new workdir')
    return _checkpointer().restore(self.path(name), abstract)

  def leading_size(self, name: str) -> int:
    """Length of the leading (member) axis of `name`'s arrays, read from
    its metadata without loading them."""
    tree = _checkpointer().metadata(self.path(name)).item_metadata.tree
    leaves = jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, 'shape'))
    return int(leaves[0].shape[0])

  def restore_raw(self, name: str) -> Any:
    """Restores `name` as saved, without a template: nested dicts of numpy
    arrays (NamedTuples come back as dicts of their fields)."""
    self.check(name)
    return _checkpointer().restore(self.path(name))
