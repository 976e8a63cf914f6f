"""The dense job: `num_seeds` seeds of the unpruned network in one program.

It trains every seed in one compiled program, writes one record per
evaluation and seed, and prints the test accuracy per seed. It is the
baseline every sparse method is read against.
"""
import json
import os
import sys
from typing import Any

import jax

from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import workdir as workdir_lib


def run(config: Any, workdir: str) -> dict:
  """Dense training of `num_seeds` seeds; returns the summary dict."""
  pieces = setup_lib.build(config)
  run_dir = workdir_lib.run_dir(workdir, config)
  summary_path = os.path.join(run_dir, 'summary.json')
  if os.path.exists(summary_path):
    with open(summary_path, encoding='utf-8') as f:
      summary = json.load(f)
    if summary.get('num_seeds', 0) >= pieces.num_seeds:
      print(f'already done: {run_dir}', file=sys.stderr)
      print(table(summary))
      return summary
  os.makedirs(run_dir, exist_ok=True)
  records_lib.write_json(os.path.join(run_dir, 'config.json'),
                         config.to_dict())
  metrics_path = os.path.join(run_dir, 'metrics.jsonl')
  if os.path.exists(metrics_path):  # an unfinished earlier attempt
    os.remove(metrics_path)
  writer = records_lib.JsonlWriter(metrics_path)

  trainer = pieces.trainer
  data = train_lib.to_device(pieces.dataset)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  state_S = trainer.init_states(init_keys, noise_keys)
  last = {}

  def on_eval(step, per_seed):
    writer.write(records_lib.per_seed_records(
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
      summary[name] = stats.mean_std(values)
  records_lib.write_json(summary_path, summary)
  print(table(summary))
  return summary


def table(summary: dict) -> str:
  """The per-seed test accuracy table of a dense run (markdown)."""
  acc, loss = summary['test_accuracy'], summary['test_loss']
  rows = [[seed, f'{a * 100:.2f}', f'{l:.4f}'] for seed, (a, l) in
          enumerate(zip(acc['values'], loss['values']))]
  rows.append(['mean ± std', stats.format_mean_std(acc, digits=2),
               f"{loss['mean']:.4f} ± {loss['std']:.4f}"])
  title = (f"Dense {summary['model']} on {summary['dataset']}, "
           f"{summary['steps']} steps, {summary['num_seeds']} seeds")
  return title + '\n' + stats.markdown_table(
      ['seed', 'test accuracy (%)', 'test loss'], rows)


def check(config: Any) -> None:
  """The dense job has no section of its own: nothing more to check."""
  del config


def series(summary: dict) -> list[dict]:
  """The cross-run report's points: one at 100% of the weights."""
  members = [{'density': 1.0, 'final_test_accuracy': a}
             for a in summary['test_accuracy']['values']]
  return [{'label': 'dense', 'points': {1.0: members}}]
