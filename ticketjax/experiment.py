"""The driver: `run(config, workdir)` is the one entry point with I/O.

The launcher, the Colab notebook and the tests all call `run`. It picks the
job named by `config.job` from `JOBS`, and every job follows the same
order: validate the whole config and load the data (errors before any
file is written), find the run's content-addressed folder, skip what is
already done, compute, then write records, summary and report.

Jobs:
  dense: trains `num_seeds` seeds of the dense network in one compiled
    program and prints the test accuracy per seed.
  imp: iterative magnitude pruning with rewinding and control branches
    (`ticketjax.imp_run`).
  cs: Continuous Sparsification, a vmapped lambda sweep (`ticketjax.cs_run`).
  edgepopup: Edge-Popup supermasks (`ticketjax.edgepopup_run`).
  lmc: instability analysis over rewind steps (`ticketjax.lmc_run`).
"""
import json
import os
import sys
from typing import Any, Callable

import jax

from ticketjax import hosts
from ticketjax import loop
from ticketjax import metrics as metrics_lib
from ticketjax import pieces as pieces_lib
from ticketjax import train as train_lib
from ticketjax import workdir as workdir_lib


def dense(config: Any, workdir: str) -> dict:
  """Dense training of `num_seeds` seeds; returns the summary dict."""
  pieces = pieces_lib.build(config)
  run_dir = workdir_lib.run_dir(workdir, config)
  summary_path = os.path.join(run_dir, 'summary.json')
  if os.path.exists(summary_path):
    with open(summary_path, encoding='utf-8') as f:
      summary = json.load(f)
    if summary.get('num_seeds', 0) >= pieces.num_seeds:
      print(f'already done: {run_dir}', file=sys.stderr)
      print(dense_table(summary))
      return summary
  os.makedirs(run_dir, exist_ok=True)
  metrics_lib.write_json(os.path.join(run_dir, 'config.json'),
                         config.to_dict())
  metrics_path = os.path.join(run_dir, 'metrics.jsonl')
  if os.path.exists(metrics_path):  # an unfinished earlier attempt
    os.remove(metrics_path)
  writer = metrics_lib.JsonlWriter(metrics_path)

  trainer = pieces.trainer
  data = train_lib.to_device(pieces.dataset)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  state_S = trainer.init_states(init_keys, noise_keys)
  last = {}

  def on_eval(step, per_seed):
    writer.write(metrics_lib.per_seed_records(
        {'job': 'dense', 'step': step}, per_seed, pieces.num_seeds))
    last.update(per_seed)

  loop.train_chunks(trainer, state_S, data, pieces.train.steps,
               pieces.train.eval_every, on_eval=on_eval,
               desc=f'dense {pieces.model.name}',
               show_progress=config.get('progress', True))
  summary = {
      'job': 'dense',
      'run_dir': run_dir,
      'model': pieces.model.name,
      'dataset': pieces.dataset.name,
      'steps': pieces.train.steps,
      'num_seeds': pieces.num_seeds,
  }
  for name, values in last.items():
    if name.startswith(('test_', 'val_')):
      summary[name] = metrics_lib.mean_std(values)
  metrics_lib.write_json(summary_path, summary)
  print(dense_table(summary))
  return summary


def dense_table(summary: dict) -> str:
  """The per-seed test accuracy table of a dense run (markdown)."""
  acc, loss = summary['test_accuracy'], summary['test_loss']
  rows = [[seed, f'{a * 100:.2f}', f'{l:.4f}'] for seed, (a, l) in
          enumerate(zip(acc['values'], loss['values']))]
  rows.append(['mean ± std', metrics_lib.format_mean_std(acc, digits=2),
               f"{loss['mean']:.4f} ± {loss['std']:.4f}"])
  title = (f"Dense {summary['model']} on {summary['dataset']}, "
           f"{summary['steps']} steps, {summary['num_seeds']} seeds")
  return title + '\n' + metrics_lib.markdown_table(
      ['seed', 'test accuracy (%)', 'test loss'], rows)


def imp(config: Any, workdir: str) -> dict:
  """Iterative magnitude pruning with rewinding and controls."""
  from ticketjax import imp_run  # pylint: disable=g-import-not-at-top
  return imp_run.run_imp(config, workdir)


def cs(config: Any, workdir: str) -> dict:
  """Continuous Sparsification: a vmapped lambda sweep, then its tickets."""
  from ticketjax import cs_run  # pylint: disable=g-import-not-at-top
  return cs_run.run_cs(config, workdir)


def edgepopup(config: Any, workdir: str) -> dict:
  """Edge-Popup supermasks of frozen random networks, over k and seeds."""
  from ticketjax import edgepopup_run  # pylint: disable=g-import-not-at-top
  return edgepopup_run.run_edgepopup(config, workdir)


def lmc(config: Any, workdir: str) -> dict:
  """Instability analysis: copies from rewind points, pairwise barriers."""
  from ticketjax import lmc_run  # pylint: disable=g-import-not-at-top
  return lmc_run.run_lmc(config, workdir)


JOBS: dict[str, Callable[[Any, str], dict]] = {
    'dense': dense,
    'imp': imp,
    'edgepopup': edgepopup,
    'cs': cs,
    'lmc': lmc,
}


def run(config: Any, workdir: str) -> dict:
  """Runs the job `config.job` in `workdir`; returns its summary."""
  if config.job not in JOBS:
    raise ValueError(f'unknown job {config.job!r}; valid jobs are '
                     f'{sorted(JOBS)}')
  return JOBS[config.job](config, hosts.process_workdir(workdir))
