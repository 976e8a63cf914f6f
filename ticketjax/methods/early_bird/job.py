"""The `early_bird` job: find tickets early, then retrain them.

Order of work in the run folder:

- One-shot (`early_bird.levels=0`): the S seeds train dense (with the L1
  penalty on BatchNorm scales if `l1`) to `train.steps` in one program.
  At step 0 and every `check_every` steps (an epoch by default) every
  seed's mask at every target density is taken; the Early-Bird mask of a
  (density, seed) is the first one within `epsilon` of the `window - 1`
  before it, the full-training mask the one at the end (a seed that never
  declares keeps its final mask and saves no steps). `records/search.json`
  (evaluations, every check, the declaration points) and then
  `checkpoints/search` (both masks) are written.
- Early-bird IMP (`levels=L`): level l trains every seed from its init with
  mask l-1 and stops once every seed's mask pruning `rate` of its
  survivors has settled (`records/level_<l>.json`, `checkpoints/level_<l>`).

Then every ticket retrains from its seed's init (rewind to step 0, fresh
optimizer, no penalty) to `train.steps`, next to the dense network: members
are branch-major ('early_bird', then 'full' in one-shot, then 'dense'),
then density (or level), then seed; `records/train.json` and
`checkpoints/final`. Every stage saves inside itself every
`train.checkpoint_every_s` seconds (`steps.MidStage`; a search's save
holds its FIFOs of masks, its Early-Bird masks so far and the declared
steps, its records the evaluations and checks), so a killed stage resumes
from its newest save and, training being deterministic, ends with the
records of a stage never killed.
"""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ticketjax.core import connectivity
from ticketjax.core import early_bird as early_bird_lib
from ticketjax.core import scores as scores_lib
from ticketjax.core import stats
from ticketjax.core import structure as structure_lib
from ticketjax.core import train as train_lib
from ticketjax.methods.early_bird import core
from ticketjax.methods.early_bird import report as report_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import loop
from ticketjax.run import progress as progress_lib
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import steps as steps_lib

SEEDS = 'refuse'
NON_SEMANTIC = ()
WRAPPED_CHECKPOINTS = {  # its trained networks are in `final`
    'search': 'the masks the search found (no weights)',
    'level_': 'the masks a level found (no weights)'}
STATS = ('final_test_accuracy', 'best_test_accuracy', 'final_test_loss',
         'early_stop_step', 'early_stop_test_accuracy')


def early_bird_config(config) -> core.EarlyBirdConfig:
  cfg = setup_lib.method_section(config, 'early_bird', core.EarlyBirdConfig,
                                 tuples=('prune_exclude',),
                                 floats=('densities',))
  cfg.validate()
  return cfg


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """Who member `member` of `final` is (`train`'s order): 'early_bird at
  density 0.2, seed 1', 'full at ...', 'early_bird level 2, seed 0' or
  'dense, seed 1'; else ''."""
  cfg = early_bird_config(ml_collections.ConfigDict(config))
  S = int(config['num_seeds'])
  if cfg.levels:
    who = [f'early_bird level {level}' for level in range(1, cfg.levels + 1)]
  else:
    who = [f'{b} at density {d:g}' for b in ('early_bird', 'full')
           for d in cfg.densities]
  who.append('dense')
  if checkpoint != 'final' or not 0 <= member < len(who) * S:
    return ''
  return f'{who[member // S]}, seed {member % S}'


def check(config) -> None:
  """Checks config.early_bird (ValueError); `setup.build` checks the rest."""
  early_bird_config(config)


def check_built(config, pieces) -> None:
  """Checks config.early_bird against the built model and schedule
  (ValueError): structure, score and penalty fit the layers, and the mask
  is checked before training ends."""
  cfg = early_bird_config(config)
  params = jax.eval_shape(pieces.trainer.model.init,
                          jax.random.PRNGKey(0))[0]
  structure_lib.check(cfg.structure, params, cfg.prunable)
  scores_lib.check(cfg.score, params, cfg.prunable)
  if cfg.l1:
    core.l1_penalty(cfg.l1, params)  # a model without BatchNorm: refused
  every = check_every(cfg, pieces)
  if every > pieces.train.steps:
    raise ValueError(
        f'early_bird.check_every ({every} steps) exceeds train.steps '
        f'({pieces.train.steps}): the mask could never be checked')


def run(config: Any, workdir: str) -> dict:
  """The `early_bird` job: see the module docstring."""
  cfg = early_bird_config(config)  # cheap checks first
  folder = lifecycle.Run(config, workdir)
  pieces = folder.setup
  check_built(config, pieces)

  def outputs(records):
    searches = [folder.read_records(name) for name in search_stages(cfg)]
    evals = [r for s in searches for r in s['evals']] + records['evals']
    return summarize(folder, cfg, searches, records['members']), evals

  return folder.one_stage('search', lambda: train(folder, cfg), outputs)


