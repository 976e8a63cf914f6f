"""The `dst` job: static, SET and RigL sparse training side by side.

Members are (variant, distribution, density, seed), variant-major, then
distribution, density and seed (`who` lists them); every member of a seed
has the same init, data order and (for one distribution and density) the
same initial random mask, so the variants differ only in how their masks
move. All train together to `train.steps` in one compiled program with
`core.mask_update` inside the step; `records/train.json` (evaluation
records, per-member summaries with the Jaccard index of the final mask
and the initial one and its empty prunable layers, counted per group as
`collapsed`) and then `checkpoints/final` are written. A run
killed before its checkpoint trains again from the start, which, training
being deterministic, gives the same records.
"""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ticketjax.core import connectivity
from ticketjax.core import distributions
from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.dst import core
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import setup as setup_lib

SEEDS = 'refuse'
NON_SEMANTIC = ()
STATS = ('final_test_accuracy', 'best_test_accuracy', 'final_test_loss',
         'jaccard_initial')
NAMES = {'static': 'static sparse', 'set': 'SET', 'rigl': 'RigL'}


def plain_model_state(state: dict) -> dict:
  """The model's state inside a saved DST state (`core.wrap_model`)."""
  return state['inner']


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """'RigL (erk) at density 0.2, seed 1': member i of `members`."""
  del checkpoint  # the one checkpoint, 'final'
  who = members(dst_config(ml_collections.ConfigDict(config)),
                int(config['num_seeds']))
  if not 0 <= member < len(who):
    return ''
  m = who[member]
  return (f"{NAMES[m['variant']]} ({m['distribution']}) at density "
          f"{m['density_target']:g}, seed {m['seed']}")


def dst_config(config) -> core.DstConfig:
  cfg = setup_lib.method_section(
      config, 'dst', core.DstConfig,
      tuples=('variants', 'distributions', 'prune_exclude'),
      floats=('densities',))
  cfg.validate()
  moving = [NAMES[v] for v in cfg.variants if v != 'static']
  end = cfg.end_step(int(config.train.steps))
  if moving and cfg.update_every >= end:
    raise ValueError(
        f'dst.update_every ({cfg.update_every} steps) leaves no mask update '
        f'before T_end = dst.end_fraction x train.steps = {end}: '
        f"{' and '.join(moving)} would train as static sparse; give "
        f'dst.update_every < {end}, or more train.steps')
  return cfg


def check(config) -> None:
  """Checks config.dst (ValueError); `setup.build` checks the rest."""
  dst_config(config)


def run(config: Any, workdir: str) -> dict:
  """The `dst` job: see the module docstring."""
  cfg = dst_config(config)  # cheap checks first
  folder = lifecycle.Run(config, workdir)
  return folder.one_stage(
      'search', lambda: train(folder, cfg),
      lambda rec: (summarize(folder, cfg, rec['members']), rec['evals']))


def members(cfg: core.DstConfig, num_seeds: int) -> list[dict]:
  return [{'variant': v, 'distribution': d, 'density_target': p, 'seed': s}
          for v in cfg.variants for d in cfg.distributions
          for p in cfg.densities for s in range(num_seeds)]


def trainer_for(pieces, cfg: core.DstConfig) -> train_lib.Trainer:
  """The run's trainer with the wrapped model and the mask update."""
  base = pieces.trainer
  return dataclasses.replace(
      base, model=core.wrap_model(base.model),
      mask_update=core.mask_update(cfg, base.optimizer, pieces.train.steps))


def start_states(pieces, cfg: core.DstConfig, trainer) -> train_lib.TrainState:
  """Every member's step-0 state, in `members` order."""
  S = pieces.num_seeds
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  init_S = trainer.init_states(init_keys, noise_keys)
  shapes = jax.tree.map(lambda x: x[0], init_S.params)
  mask_keys = jax.vmap(lambda k: jax.random.fold_in(k, core.MASK_TAG))(
      init_keys)
  # one program for every (distribution, density) group: the counts kept
  # per layer are traced, so the masks compile once, not once per group
  kept = [distributions.counts(shapes, p, d, cfg.prunable)
          for d in cfg.distributions for p in cfg.densities]
  kept_G = {path: jnp.asarray([k[path] for k in kept], jnp.int32)
            for path in kept[0]}
  mask_GS = jax.jit(jax.vmap(lambda kept: jax.vmap(
      lambda k, params: distributions.random_mask(k, params, kept,
                                                  cfg.prunable))(
          mask_keys, init_S.params)))(kept_G)
  size = len(kept) * S
  mask_G = jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:]), mask_GS)
  init_G = jax.tree.map(
      lambda x: jnp.tile(x, (len(kept),) + (1,) * (x.ndim - 1)), init_S)
  state_G = jax.vmap(trainer.reset)(init_G.params, init_G.model_state,
                                    mask_G, init_G.key)
  out = [state_G._replace(model_state=dict(
      state_G.model_state, variant=jnp.full(
          (size,), core.VARIANTS.index(v), jnp.int32)))
         for v in cfg.variants]  # the variants differ in their code only
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *out)


