"""The dense job: `num_seeds` seeds of the unpruned network in one program.

It trains every seed in one compiled program, writes one record per
evaluation and seed, and prints the test accuracy per seed. It is the
baseline every sparse method is read against.
"""
from typing import Any

import jax

from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import loop
from ticketjax.run import records as records_lib


SEEDS = 'rerun'  # more seeds: train them all again (one short program)
NON_SEMANTIC = ()
PLOTS = ('curves.png',)


def run(config: Any, workdir: str) -> dict:
  """Dense training of `num_seeds` seeds; returns the summary dict."""
  folder = lifecycle.Run(config, workdir)
  pieces = folder.setup
  folder.check_seeds('dense run')
  done = folder.done()
  if done is not None:
    return done
  folder.begin()
  trainer = pieces.trainer
  data = train_lib.to_device(pieces.dataset)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  state_S = trainer.init_states(init_keys, noise_keys)
  lines = []
  seeds = [{'seed': s} for s in range(pieces.num_seeds)]
  loop.train_chunks(trainer, state_S, data, pieces.train.steps,
                    pieces.train.eval_every,
                    on_eval=lambda step, per_seed: lines.extend(
                        records_lib.member_records(
                            seeds, per_seed, job='dense', step=step)),
                    desc=f'dense {pieces.model.name}',
                    show_progress=folder.show_progress)
  diverged = health.flag_diverged(lines, key=lambda r: r['seed'])
  summary = {
      'job': 'dense',
      'run_dir': folder.dir,
      'model': pieces.model.name,
      'dataset': pieces.dataset.name,
      'steps': pieces.train.steps,
      'num_seeds': pieces.num_seeds,
  }
  last = [r for r in lines if r['step'] == lines[-1]['step']]
  healthy = [r for r in last if r['seed'] not in diverged]
  for name in sorted(last[0]):
    if name.startswith(('test_', 'val_')):
      summary[name] = stats.mean_std([r[name] for r in healthy])
  if diverged:
    summary['diverged_seeds'] = sorted(diverged)
  return folder.finish(summary, lines)


def report(summary: dict, lines: list[dict], config=None) -> lifecycle.Report:
  """Title, per-seed table and `curves.png` (test accuracy and loss
  against step)."""
  del config
  return lifecycle.Report(title(summary), table(summary), {
      'curves.png': lambda path: plots_lib.learning_curves(
          {'dense': lines}, path, title(summary))})


def title(summary: dict) -> str:
  return (f"Dense {summary['model']} on {summary['dataset']}, "
          f"{summary['steps']} steps, {summary['num_seeds']} seeds")


def table(summary: dict) -> str:
  """The per-seed test accuracy table of a dense run (markdown)."""
  acc, loss = summary['test_accuracy'], summary['test_loss']
  diverged = summary.get('diverged_seeds', [])
  healthy = [s for s in range(summary['num_seeds']) if s not in diverged]
  rows = [[seed, f'{a * 100:.2f}', f'{l:.4f}'] for seed, a, l in
          zip(healthy, acc['values'], loss['values'])]
  rows += [[seed, 'diverged', ''] for seed in diverged]
  rows.append([f'mean ± std (n={acc["n"]})',
               stats.format_mean_std(acc, digits=2),
               f"{loss['mean']:.4f} ± {loss['std']:.4f}"])
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