def check_every(cfg: core.EarlyBirdConfig, pieces) -> int:
  """Steps between mask checks: `check_every`, or one epoch."""
  return int(cfg.check_every) or (pieces.dataset.x_train.shape[0]
                                  // pieces.train.batch_size)


def search_stages(cfg: core.EarlyBirdConfig) -> list[str]:
  return (['search'] if not cfg.levels
          else [f'level_{l}' for l in range(1, cfg.levels + 1)])


def _label(cfg: core.EarlyBirdConfig, k: int, level: int) -> dict:
  """Who tracker k of a search is: its target density (and level)."""
  if not cfg.levels:
    return {'density_target': cfg.densities[k]}
  return {'level': level,
          'density_target': float((1.0 - cfg.rate) ** level)}


def search(folder, cfg: core.EarlyBirdConfig, start_S, name: str,
           level: int = 0):
  """Trains the S members of `start_S` and tracks their masks (see the
  module docstring); writes `records/<name>.json` and the checkpoint
  `<name>` ({'early_bird': masks, 'last': masks}, tracker-major [K*S]);
  returns the checkpoint's tree."""
  pieces = folder.setup
  trainer = pieces.trainer
  if cfg.l1:
    trainer = dataclasses.replace(trainer, penalty=core.l1_penalty(
        cfg.l1, jax.tree.map(lambda x: x[0], start_S.params)))
  rates = cfg.targets()
  K, S, T = len(rates), start_S.step.shape[0], pieces.train.steps
  every = check_every(cfg, pieces)
  stop_early = bool(cfg.levels)  # one-shot trains on for the full ticket

  @jax.jit
  def masks_now(params_S, mask_S):  # trackers x members, and their bits
    one = lambda r: jax.vmap(lambda p, m: core.ticket(cfg, p, m, r))(
        params_S, mask_S)
    masks = jax.tree.map(lambda *xs: jnp.stack(xs), *[one(r) for r in rates])
    return masks, jax.vmap(jax.vmap(lambda m: core.bits(cfg, m)))(masks)

  # the distance counts the entries the rule may still cut: the start
  # mask's survivors (all of them from dense; an IMP level's, later)
  live = np.asarray(jax.jit(jax.vmap(lambda m: core.bits(cfg, m)))(
      start_S.mask))
  who = [{'seed': s, **({'level': level} if level else {})}
         for s in range(S)]
  fifo = {(k, s): () for k in range(K) for s in range(S)}
  declared = {}  # (k, s) -> step
  checks, evals = [], []
  ticket_KS = None

  def check_all(step, state_S):
    nonlocal ticket_KS
    masks, bits = masks_now(state_S.params, state_S.mask)
    bits = np.asarray(bits)
    new = np.zeros((K, S), bool)
    for k in range(K):
      for s in range(S):
        if (k, s) in declared:
          continue
        fifo[k, s] = early_bird_lib.push(fifo[k, s], bits[k, s][live[s]],
                                         cfg.window)
        verdict = core.check(cfg, fifo[k, s])
        checks.append({**_label(cfg, k, level), 'seed': s, 'step': step,
                       'max_distance': (max(verdict.distances)
                                        if verdict.distances else None),
                       'declared': verdict.declared})
        if verdict.declared:
          declared[k, s] = step
          new[k, s] = True
    ticket_KS = masks if ticket_KS is None else jax.tree.map(
        lambda m, t: jnp.where(new.reshape(new.shape + (1,) * (m.ndim - 2)),
                               m, t), masks, ticket_KS)
    return masks, bits

  n = live.shape[1]

  def snapshot(state_S):  # what a save inside the search holds
    fifo_bits = np.zeros((K, S, cfg.window, n), bool)
    sizes = np.zeros((K, S), np.int32)
    for (k, s), masks in fifo.items():
      sizes[k, s] = len(masks)
      for i, b in enumerate(masks):
        fifo_bits[k, s, i, live[s]] = b
    return {'state': state_S, 'ticket': ticket_KS,
            'fifo': np.packbits(fifo_bits, axis=-1),  # 8 bits a byte
            'fifo_sizes': sizes, 'declared': np.array(
                [[declared.get((k, s), -1) for s in range(S)]
                 for k in range(K)], np.int32)}

  with steps_lib.MidStage(folder, name,
                          pieces.train.checkpoint_every_s) as saves:
    state, step = start_S, int(np.asarray(start_S.step).min())
    if saves.step() is None:
      last_masks, last_bits = check_all(step, state)
    else:  # from the save inside the search, with its FIFOs and checks
      ticket_KS = masks_now(start_S.params, start_S.mask)[0]
      saved, records = saves.start(snapshot(start_S))
      state, ticket_KS = saved['state'], saved['ticket']
      evals, checks = records['evals'], records['checks']
      step = int(np.asarray(state.step).min())
      fifo_bits = np.unpackbits(np.asarray(saved['fifo']), axis=-1,
                                count=n).astype(bool)
      for k in range(K):
        for s in range(S):
          fifo[k, s] = tuple(fifo_bits[k, s, i][live[s]]
                             for i in range(saved['fifo_sizes'][k, s]))
          if saved['declared'][k, s] >= 0:
            declared[k, s] = int(saved['declared'][k, s])
      last_masks, last_bits = masks_now(state.params, state.mask)
    bar = progress_lib.Progress(
        T, f'early-bird {name} ({S} seeds, {K} tracker{"s" * (K > 1)})',
        enabled=folder.show_progress, start=step)
    for end in loop.chunk_ends(step, T, every):
      state, metrics = trainer.train(state, folder.data, end - step)
      step = end
      per_seed = jax.tree.map(np.asarray, {
          **loop.train_means(metrics),
          **loop.evaluate_splits(trainer, state, folder.data)})
      evals.extend(records_lib.member_records(
          who, per_seed, branch='search', step=step))
      last_masks, last_bits = check_all(step, state)
      settled = stop_early and len(declared) == K * S
      if settled:  # the last progress line says where the level stopped
        bar.total = step
      bar.update(step, loss=float(np.mean(per_seed['train_loss'])),
                 test_acc=float(np.mean(per_seed['test_accuracy'])))
      if settled:
        break
      saves.save(step, lambda state=state: snapshot(state),
                 {'evals': evals, 'checks': checks}, T)
  # a member that never declared keeps its last mask (and saves nothing)
  never = np.array([[(k, s) not in declared for s in range(S)]
                    for k in range(K)])
  ticket_KS = jax.tree.map(
      lambda m, t: jnp.where(never.reshape(never.shape + (1,) * (m.ndim - 2)),
                             m, t), last_masks, ticket_KS)
  health.flag_diverged(evals, key=lambda r: r['seed'])
  members = [{**w, **health.member_stats(
      [r for r in evals if r['seed'] == w['seed']])} for w in who]
  ticket_bits = np.asarray(jax.jit(jax.vmap(jax.vmap(
      lambda m: core.bits(cfg, m))))(ticket_KS))
  points = []
  for k in range(K):
    for s in range(S):
      at = declared.get((k, s))
      points.append({
          **_label(cfg, k, level), 'seed': s, 'declared_step': at,
          'trained_steps': step, 'search_steps': at if at is not None else step,
          # how far the Early-Bird mask is from the search's last mask
          'distance_to_last': float(np.mean(
              ticket_bits[k, s][live[s]] != last_bits[k, s][live[s]]))})
  folder.write_records(name, {'evals': evals, 'members': members,
                              'checks': checks, 'declared': points,
                              'check_every': every})
  flat = lambda tree: jax.tree.map(
      lambda x: x.reshape((K * S,) + x.shape[2:]), tree)
  out = {'early_bird': flat(ticket_KS), 'last': flat(last_masks)}
  folder.store.save(name, out)
  saves.end()
  return out


def train(folder, cfg: core.EarlyBirdConfig):
  """The search stage(s), then every ticket retrained from its init."""
  pieces = folder.setup
  trainer, S = pieces.trainer, pieces.num_seeds
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      pieces.seed_keys())
  init_S = trainer.init_states(init_keys, noise_keys)
  K = len(cfg.targets())
  like = {'early_bird': jax.tree.map(
      lambda x: jnp.tile(x, (K,) + (1,) * (x.ndim - 1)), init_S.mask)}
  like['last'] = like['early_bird']

  def stage(name, start_S, level=0):
    if folder.stage_done(name):
      return folder.store.restore(name, like)
    return search(folder, cfg, start_S, name, level)

  reset = jax.jit(jax.vmap(trainer.reset))
  tile = lambda tree, n: jax.tree.map(
      lambda x: jnp.tile(x, (n,) + (1,) * (x.ndim - 1)), tree)

  def start(mask_M):  # masks [n * S] on their seeds' inits, n-major
    n = jax.tree.leaves(mask_M)[0].shape[0] // S
    return reset(tile(init_S.params, n), tile(init_S.model_state, n), mask_M,
                 tile(init_S.key, n))

  if not cfg.levels:
    found = stage('search', init_S)
    starts = [start(found['early_bird']), start(found['last'])]
    who = [{'branch': b, 'density_target': d, 'seed': s}
           for b in ('early_bird', 'full') for d in cfg.densities
           for s in range(S)]
  else:
    mask_S, starts, who = init_S.mask, [], []
    for level in range(1, cfg.levels + 1):
      found = stage(f'level_{level}', start(mask_S), level)
      mask_S = found['early_bird']
      starts.append(start(mask_S))
      who += [{'branch': 'early_bird', 'level': level,
               'density_target': float((1.0 - cfg.rate) ** level),
               'seed': s} for s in range(S)]
  starts.append(init_S)
  who += [{'branch': 'dense', 'density_target': 1.0, 'seed': s}
          for s in range(S)]
  start_M = jax.tree.map(lambda *xs: jnp.concatenate(xs), *starts)
  folder.train_stage('train', trainer, start_M, who, cfg.prunable,
                     desc=f'early-bird retrain ({len(who)} members)',
                     checkpoint='final', extras=lambda final_M: _units(
                         cfg, pieces, final_M))


