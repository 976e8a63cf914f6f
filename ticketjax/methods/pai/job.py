"""The `pai` job: prune to each target density, train, report.

Order of work in the run folder: with `pai.prune_at='trained'`, first the
S dense members train to `train.steps` (`records/dense.json`, then
`checkpoints/dense`). Then the B x D x S members (branch-major, then
density, then seed: member i is branch `pai.branches[i // (D S)]` at
density `pai.densities[(i // S) % D]` of seed `i % S`) are initialized,
scored and pruned in one compiled program, then trained together to
`train.steps`; `records/train.json` (evaluation records and per-member
summaries) and then `checkpoints/final` are written. A stage killed before
its checkpoint trains again from its start, which, training being
deterministic, gives the same records.
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ticketjax.core import connectivity
from ticketjax.core import pruning
from ticketjax.core import scores as scores_lib
from ticketjax.core import structure as structure_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.pai import core
from ticketjax.reports import plots as plots_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import setup as setup_lib

SEEDS = 'refuse'
NON_SEMANTIC = ()
STATS = ('final_test_accuracy', 'best_test_accuracy', 'final_test_loss',
         'early_stop_step', 'early_stop_test_accuracy')


def pai_config(config) -> core.PaiConfig:
  cfg = setup_lib.method_section(config, 'pai', core.PaiConfig,
                                 tuples=('prune_exclude', 'controls'),
                                 floats=('densities',))
  cfg.validate()
  return cfg


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """Who member `member` of `final` is, 'shuffle of synflow at density
  0.1, seed 1' (branch-major, then density, then seed), or of `dense`
  (scored after training) 'dense, seed 1'; else ''."""
  cfg = pai_config(ml_collections.ConfigDict(config))
  S = int(config['num_seeds'])
  if checkpoint == 'dense':
    return f'dense, seed {member}' if 0 <= member < S else ''
  who = [(b, d, s) for b in cfg.branches for d in cfg.densities
         for s in range(S)]
  if checkpoint != 'final' or not 0 <= member < len(who):
    return ''
  b, d, s = who[member]
  what = cfg.score if b == 'original' else f'{b} of {cfg.score}'
  return f'{what} at density {d:g}, seed {s}'


def check(config) -> None:
  """Checks config.pai (ValueError); `setup.build` checks the rest."""
  pai_config(config)


def check_built(config, pieces) -> None:
  """Checks config.pai against the built model (ValueError): its
  structure and score fit the prunable layers."""
  cfg = pai_config(config)
  params = jax.eval_shape(pieces.trainer.model.init, jax.random.PRNGKey(0))[0]
  structure_lib.check(cfg.structure, params, cfg.prunable)
  scores_lib.check(cfg.score, params, cfg.prunable)


def run(config: Any, workdir: str) -> dict:
  """The `pai` job: see the module docstring."""
  cfg = pai_config(config)  # cheap checks first
  folder = lifecycle.Run(config, workdir)
  check_built(config, folder.setup)

  def outputs(records):  # the dense stage's members first, if any
    evals, members = records['evals'], records['members']
    if cfg.prune_at == 'trained':
      dense = folder.read_records('dense')
      evals, members = dense['evals'] + evals, dense['members'] + members
    return summarize(folder, cfg, members), evals

  return folder.one_stage('search', lambda: train(folder, cfg), outputs)


def _scored_states(folder, cfg: core.PaiConfig, init_S):
  """The states the scores see: the init, or the trained dense members."""
  if cfg.prune_at == 'init':
    return init_S
  if folder.stage_done('dense'):
    return folder.store.restore('dense', init_S)
  S = folder.setup.num_seeds
  return folder.train_stage(
      'dense', folder.setup.trainer, init_S,
      [{'branch': 'dense', 'density_target': 1.0, 'seed': s}
       for s in range(S)], cfg.prunable, desc=f'pai dense ({S})',
      stage='dense')


def train(folder, cfg: core.PaiConfig):
  """Prunes every member's init (or trained weights) and trains them all."""
  pieces = folder.setup
  trainer, S = pieces.trainer, pieces.num_seeds
  D = len(cfg.densities)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  init_S = trainer.init_states(init_keys, noise_keys)
  scored_S = _scored_states(folder, cfg, init_S)
  tile = lambda x: jnp.tile(x, (D,) + (1,) * (x.ndim - 1))
  score_keys = jax.vmap(lambda k: jax.random.fold_in(k, core.SCORE_TAG))(
      tile(init_keys))
  n = min(cfg.score_batch, pieces.dataset.x_train.shape[0])
  batch = (jnp.asarray(pieces.dataset.x_train[:n]),
           jnp.asarray(pieces.dataset.y_train[:n]))

  channels = (structure_lib.parse(cfg.structure).kind == 'channels'
              and pieces.dataset.y_train.ndim == 1)  # not a language model

  def start(init, scored, density, key, reinit_key):
    """{branch: start state} of one (density, seed)."""
    ctx = scores_lib.ScoreContext(scored.params, init.mask, key,
                                  trainer.model, scored.model_state, batch)
    mask = core.prune_at_init(cfg, ctx, density)
    out = {'original': trainer.reset(init.params, init.model_state, mask,
                                     init.key)}
    if 'shuffle' in cfg.controls:
      shuffled = pruning.shuffle(jax.random.fold_in(key, core.SHUFFLE_TAG),
                                 mask, cfg.prunable)
      out['shuffle'] = trainer.reset(init.params, init.model_state, shuffled,
                                     init.key)
    if 'reinit' in cfg.controls:
      fresh = trainer.init_state(reinit_key, init.key)
      out['reinit'] = trainer.reset(fresh.params, fresh.model_state, mask,
                                    init.key)
    if 'invert' in cfg.controls:
      out['invert'] = trainer.reset(
          init.params, init.model_state,
          core.prune_at_init(cfg, ctx, density, invert=True), init.key)
    # layer collapse of each mask, for the records; under channels also
    # the weights left reading removed units (`live_density`)
    shape = batch[0].shape[1:]
    return out, {b: (connectivity.empty_layers(st.mask, cfg.prunable),
                     connectivity.connected_outputs(
                         trainer.model, st.mask, st.params, st.model_state,
                         shape),
                     *([connectivity.live_density(
                         trainer.model, st.mask, st.params, st.model_state,
                         shape, cfg.prunable)] if channels else []))
                 for b, st in out.items()}

  reinit_keys = jax.vmap(lambda k: jax.random.fold_in(k, core.REINIT_TAG))(
      tile(init_keys))
  by_branch, collapse = jax.jit(jax.vmap(start))(
      jax.tree.map(tile, init_S), jax.tree.map(tile, scored_S),
      jnp.repeat(jnp.asarray(cfg.densities, jnp.float32), S), score_keys,
      reinit_keys)
  start_M = jax.tree.map(lambda *xs: jnp.concatenate(xs),
                         *[by_branch[b] for b in cfg.branches])
  collapse = jax.tree.map(np.asarray, collapse)
  who = [{'branch': b, 'density_target': d, 'seed': s,
          'empty_layers': int(collapse[b][0][i * S + s]),
          'connected_outputs': int(collapse[b][1][i * S + s]),
          **({'live_density': float(collapse[b][2][i * S + s])}
             if channels else {})}
         for b in cfg.branches for i, d in enumerate(cfg.densities)
         for s in range(S)]
  folder.train_stage('train', trainer, start_M, who, cfg.prunable,
                     desc=f'pai {cfg.score} ({len(who)} members)',
                     checkpoint='final')


