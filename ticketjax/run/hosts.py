"""Several hosts (JAX processes) running one search.

On a multi-host TPU slice or a GPU cluster the same launch command runs on
every host, with `--num_processes` (and, off TPU, `--coordinator_address`
and `--process_id`); `initialize` calls `jax.distributed.initialize`. Every
process then runs the same driver:

  * the compiled training and evaluation programs span the devices of all
    processes (`ticketjax.core.sharding`: the member axis over a mesh of
    `jax.devices()`), and their results are gathered to every process, so
    every process holds every member's numbers and makes the same
    decisions (levels done, densities, resume);
  * process 0 alone writes the run files (`records.write_atomic` skips
    the write elsewhere) and holds the folder's lock; every process waits
    at a barrier after each write, then reads the same files, so all make
    the same decisions (levels done, resume). Orbax checkpoints are saved
    and restored by all processes together (orbax's multi-host mode;
    process 0 writes them). The workdir must be a file system every host
    mounts (NFS; the run files are written with plain `open`, so not
    `gs://`).

Growing an IMP run to more seeds swaps checkpoints by renames: process 0
changes the shared folder and all processes wait for it (`barrier`).
Step saves (`run/steps.py`: Edge-Popup's, and those inside a stage) go
through orbax's CheckpointManager, which coordinates the processes itself;
whether a stage saves now is process 0's decision (`agree`). The IMP
search, its growth to more seeds and an Edge-Popup run are tested on two
processes (`tests/sharding_test.py`).

On CPU (tests, or hosts without accelerators) the processes talk through
gloo. With one process nothing here changes anything.
"""
from typing import Optional

import jax
from jax.experimental import multihost_utils
import numpy as np


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
  """`jax.distributed.initialize` with CPU collectives enabled.

  Must run before anything touches a JAX device. On TPU VMs all three
  arguments may be left out (JAX finds them).
  """
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def is_main() -> bool:
  """True on process 0, the one that changes shared folders."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Every process waits here until all reach the same `name` (no-op with
  one process)."""
  if is_multiprocess():
    multihost_utils.sync_global_devices(name)


def agree(flag: bool) -> bool:
  """Process 0's `flag` on every process (a decision taken by a clock,
  which the processes do not share); `flag` itself with one process."""
  if not is_multiprocess():
    return bool(flag)
  return bool(multihost_utils.broadcast_one_to_all(np.int32(bool(flag))))


def on_main(name: str, fn, *args) -> None:
  """`fn(*args)` on process 0 (a change to a shared folder); every process
  returns once it is done (`barrier(name)`)."""
  if is_main():
    fn(*args)
  barrier(name)
