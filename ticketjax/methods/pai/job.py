"""The `pai` job: prune the init to each target density, train, report.

Order of work in the run folder: the D x S members (density-major: member
i is density `pai.densities[i // S]` of seed `i % S`) are initialized,
scored and pruned in one compiled program, then trained together to
`train.steps`; `records/train.json` (evaluation records and per-member
summaries) and then `checkpoints/final` are written. The search is one
stage: a run killed before its checkpoint trains again from the start,
which, training being deterministic, gives the same records.
"""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ticketjax.core import scores as scores_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.pai import core
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import setup as setup_lib

SEEDS = 'refuse'
NON_SEMANTIC = ()
PLOTS = ('accuracy.png', 'curves.png')
STATS = ('final_test_accuracy', 'best_test_accuracy', 'final_test_loss',
         'early_stop_step', 'early_stop_test_accuracy')


def pai_config(config) -> core.PaiConfig:
  cfg = setup_lib.method_section(config, 'pai', core.PaiConfig,
                                 tuples=('densities', 'prune_exclude'))
  cfg = dataclasses.replace(cfg, densities=tuple(
      float(d) for d in cfg.densities))
  cfg.validate()
  return cfg


def check(config) -> None:
  """Checks config.pai (ValueError); `setup.build` checks the rest."""
  pai_config(config)


def run(config: Any, workdir: str) -> dict:
  """The `pai` job: see the module docstring."""
  cfg = pai_config(config)  # cheap checks first
  folder = lifecycle.Run(config, workdir)
  folder.check_seeds('search')
  done = folder.done()
  if done is not None:
    return done
  folder.begin()
  if not (folder.has_records('train') and folder.store.usable('final')):
    train(folder, cfg)
  records = folder.read_records('train')
  return folder.finish(summarize(folder, cfg, records['members']),
                       records['evals'])


def train(folder, cfg: core.PaiConfig):
  """Prunes every member's init and trains them all; (evals, members)."""
  pieces = folder.setup
  trainer, S = pieces.trainer, pieces.num_seeds
  D = len(cfg.densities)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  tile = lambda x: jnp.tile(x, (D,) + (1,) * (x.ndim - 1))
  init_M = jax.tree.map(tile, trainer.init_states(init_keys, noise_keys))
  score_keys = jax.vmap(lambda k: jax.random.fold_in(k, core.SCORE_TAG))(
      tile(init_keys))
  n = min(cfg.score_batch, pieces.dataset.x_train.shape[0])
  batch = (jnp.asarray(pieces.dataset.x_train[:n]),
           jnp.asarray(pieces.dataset.y_train[:n]))

  def start(state, density, key):
    ctx = scores_lib.ScoreContext(state.params, state.mask, key, trainer.model,
                                  state.model_state, batch)
    mask = core.prune_at_init(cfg, ctx, density)
    return trainer.reset(state.params, state.model_state, mask, state.key)

  start_M = jax.jit(jax.vmap(start))(
      init_M, jnp.repeat(jnp.asarray(cfg.densities, jnp.float32), S),
      score_keys)
  who = [{'density_target': d, 'seed': s} for d in cfg.densities
         for s in range(S)]
  folder.train_stage('train', trainer, start_M, who, cfg.prunable,
                     desc=f'pai {cfg.score} ({D}x{S})', checkpoint='final')


def summarize(folder, cfg: core.PaiConfig, members: list[dict]) -> dict:
  """Per target density: mean ± std over seeds (healthy members)."""
  pieces = folder.setup
  by_density = []
  for d in cfg.densities:
    mine = [m for m in members if m['density_target'] == d]
    by_density.append({
        'density_target': d,
        'density': stats.mean_std([m['density'] for m in mine]),
        **health.aggregate(mine, STATS)})
  return {'job': 'pai', 'run_dir': folder.dir, 'model': pieces.model.name,
          'dataset': pieces.dataset.name, 'num_seeds': pieces.num_seeds,
          'steps': pieces.train.steps, 'score': cfg.score,
          'scope': cfg.scope, 'by_density': by_density, 'members': members}


def report(summary: dict, evals: list[dict], config=None) -> lifecycle.Report:
  del config
  return lifecycle.Report(title(summary), table(summary),
                          plots(summary, evals))


def title(summary: dict) -> str:
  return (f"Pruning at init by {summary['score']} scores "
          f"({summary['scope']}), {summary['model']} on "
          f"{summary['dataset']}, {summary['steps']} steps, "
          f"{summary['num_seeds']} seeds")


def table(summary: dict) -> str:
  """One row per target density: weights kept, accuracy, early stop."""
  fmt = stats.format_mean_std
  rows = []
  for e in summary['by_density']:
    health = (f"diverged {e['diverged']}/{e['members']}"
              if e.get('diverged') else 'ok')
    stop = e.get('early_stop_step')
    rows.append([f"{100 * e['density_target']:g}",
                 f"{100 * e['density']['mean']:.2f}",
                 fmt(e['final_test_accuracy']) if 'final_test_accuracy' in e
                 else 'n/a',
                 fmt(e['best_test_accuracy']) if 'best_test_accuracy' in e
                 else 'n/a',
                 fmt(stop, scale=1, digits=0) if stop else '', health])
  return (title(summary) + ' (test accuracy %, mean ± std over seeds)\n\n'
          + stats.markdown_table(
              ['target density (%)', 'weights remaining (%)',
               'final test acc (%)', 'best test acc (%)', 'early-stop step',
               'members'], rows))


def plots(summary: dict, evals: list[dict]) -> dict:
  """accuracy.png (accuracy vs weights remaining) and curves.png."""

  def accuracy(path):
    plt = plots_lib.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    pts = [e for e in summary['by_density'] if 'final_test_accuracy' in e]
    plots_lib.band(ax, [100 * e['density']['mean'] for e in pts],
                   [100 * e['final_test_accuracy']['mean'] for e in pts],
                   [100 * e['final_test_accuracy']['std'] for e in pts],
                   f"{summary['score']} ({summary['scope']})", marker='o',
                   ms=3)
    plots_lib.density_axis(ax, min(100 * e['density']['mean']
                                   for e in summary['by_density']))
    plots_lib.save(fig, ax, path, title(summary), 'final test accuracy (%)')

  groups = {}
  for r in evals:
    groups.setdefault(f"density {100 * r['density_target']:g}%", []).append(r)
  return {'accuracy.png': accuracy,
          'curves.png': lambda path: plots_lib.learning_curves(
              groups, path, title(summary))}


def series(summary: dict) -> list[dict]:
  """One series: target density -> its members over seeds."""
  points = {}
  for m in summary.get('members', []):
    if not m.get('diverged'):
      points.setdefault(m['density_target'], []).append(m)
  return [{'label': f"PaI {summary['score']} ({summary['scope']})",
           'points': points}]
