"""The dense job: `num_seeds` seeds of the unpruned network in one program.

It trains every seed in one compiled program (`Run.train_stage`: records
every evaluation, flags diverged seeds, saves inside the stage every
`train.checkpoint_every_s` seconds, so a killed run resumes where it was),
writes `records/train.json` and `checkpoints/final` (the trained seeds),
and prints the test accuracy per seed. It is the baseline every sparse
method is read against. More seeds rerun it from scratch.
"""
import math
from typing import Any

import jax

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.reports import plots as plots_lib
from ticketjax.run import lifecycle


SEEDS = 'rerun'  # more seeds: train them all again (one short program)
NON_SEMANTIC = ()


def run(config: Any, workdir: str) -> dict:
  """Dense training of `num_seeds` seeds; returns the summary dict."""
  folder = lifecycle.Run(config, workdir)
  pieces = folder.setup

  def train():
    init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
        pieces.seed_keys())
    folder.train_stage(
        'train', pieces.trainer,
        pieces.trainer.init_states(init_keys, noise_keys),
        [{'seed': s} for s in range(pieces.num_seeds)], masks_lib.is_kernel,
        desc=f'dense {pieces.model.name}', checkpoint='final', job='dense')

  return folder.one_stage('dense run', train, lambda records: (
      summarize(folder, records['evals']), records['evals']))


def summarize(folder, lines: list[dict]) -> dict:
  """Mean ± std over the healthy seeds of every test and validation
  metric at the last evaluation; the diverged seeds, if any."""
  pieces = folder.setup
  summary = {
      'job': 'dense',
      'run_dir': folder.dir,
      'model': pieces.model.name,
      'dataset': pieces.dataset.name,
      'steps': pieces.train.steps,
      'num_seeds': pieces.num_seeds,
  }
  diverged = {r['seed'] for r in lines if r.get('diverged')}
  last = [r for r in lines if r['step'] == lines[-1]['step']]
  healthy = [r for r in last if r['seed'] not in diverged]
  for name in sorted(last[0]):
    if name.startswith(('test_', 'val_')):  # (strict JSON: NaN read as null)
      summary[name] = stats.mean_std([math.nan if r[name] is None
                                      else r[name] for r in healthy])
  if diverged:
    summary['diverged_seeds'] = sorted(diverged)
  return summary


def report(summary: dict, lines: list[dict], config=None) -> lifecycle.Report:
  """Title, per-seed table and `curves.png` (test accuracy and loss
  against step)."""
  del config
  return lifecycle.Report(title(summary), table(summary), {
      'curves.png': lambda path: plots_lib.learning_curves(
          {'dense': lines}, path, title(summary))})


def title(summary: dict) -> str:
  return (f"Dense {summary['model']} on {summary['dataset']}, "
          f"{summary['steps']} steps, {stats.seeds(summary['num_seeds'])}")


def table(summary: dict) -> str:
  """The per-seed test accuracy table of a dense run (markdown)."""
  acc, loss = summary['test_accuracy'], summary['test_loss']
  diverged = summary.get('diverged_seeds', [])
  healthy = [s for s in range(summary['num_seeds']) if s not in diverged]
  rows = [[seed, f'{a * 100:.2f}', f'{l:.4f}'] for seed, a, l in
          zip(healthy, acc['values'], loss['values'])]
  rows += [[seed, 'diverged', ''] for seed in diverged]
  rows.append([f'mean ± std (n={acc["n"]}, ddof 0)',
               stats.format_mean_std(acc, digits=2),
               stats.format_mean_std(loss, scale=1, digits=4)])
  note = f', diverged {len(diverged)}/{summary["num_seeds"]}' if diverged \
      else ''
  return title(summary) + note + '\n' + stats.markdown_table(
      ['seed', 'test accuracy (%)', 'test loss'], rows)


def check(config: Any) -> None:
  """The dense job has no section of its own: nothing more to check."""
  del config


def series(summary: dict) -> list[dict]:
  """The cross-run report's points: one at 100% of the weights, drawn as a
  reference line."""
  members = [{'density': 1.0, 'final_test_accuracy': a}
             for a in summary['test_accuracy']['values']]
  return [{'label': 'dense', 'points': {1.0: members}, 'reference': True}]