def summarize(folder, cfg: core.PaiConfig, members: list[dict]) -> dict:
  """Per branch and target density: mean ± std over seeds (healthy
  members); the dense members first with `prune_at='trained'`."""
  pieces = folder.setup
  groups = []
  branches = (('dense',) if cfg.prune_at == 'trained' else ()) + cfg.branches
  for b in branches:
    for d in ((1.0,) if b == 'dense' else cfg.densities):
      mine = [m for m in members
              if m['branch'] == b and m['density_target'] == d]
      groups.append({
          'branch': b, 'density_target': d,
          'density': stats.mean_std([m['density'] for m in mine]),
          **health.aggregate(mine, STATS)})
      live = health.live_density(mine)  # channels: see `train`
      if live:
        groups[-1]['live_density'] = live
      if b != 'dense':  # layer collapse: an empty layer, or no path
        groups[-1]['collapsed'] = sum(
            1 for m in mine
            if m['empty_layers'] or not m['connected_outputs'])
  return {'job': 'pai', 'run_dir': folder.dir, 'model': pieces.model.name,
          'dataset': pieces.dataset.name, 'num_seeds': pieces.num_seeds,
          'steps': pieces.train.steps, 'score': cfg.score,
          'scope': cfg.scope, 'structure': cfg.structure,
          'prune_at': cfg.prune_at, 'by_density': groups,
          'members': members}