def _units(cfg: core.EarlyBirdConfig, pieces, final_M) -> list[dict]:
  """Per member: its empty prunable layers (a collapsed network) and, with
  'channels', the fraction of prunable units kept and of prunable weights
  live (`connectivity.live_density`: the mask keeps the next layer's
  weights that read a removed channel, and they compute nothing)."""
  empty = connectivity.member_empty_layers(final_M.mask, cfg.prunable)
  if not cfg.channels:
    return [{'empty_layers': e} for e in empty]
  kept = np.asarray(jax.vmap(lambda m: jnp.mean(core.bits(cfg, m)))(
      final_M.mask))
  live = np.asarray(connectivity.member_live_density(
      pieces.model, pieces.dataset.x_train.shape[1:], cfg.prunable)(
          final_M.mask, final_M.params, final_M.model_state))
  return [{'empty_layers': e, 'units': float(u), 'live_density': float(l)}
          for e, u, l in zip(empty, kept, live)]


def summarize(folder, cfg: core.EarlyBirdConfig, searches: list[dict],
              members: list[dict]) -> dict:
  """Per branch and density (or level): retrained accuracy mean ± std over
  seeds; for the Early-Bird tickets where they were declared and the
  training steps they saved."""
  pieces = folder.setup
  T = pieces.train.steps
  every = searches[0]['check_every']
  spe = pieces.dataset.x_train.shape[0] // pieces.train.batch_size
  points = [p for s in searches for p in s['declared']]
  groups = []
  keys = list(dict.fromkeys((m['branch'], m.get('level'),
                             m['density_target']) for m in members))
  for branch, level, d in keys:
    mine = [m for m in members if (m['branch'], m.get('level'),
                                   m['density_target']) == (branch, level, d)]
    g = {'branch': branch, 'density_target': d,
         'density': stats.mean_std([m['density'] for m in mine]),
         **health.aggregate(mine, STATS)}
    if level is not None:
      g['level'] = level
    g['collapsed'] = sum(1 for m in mine if m['empty_layers'])
    if cfg.channels and branch != 'dense':
      g['units'] = stats.mean_std([m['units'] for m in mine])
      live = health.live_density(mine)
      if live:  # (summaries from before it was counted: none)
        g['live_density'] = live
    if branch == 'early_bird':
      found = [p for p in points if p['density_target'] == d
               and p.get('level') == level]
      at = [p['declared_step'] for p in found
            if p['declared_step'] is not None]
      g['declared'] = len(at)
      if at:
        g['declared_step'] = stats.mean_std(at)
        g['declared_epoch'] = stats.mean_std([a / spe for a in at])
      g['search_steps'] = stats.mean_std([p['search_steps'] for p in found])
      g['steps_saved'] = stats.mean_std(
          [(T - p['search_steps']) / T for p in found])
      g['program_steps'] = max(p['trained_steps'] for p in found)
      g['distance_to_last'] = stats.mean_std(
          [p['distance_to_last'] for p in found])
    groups.append(g)
  search_members = [m for s in searches for m in s['members']]
  return {'job': 'early_bird', 'run_dir': folder.dir,
          'model': pieces.model.name, 'dataset': pieces.dataset.name,
          'num_seeds': pieces.num_seeds, 'steps': T, 'check_every': every,
          'steps_per_epoch': spe, 'score': cfg.score, 'scope': cfg.scope,
          'structure': cfg.structure, 'l1': cfg.l1, 'window': cfg.window,
          'epsilon': cfg.epsilon, 'levels': cfg.levels, 'rate': cfg.rate,
          'groups': groups,
          'search': {'members': search_members,
                     'checks': [c for s in searches for c in s['checks']],
                     'declared': points},
          'members': members}


report = report_lib.report  # the plug-in's report and its cross-run
series = report_lib.series  # series (`methods/registry.py`)
