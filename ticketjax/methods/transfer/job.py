"""The `transfer` job: source tickets trained on the target data, resumable.

Reads, before any write, the tickets (`checkpoints/level_LLL`) and the
initial weights (`checkpoints/rewind_init`) of the source IMP run and, if
given, of the target IMP run; both must have this run's model, seed and
first seed and at least its seed count, and have finished the levels; the
target's tickets must come from this run's data (the source's may come
from any: other data, or other training on the same data).
Then the L x B x S members (level-major, then branch, then seed: member i
is level `levels[i // (B*S)]`, branch `branches[i // S % B]`, seed
`i % S`) train on this run's data in one compiled program;
`records/train.json` (evaluation records and per-member summaries) and
then `checkpoints/final` are written. One stage: a run killed before its
checkpoint trains again from the start, which gives the same records.
"""
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.transfer import core
from ticketjax.methods.transfer import report as report_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib

SEEDS = 'refuse'
NON_SEMANTIC = ()
report = report_lib.report  # the plug-in's report and its cross-run
series = report_lib.series  # series (`methods/registry.py`)
STATS = ('final_test_accuracy', 'best_test_accuracy', 'final_test_loss',
         'early_stop_step', 'early_stop_test_accuracy')
_SHARED = ('seed', 'first_seed', 'model')  # what fixes theta_0


def transfer_config(config) -> core.TransferConfig:
  cfg = setup_lib.method_section(config, 'transfer', core.TransferConfig,
                                 tuples=('levels', 'controls'))
  cfg.validate()
  return cfg


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """Who member `member` of `final` is: 'transferred ticket of level 8,
  seed 1' (level-major, then branch, then seed); else ''."""
  cfg = transfer_config(ml_collections.ConfigDict(config))
  S = int(config['num_seeds'])
  who = [(level, b) for level in cfg.levels for b in cfg.branches()]
  if checkpoint != 'final' or not 0 <= member < len(who) * S:
    return ''
  level, b = who[member // S]
  return f'{b} ticket of level {level}, seed {member % S}'


def check(config) -> None:
  """Checks config.transfer (ValueError); `setup.build` checks the rest."""
  transfer_config(config)


def _imp_run(path: str, field: str, config, num_seeds: int, levels,
             own_data: bool = False):
  """The checkpoints of the IMP run at `path` (ValueError if it cannot
  give this run its tickets; with `own_data`, the target's, also when it
  was trained on other data than this run's)."""
  if not os.path.exists(os.path.join(path, 'config.json')):
    raise ValueError(f'{field} {path!r} is not an IMP run folder (no '
                     'config.json); give <workdir>/imp-<hash>')
  theirs = records_lib.read_json(os.path.join(path, 'config.json'))
  if theirs.get('job') != 'imp':
    raise ValueError(f"{field} {path!r} holds a {theirs.get('job')!r} run, "
                     'not an IMP run')
  if any((theirs.get('grid') or {}).values()):
    raise ValueError(f'{field} {path!r} is a hyperparameter grid; give an '
                     'IMP run of one setting')
  mine = records_lib.to_python(config.to_dict())
  diff = [f for f in _SHARED if records_lib.to_python(theirs.get(f, 0))
          != records_lib.to_python(mine.get(f, 0))]
  if diff:
    raise ValueError(f'{field} {path!r} differs from this config in {diff}; '
                     'its initial weights are only this run\'s when they agree')
  if own_data:
    _check_same_data(path, field, config, mine.get('data') or {},
                     theirs.get('data') or {})
  if int(theirs.get('num_seeds', 0)) < num_seeds:
    raise ValueError(f"{field} {path!r} has {theirs.get('num_seeds')} seeds "
                     f'but this run asks for {num_seeds}')
  ckpt = store.Checkpoints(path)
  missing = [v for v in levels if not ckpt.exists(f'level_{v:03d}')]
  if missing:
    raise ValueError(f'IMP levels {missing} are not finished in {path!r}')
  return ckpt


def _check_same_data(path, field, config, data, theirs_data) -> None:
  """ValueError unless the run at `path` was trained on this run's data:
  the same data set read the same way (split, augmentation, tokenizer);
  where it lives (data_dir) may differ, and a field one of the two
  configs lacks (an older run's) is not compared. A tokenizer file is
  compared by its contents where both runs hold their sums."""
  if theirs_data.get('name') != data.get('name'):
    raise ValueError(f"{field} {path!r} was trained on "
                     f"{theirs_data.get('name')!r}, not on this run's data "
                     f"{data.get('name')!r}: the target tickets must come "
                     'from an IMP run on this data (source and target given '
                     'the other way round?)')
  sums = os.path.join(path, workdir_lib.INPUTS)
  theirs_sum = (records_lib.read_json(sums) if os.path.exists(sums)
                else {}).get('data.tokenizer')
  same_file = lambda k: k == 'tokenizer' and theirs_sum is not None and (
      theirs_sum == workdir_lib.input_sums(config).get('data.tokenizer'))
  other = [f'data.{k} {theirs_data[k]!r} (this run: {data[k]!r})'
           for k in sorted(set(data) & set(theirs_data) - {'data_dir'})
           if theirs_data[k] != data[k] and not same_file(k)]
  if other:
    raise ValueError(f'{field} {path!r} was trained on {data.get("name")!r} '
                     f'read otherwise: {", ".join(other)}; the target '
                     'tickets must come from an IMP run on this data')


def _tickets(ckpt, levels, template, num_seeds):
  """(theta_0 params, model state, masks [L][S]) of an IMP run's seeds."""
  take = lambda like, raw: jax.tree.map(
      lambda t, r: jnp.asarray(r[:num_seeds], t.dtype), like, raw)
  init = ckpt.restore_raw('rewind_init')
  masks = [take(template.mask, ckpt.restore_raw(f'level_{v:03d}')['ticket'][
      'mask']) for v in levels]
  try:
    return (take(template.params, init['params']),
            take(template.model_state, init['model_state']), masks)
  except ValueError as e:  # another tree: another model
    raise ValueError(f'{ckpt.root}: its networks are not this model\'s '
                     f'({e})') from None


def run(config: Any, workdir: str) -> dict:
  """The `transfer` job: see the module docstring."""
  cfg = transfer_config(config)  # cheap checks first
  folder = lifecycle.Run(config, workdir)
  S = folder.num_seeds
  runs = {'transferred': _imp_run(cfg.source_run, 'transfer.source_run',
                                  config, S, cfg.levels)}
  if cfg.target_run:
    runs['target'] = _imp_run(cfg.target_run, 'transfer.target_run', config,
                              S, cfg.levels, own_data=True)
  pieces = folder.setup
  template = pieces.trainer.init_states(*jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys()))
  tickets = {name: _tickets(ckpt, cfg.levels, template, S)  # before writes
             for name, ckpt in runs.items()}
  return folder.one_stage(
      'transfer run', lambda: train(folder, cfg, tickets),
      lambda rec: (summarize(folder, cfg, rec['members']), rec['evals']))