def report(summary: dict, evals: list[dict], config=None) -> lifecycle.Report:
  rounds = pai_config(config).num_rounds if config is not None else 1
  return lifecycle.Report(title(summary, rounds), table(summary, rounds),
                          plots(summary, evals, rounds))


def _method(summary: dict, rounds: int = 1) -> str:
  """'snip at init (layerwise)': the score, when, in how many rounds
  (more than one), scope and structure, and which control ignores the
  structure ('synflow at init in 100 rounds (global, 2:4; the shuffle
  control unstructured)')."""
  extra = [summary['scope']]
  if summary.get('structure', 'unstructured') != 'unstructured':
    extra.append(summary['structure'])
    if 'shuffle' in _branches(summary):  # it permutes single weights
      extra[-1] += '; the shuffle control unstructured'
  when = (' after training' if summary.get('prune_at') == 'trained'
          else ' at init')
  when += f' in {rounds} rounds' if rounds > 1 else ''
  return f"{summary['score']}{when} ({', '.join(extra)})"


def title(summary: dict, rounds: int = 1) -> str:
  return (f"Pruning by {_method(summary, rounds)}, {summary['model']} on "
          f"{summary['dataset']}, {summary['steps']} steps, "
          f"{stats.seeds(summary['num_seeds'])}")


def table(summary: dict, rounds: int = 1) -> str:
  """One row per branch and target density: weights kept, accuracy,
  early stop."""
  fmt = stats.format_mean_std
  live = any('live_density' in e for e in summary['by_density'])
  rows = []
  for e in summary['by_density']:
    stop = e.get('early_stop_step')
    rows.append([e.get('branch', 'original'),
                 f"{100 * e['density_target']:g}",
                 f"{100 * e['density']['mean']:.2f}",
                 *([f"{100 * e['live_density']['mean']:.2f}"
                    if 'live_density' in e else 'n/a'] if live else []),
                 fmt(e['final_test_accuracy']) if 'final_test_accuracy' in e
                 else 'n/a',
                 fmt(e['best_test_accuracy']) if 'best_test_accuracy' in e
                 else 'n/a',
                 fmt(stop, scale=1, digits=0) if stop else '',
                 health.column(e, summary['num_seeds'])])
  return (title(summary, rounds)
          + ' (test accuracy %, mean ± std over seeds, ddof 0)\n\n'
          + stats.markdown_table(
              ['branch', 'target (% of units)' if _channels(summary)
               else 'target density (%)', 'weights remaining (%)',
               *(['live weights (%)'] if live else []),
               'final test acc (%)', 'best test acc (%)', 'early-stop step',
               'members'], rows) + (health.LIVE_NOTE if live else ''))


def _channels(summary: dict) -> bool:
  return summary.get('structure') == 'channels'


def _branches(summary: dict) -> list[str]:
  out = []
  for e in summary['by_density']:
    if e.get('branch', 'original') not in out:
      out.append(e.get('branch', 'original'))
  return out


def plots(summary: dict, evals: list[dict], rounds: int = 1) -> dict:
  """accuracy.png (accuracy vs weights remaining, a band per branch; the
  dense members as a line) and curves.png."""

  def accuracy(path):
    lines, dense = {}, []
    for b in _branches(summary):
      pts = [(100 * e['density']['mean'], e.get('final_test_accuracy'))
             for e in summary['by_density']
             if e.get('branch', 'original') == b]
      if b == 'dense':
        dense.append(('dense', pts[0][1]))
      else:
        lines[_method(summary) if b == 'original' else b] = pts
    plots_lib.accuracy_vs_density(path, title(summary, rounds), lines,
                                  dense=dense)

  groups = {}
  for r in evals:
    b = r.get('branch', 'original')
    name = 'dense' if b == 'dense' else (
        f"{'' if b == 'original' else b + ', '}"
        f"density {100 * r['density_target']:g}%")
    groups.setdefault(name, []).append(r)
  return {'accuracy.png': accuracy,
          'curves.png': lambda path: plots_lib.learning_curves(
              groups, path, title(summary, rounds))}


def series(summary: dict) -> list[dict]:
  """A series per branch: target density -> its members over seeds; the
  dense members of `prune_at='trained'` as the reference line."""
  def label(m):
    b = m.get('branch', 'original')
    return ('dense-trained' if b == 'dense' else f'PaI {_method(summary)}'
            + ('' if b == 'original' else f' {b}'))
  return health.series(summary, label, lambda m: m['density_target'],
                       reference='dense-trained')
