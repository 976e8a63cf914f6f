"""The newest step checkpoint of one training phase, kept by orbax.

A phase that saves its whole state after every evaluation chunk resumes
from its newest save and has no use for older ones. Orbax's
`CheckpointManager` does all the bookkeeping: `<directory>/<step>/` per save
(written to a temporary folder and renamed when complete, so a kill leaves
the older step or the newer one, never a part), only the newest kept
(`max_to_keep=1`), temporary folders of a cut save removed when the manager
opens, `latest_step()`, and on several processes one coordinated save
(process 0 writes; the folder must be on storage every host mounts).
Each complete save gets its checksums (`store.seal`); a damaged save found
when the phase opens is reported on stderr and removed, so the phase
recomputes it (training is deterministic: the same bytes).

Nothing here is particular to a method: it may move to `run/store.py`.
"""
import os
import shutil
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ticketjax.core.types import PyTree
from ticketjax.run import hosts
from ticketjax.run import store


class StepCheckpoints:
  """The newest checkpoint of one phase, under `directory/<step>/`."""

  def __init__(self, directory: str):
    self.directory = directory
    self._unsealed = None  # the step of a save whose checksums are due
    for step in os.listdir(directory) if os.path.isdir(directory) else ():
      path = os.path.join(directory, step)
      why = step.isdigit() and store.problem(path)
      if why:
        print(f'{path} is damaged ({why}): recomputing it', file=sys.stderr)
        hosts.on_main(f'removed damaged {path}', shutil.rmtree, path)
    # opening creates the folder: every process opens it at the same point
    # (orbax waits for all of them), after the run folder is locked
    self._manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=1, cleanup_tmp_directories=True, create=True))

  def latest_step(self) -> int | None:
    """The step of the newest complete save, or None."""
    return self._manager.latest_step()

  def save(self, step: int, tree: PyTree) -> None:
    """Saves `tree` as `step` and drops the older save once it is complete.

    The save finishes in the background (`wait`); the tree is copied to
    host memory first, so the caller may reuse its device buffers.
    """
    tree = jax.tree.map(np.array, tree)
    self._seal()
    self._manager.save(step, args=ocp.args.StandardSave(tree))
    self._unsealed = step

  def _seal(self) -> None:
    """Waits for the last save and writes its checksums."""
    if self._unsealed is not None:
      self._manager.wait_until_finished()
      store.seal(os.path.join(self.directory, str(self._unsealed)))
      self._unsealed = None

  def restore(self, step: int, like: PyTree) -> Any:
    """The save of `step` in the structure, shapes and dtypes of `like`."""
    store.check(os.path.join(self.directory, str(step)))
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), like)
    return self._manager.restore(step,
                                 args=ocp.args.StandardRestore(abstract))

  def wait(self) -> None:
    """Blocks until every save started is complete on disk (and sealed)."""
    self._manager.wait_until_finished()
    self._seal()

  def close(self) -> None:
    """Waits for the saves, then releases the manager's threads."""
    self._seal()
    self._manager.close()