def train(folder, cfg: core.DstConfig):
  pieces = folder.setup
  trainer = trainer_for(pieces, cfg)
  start_M = start_states(pieces, cfg, trainer)
  who = members(cfg, pieces.num_seeds)


  def moved(final_M):  # how far each mask moved from where it started,
    # and its empty prunable layers (a collapsed network)
    jaccard = np.asarray(jax.vmap(lambda a, b: masks_lib.jaccard(
        a, b, cfg.prunable))(final_M.mask, start_M.mask))
    empty = connectivity.member_empty_layers(final_M.mask, cfg.prunable)
    return [{'jaccard_initial': float(j), 'empty_layers': e}
            for j, e in zip(jaccard, empty)]

  folder.train_stage(
      'train', trainer, start_M, who, cfg.prunable,
      desc=f"dst {'/'.join(cfg.variants)} ({len(who)} members)",
      checkpoint='final', extras=moved)


def summarize(folder, cfg: core.DstConfig, members_: list[dict]) -> dict:
  """Per (variant, distribution, density): mean ± std over seeds."""
  pieces = folder.setup
  groups = []
  for v in cfg.variants:
    for d in cfg.distributions:
      for p in cfg.densities:
        mine = [m for m in members_ if (m['variant'], m['distribution'],
                                        m['density_target']) == (v, d, p)]
        groups.append({'variant': v, 'distribution': d, 'density_target': p,
                       'density': stats.mean_std([m['density']
                                                  for m in mine]),
                       **health.aggregate(mine, STATS),
                       # (a summary from before it was counted: no key)
                       'collapsed': sum(1 for m in mine
                                        if m.get('empty_layers'))})
  return {'job': 'dst', 'run_dir': folder.dir, 'model': pieces.model.name,
          'dataset': pieces.dataset.name, 'num_seeds': pieces.num_seeds,
          'steps': pieces.train.steps, 'update_every': cfg.update_every,
          'drop_fraction': cfg.drop_fraction,
          'end_step': cfg.end_step(pieces.train.steps), 'groups': groups,
          'members': members_}


def _label(e: dict) -> str:
  return f"{NAMES[e['variant']]} ({e['distribution']})"


def title(summary: dict) -> str:
  return (f"Dynamic sparse training, {summary['model']} on "
          f"{summary['dataset']}, {summary['steps']} steps (mask updates "
          f"every {summary['update_every']} to step {summary['end_step']}, "
          f"alpha {summary['drop_fraction']:g}), "
          f"{stats.seeds(summary['num_seeds'])}")


def table(summary: dict) -> str:
  fmt = stats.format_mean_std
  rows = []
  for e in summary['groups']:
    acc = e.get('final_test_accuracy')
    rows.append([_label(e), f"{100 * e['density']['mean']:.2f}",
                 fmt(acc) if acc else 'n/a',
                 fmt(e['best_test_accuracy']) if acc else 'n/a',
                 f"{e['jaccard_initial']['mean']:.3f}" if acc else 'n/a',
                 health.column(e, summary['num_seeds'],
                               collapsed=' (an empty layer)')])
  return (title(summary) + ' (test accuracy %, mean ± std over seeds, '
          'ddof 0)\n\n'
          + stats.markdown_table(
              ['method', 'weights remaining (%)', 'final test acc (%)',
               'best test acc (%)', 'Jaccard(final, initial mask)',
               'members'], rows))


def report(summary: dict, evals: list[dict], config=None) -> lifecycle.Report:
  del config

  def accuracy(path):
    lines = {}
    for e in summary['groups']:
      lines.setdefault(_label(e), []).append(
          (100 * e['density']['mean'], e.get('final_test_accuracy')))
    plots_lib.accuracy_vs_density(path, title(summary), lines)

  curves = {}
  for r in evals:
    curves.setdefault(f"{_label(r)}, density "
                      f"{100 * r['density_target']:g}%", []).append(r)
  return lifecycle.Report(title(summary), table(summary), {
      'accuracy.png': accuracy,
      'curves.png': lambda path: plots_lib.learning_curves(
          curves, path, title(summary))})


def series(summary: dict) -> list[dict]:
  """A series per (variant, distribution): density -> members."""
  return health.series(summary, _label, lambda m: m['density_target'])
