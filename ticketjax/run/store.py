"""Orbax behind one small module: named pytree checkpoints in a run folder.

Rewind points and level ends are saved under `<run_dir>/checkpoints/<name>`
(`rewind_step0`, `level_003`, ...). Orbax writes each checkpoint to a
temporary folder and renames it when complete, so a process killed in the
middle of a save leaves either the whole checkpoint or none: `exists(name)`
is the test of a finished save. This is the only module that imports
orbax, so a move to Orbax's v1 API touches one file.
"""
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ticketjax.core.types import PyTree

_CHECKPOINTER = None


def _checkpointer() -> ocp.StandardCheckpointer:
  global _CHECKPOINTER
  if _CHECKPOINTER is None:
    _CHECKPOINTER = ocp.StandardCheckpointer()
  return _CHECKPOINTER


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

  def save(self, name: str, tree: PyTree) -> None:
    """Saves `tree` (arrays of any dtype) as `name`; blocks until durable."""
    os.makedirs(self.root, exist_ok=True)
    tree = jax.tree.map(np.asarray, tree)
    ckpt = _checkpointer()
    ckpt.save(self.path(name), tree, force=True)
    ckpt.wait_until_finished()

  def restore(self, name: str, like: PyTree) -> Any:
    """Restores `name` into the structure, shapes and dtypes of `like`."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), np.result_type(x)), like)
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
    if not self.exists(name):
      raise ValueError(f'no checkpoint {name!r} in {self.root}')
    return _checkpointer().restore(self.path(name))
