"""Sweeps: several jobs from one sweep file, one after another, one report.

Axes that change shapes or code (model, data set, search kind) cannot
share a compiled program, so a sweep runs them as separate jobs: a sweep
file's `get_sweep(arg)` returns a list of configs, `run_sweep` checks every
one of them (job name, pieces, the job's own section) before the first
starts, runs them in order through `experiment.run` (each in its own
content-addressed folder, so a killed sweep rerun skips the finished jobs
and resumes the unfinished one), and writes one cross-run report
(`runs_report.write`) over the workdir. With several JAX processes
(`ticketjax.hosts`) every job spans them all, and each process writes
the report from its own copy of the runs (process 0 into the workdir).
"""
import os
import sys
from typing import Any, Sequence

from ticketjax import experiment
from ticketjax import hosts
from ticketjax import pieces as pieces_lib
from ticketjax import runs_report

# The job-specific section parsers (each raises ValueError on bad input).
def _section_check(config) -> None:
  job = config.job
  if job == 'imp':
    from ticketjax import imp_run  # pylint: disable=g-import-not-at-top
    imp_run.imp_config(config)
  elif job == 'cs':
    from ticketjax import cs_run  # pylint: disable=g-import-not-at-top
    cs_run.cs_config(config)
  elif job == 'edgepopup':
    from ticketjax import edgepopup_run  # pylint: disable=g-import-not-at-top
    edgepopup_run.edgepopup_config(config)
  elif job == 'lmc':
    from ticketjax import lmc_run  # pylint: disable=g-import-not-at-top
    lmc_run.lmc_config(config).validate(int(config.train.steps))


def check(configs: Sequence[Any]) -> None:
  """Raises ValueError naming the first bad entry; runs nothing."""
  if not configs:
    raise ValueError('the sweep has no jobs')
  for i, config in enumerate(configs):
    try:
      if config.job not in experiment.JOBS:
        raise ValueError(f'unknown job {config.job!r}; valid jobs are '
                         f'{sorted(experiment.JOBS)}')
      pieces_lib.build(config)
      _section_check(config)
    except ValueError as e:
      raise ValueError(f'sweep entry {i} ({config.job}): {e}') from e


def run_sweep(configs: Sequence[Any], workdir: str,
              report_dir: str | None = None) -> list[dict]:
  """Checks all configs, runs them in order, writes the aggregate report."""
  check(configs)
  summaries = []
  for i, config in enumerate(configs):
    print(f'sweep: job {i + 1}/{len(configs)} ({config.job})',
          file=sys.stderr)
    summaries.append(experiment.run(config, workdir))
  # several processes: each reports from its copy of the runs into its own
  # folder (process 0: the workdir), restoring checkpoints together
  mine = hosts.process_workdir(workdir)
  out = (hosts.process_workdir(report_dir) if report_dir
         else os.path.join(mine, 'report'))
  runs_report.write([mine], out)
  print(f'sweep report: {os.path.join(out, "report.md")}', file=sys.stderr)
  return summaries
