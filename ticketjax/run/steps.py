"""Saves inside a training stage: the newest step checkpoint, by orbax.

A stage that saves its whole state inside itself resumes from its newest
save and has no use for older ones. Orbax's `CheckpointManager` does all
the bookkeeping: `<directory>/<step>/` per save (written to a temporary
folder and renamed when complete, so a kill leaves the older step or the
newer one, never a part), only the newest kept (`max_to_keep=1`),
temporary folders of a cut save removed when the manager opens,
`latest_step()`, and on several processes one coordinated save (process 0
writes; the folder must be on storage every host mounts).
Each complete save gets its checksums (`store.seal`); a damaged save found
when the stage opens is reported on stderr and removed, so the stage
recomputes it (training is deterministic: the same bytes).

`StepCheckpoints` keeps a stage's newest save. `MidStage`, on top of it,
saves inside `Run.train_stage` (so the dense job, Edge-Popup's phases and
every retraining), IMP's levels, CS's search rounds, LMC's copies and
Early-Bird's searches every `train.checkpoint_every_s` seconds, with the
stage's records so far. (LMC's parent trajectory saves at its rewind
steps.)
"""
import os
import shutil
import sys
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ticketjax.core.types import PyTree
from ticketjax.run import hosts
from ticketjax.run import store


class StepCheckpoints:
  """The newest checkpoint of one stage, under `directory/<step>/`."""

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
    try:
      self._seal()
    finally:
      self._manager.close()


class MidStage:
  """Saves inside one stage of a run folder, so a killed stage resumes
  where it was instead of from its start.

  At the end of an evaluation chunk before the last, once `every_s`
  seconds have passed since the stage began or last saved (0: every
  chunk; process 0's clock decides for all processes), the stage's records
  so far go to `records/<name>.partial.json` (non-finite values kept
  exactly) and then its members' state to `checkpoints/<name>.steps/<step>/`
  (`StepCheckpoints`, the newest only). `start` resumes from the newest
  save with the records up to its step (and says so on stderr: `resuming
  <stage> from its save at step N`); training being deterministic, the
  stage ends with the bytes of a stage never killed. `end` removes both
  once the stage's own records and checkpoint are written; leaving a
  `with` block closes it (`close`). Saves without intact records are
  dropped (the stage starts over).
  """

  def __init__(self, folder, name: str, every_s: float):
    self.folder, self.name, self.every_s = folder, name, float(every_s)
    self.partial = f'{name}.partial'
    self.directory = folder.store.path(f'{name}.steps')
    self.saves = None  # opened at the first save, or to resume
    if os.path.isdir(self.directory):
      if folder.has_records(self.partial):
        self.saves = StepCheckpoints(self.directory)
      else:
        hosts.on_main(f'dropped {self.directory}', shutil.rmtree,
                      self.directory, True)
    self._saved_at = time.monotonic()

  def step(self) -> int | None:
    """The step of the newest save, or None."""
    return self.saves.latest_step() if self.saves is not None else None

  def start(self, start_M) -> tuple[Any, Any]:
    """The state to train from and the stage's records up to it: the
    newest save's (`start_M` gives the structure), else `start_M` and
    none. Records are a list, or a dict of lists (as saved)."""
    step = self.step()
    if step is None:
      return start_M, []
    if hosts.is_main():
      print(f'resuming {self.name} from its save at step {step}',
            file=sys.stderr)
    saved = self.folder.read_records(self.partial, exact=True)
    upto = lambda recs: [r for r in recs if r['step'] <= step]
    return self.saves.restore(step, start_M), (
        {k: upto(v) for k, v in saved.items()} if isinstance(saved, dict)
        else upto(saved))

  def __enter__(self) -> 'MidStage':
    return self

  def __exit__(self, *exc) -> None:
    self.close()  # orbax's threads, also when training fails

  def on_chunk(self, evals: list[dict], total: int):
    """`loop.train_chunks`'s `on_chunk`: `save` with the stage's records
    (the list the stage extends) and its last step."""
    return lambda step, state_M: self.save(step, state_M, evals, total)

  def save(self, step: int, state_M, evals, total: int) -> None:
    """After the chunk ending at `step`: records (a list of them with a
    'step' each, or a dict of such lists), then state (or `state_M()`,
    taken only when a save is due), if due."""
    due = step < total and (
        time.monotonic() - self._saved_at >= self.every_s)
    if not hosts.agree(due):
      return
    self.folder.write_records(self.partial, evals, exact=True)
    if self.saves is None:
      self.saves = StepCheckpoints(self.directory)
    self.saves.save(step, state_M() if callable(state_M) else state_M)
    self._saved_at = time.monotonic()

  def wait(self) -> None:
    """Blocks until the last save is complete (before another save)."""
    if self.saves is not None:
      self.saves.wait()

  def close(self) -> None:
    """Waits for the last save and releases orbax's threads."""
    saves, self.saves = self.saves, None
    if saves is not None:
      saves.close()

  def end(self) -> None:
    """Removes the saves and their records (the stage is complete)."""
    self.close()
    hosts.on_main(f'removed {self.directory}', self._remove)

  def _remove(self) -> None:
    remove(self.directory, self.folder.records_path(self.partial))


def remove(*paths: str) -> None:
  """Deletes these folders and files where they exist."""
  for path in paths:
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
      os.remove(path)


def leftovers(folder) -> list[str]:
  """Saves inside stages and their records left in a finished run folder
  (a run killed between a stage's checkpoint and their removal)."""
  out = []
  for where, end in ((folder.store.root, '.steps'),
                     (folder.path('records'), '.partial.json')):
    if os.path.isdir(where):
      out += [os.path.join(where, n) for n in sorted(os.listdir(where))
              if n.endswith(end)]
  return out