def train(folder, cfg: core.TransferConfig, tickets: dict) -> None:
  """Builds every member's start from the runs' `tickets` ({'transferred',
  'target'?: (theta_0, model state, masks per level)}) and trains them all
  on this data."""
  pieces = folder.setup
  trainer, S = pieces.trainer, pieces.num_seeds
  seed_keys = pieces.seed_keys()
  _, noise_keys = jax.vmap(train_lib.split_seed_key)(seed_keys)
  prunable = masks_lib.make_filter(exclude=tuple(records_lib.read_json(
      os.path.join(cfg.source_run, 'config.json'))['imp'].get(
          'prune_exclude', ())))

  def starts(branch, level, weights, model_state, transferred, target):
    """The S start states of `branch` at `level` (one trace per branch)."""
    def one(w, ms, mask_t, mask_g, seed_key, noise_key):
      mask = core.start_mask(branch, level, mask_t, mask_g, seed_key,
                             prunable)
      if branch == 'reinit':
        w, ms = trainer.model.init(core.reinit_key(seed_key, level))
      return trainer.reset(masks_lib.apply(w, mask), ms, mask, noise_key, 0)
    return jax.vmap(one)(weights, model_state, transferred, target,
                         seed_keys, noise_keys)

  starts = jax.jit(starts, static_argnums=0)
  groups, who = [], []
  for l, level in enumerate(cfg.levels):
    transferred = tickets['transferred'][2][l]
    target = tickets['target'][2][l] if 'target' in tickets else transferred
    for branch in cfg.branches():
      params, model_state, _ = tickets[
          'target' if branch == 'target' else 'transferred']
      groups.append(starts(branch, jnp.int32(level), params, model_state,
                           transferred, target))
      who += [{'level': level, 'branch': branch, 'seed': s}
              for s in range(S)]
  start_M = jax.tree.map(lambda *xs: jnp.concatenate(xs), *groups)
  folder.train_stage('train', trainer, start_M, who, prunable,
                     desc=f'transfer ({len(groups)}x{S})',
                     checkpoint='final')


def summarize(folder, cfg: core.TransferConfig, members: list[dict]) -> dict:
  """Per (level, branch): weights kept and mean ± std over healthy seeds."""
  pieces = folder.setup
  entries = []
  for level in cfg.levels:
    for branch in cfg.branches():
      mine = [m for m in members
              if m['level'] == level and m['branch'] == branch]
      entries.append({'level': level, 'branch': branch,
                      'density': stats.mean_std([m['density'] for m in mine]),
                      **health.aggregate(mine, STATS)})
  return {'job': 'transfer', 'run_dir': folder.dir,
          'model': pieces.model.name, 'dataset': pieces.dataset.name,
          'source_run': cfg.source_run, 'target_run': cfg.target_run,
          'source_dataset': records_lib.read_json(os.path.join(
              cfg.source_run, 'config.json'))['data']['name'],
          'num_seeds': pieces.num_seeds, 'steps': pieces.train.steps,
          'branches': list(cfg.branches()), 'entries': entries,
          'members': members}
