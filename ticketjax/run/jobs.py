"""The driver: `run(config, workdir)` is the one entry point with I/O.

The launcher, the Colab notebook, the sweep and the tests all call `run`.
It looks up the method named by `config.job` in the registry
(`ticketjax.methods.registry`) and runs it in the process's workdir.
"""
from typing import Any

from ticketjax.methods import registry
from ticketjax.run import lock


def check_overrides(config: Any, paths) -> None:
  """ValueError for an override (a dotted config path, as the launcher's
  `--config.train.steps=5` gives `train.steps`) of a field the job never
  reads (its method's `IGNORED`): it would change nothing but the run
  folder's name, whose hash covers every field."""
  ignored = getattr(registry.get(config.job), 'IGNORED', ())
  bad = sorted(p for p in paths
               if any(p == i or p.startswith(i + '.') for i in ignored))
  if bad:
    raise ValueError(
        f"the {config.job!r} job never reads "
        f"{', '.join('--config.' + p for p in bad)} (it reads none of "
        f"{', '.join(ignored)}): drop the override")


def run(config: Any, workdir: str) -> dict:
  """Runs the job `config.job` in `workdir`; returns its summary."""
  method = registry.get(config.job)
  try:
    return method.run(config, workdir)
  finally:
    lock.release_all()  # the run folders' locks (`Run.lock`)
