"""Sweeps: several jobs from one sweep file, one after another, one report.

Axes that change shapes or code (model, data set, search kind) cannot
share a compiled program, so a sweep runs them as separate jobs: a sweep
file's `get_sweep(arg)` returns a list of configs, `run_sweep` checks every
one of them (job name, the job's own section, pieces, and the section
against the built model: the method's `check_built`) before the first
starts, runs them in order through `jobs.run` (each in its own
content-addressed folder, so a killed sweep rerun skips the finished jobs
and resumes the unfinished one), and writes one cross-run report
(`cross_run.write`) over the workdir. With several JAX processes
(`ticketjax.run.hosts`) every job spans them all and process 0 writes the
run folders and the report.
"""
import os
import sys
from typing import Any, Sequence

from ticketjax.methods import registry
from ticketjax.reports import cross_run
from ticketjax.reports import run_folders
from ticketjax.run import jobs
from ticketjax.run import setup as setup_lib
from ticketjax.run import workdir as workdir_lib

def check(configs: Sequence[Any]) -> None:
  """Raises ValueError naming the first bad entry; runs nothing."""
  if not configs:
    raise ValueError('the sweep has no jobs')
  for i, config in enumerate(configs):
    if not hasattr(config, 'to_dict') or 'job' not in config:
      raise ValueError(f'sweep entry {i + 1} of {len(configs)} is a '
                       f'{type(config).__name__}, not a '
                       'config: get_sweep must return ConfigDicts with a job')
    try:
      method = registry.get(config.job)
      method.check(config)
      if getattr(method, 'BUILDS', True):
        pieces = setup_lib.build(config)
        if hasattr(method, 'check_built'):
          method.check_built(config, pieces)
    except ValueError as e:
      raise ValueError(f'sweep entry {i + 1} of {len(configs)} '
                       f'({config.job}): {e}') from e


def run_sweep(configs: Sequence[Any], workdir: str,
              report_dir: str | None = None) -> list[dict]:
  """Checks all configs, runs them in order, writes the aggregate report."""
  check(configs)
  workdir_lib.check_folder(workdir, 'workdir')
  if report_dir:
    workdir_lib.check_folder(report_dir, 'report folder (--report)')
    run_folders.check_out(report_dir)
  summaries = []
  for i, config in enumerate(configs):
    print(f'sweep: job {i + 1}/{len(configs)} ({config.job})',
          file=sys.stderr)
    summaries.append(jobs.run(config, workdir))
  # several processes: all restore the checkpoints the report reads
  # together; process 0 writes it
  out = report_dir or os.path.join(workdir, 'report')
  cross_run.write([workdir], out)
  print(f'sweep report: {os.path.join(out, "report.md")}', file=sys.stderr)
  return summaries
