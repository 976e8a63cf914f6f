"""The driver: `run(config, workdir)` is the one entry point with I/O.

The launcher, the Colab notebook, the sweep and the tests all call `run`.
It looks up the method named by `config.job` in the registry
(`ticketjax.methods.registry`) and runs it in the process's workdir.
"""
from typing import Any

from ticketjax.methods import registry
from ticketjax.run import lock


def run(config: Any, workdir: str) -> dict:
  """Runs the job `config.job` in `workdir`; returns its summary."""
  method = registry.get(config.job)
  try:
    return method.run(config, workdir)
  finally:
    lock.release_all()  # the run folders' locks (`Run.lock`)
