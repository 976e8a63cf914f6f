"""The `lmc` job: instability analysis over rewind steps, resumable.

Order of work in the run folder (WORKSPACE.md has the layout), around the
shared lifecycle (`run/lifecycle.Run`: validation and the IMP run are read
before any write, then the lock and `config.json`):
  1. The dense *parent* trajectory of every seed is trained once from init
     (`loop.train_chunks`, one chunk per rewind step) and its state at every
     rewind step k is saved as `checkpoints/rewind_kKKKKKK` (weights,
     optimizer state, step; k = 0 is the init itself). With the IMP run's
     config, seed and keys it is that run's level-0 trajectory (to float
     rounding where the two programs hold other member counts). The IMP
     tickets are one run's, applied at every k. An IMP grid over
     `rewind_step` alone (`imp.rewind='step'`, e.g.
     `imp_mlp_mnist1d.py:k=0/100/500`) gives each k the tickets of its own
     point, found by IMP rewound to k, the paper's protocol (Frankle et
     al. 2020, Algorithm 2); then no parent is trained: W_k is the point's
     saved rewind state (`rewind_step`), its tickets' start bit for bit.
  2. For each k in order: the N networks x S seeds x C copies
     (`core.copy_states`) train from W_k to the end in one compiled program
     per chunk, saving inside the stage every `train.checkpoint_every_s`
     seconds (`steps.MidStage`), so a killed run resumes mid-step k. Then
     every pair of copies is interpolated (one program,
     `path.pair_path_metrics`) on each split, the final copies are saved as
     `checkpoints/copies_kKKKKKK` (the probe's endpoints, `python -m
     launch.probe`) and `records/k_KKKKKK.json` is written: that file marks
     k done.
  3. `metrics.jsonl`, `summary.json`, `report.md`, `barrier.png` and
     `paths.png` are regenerated from the records after every k this
     attempt computed, so every restore that can fail comes before them.
A copy whose training loss diverges is flagged in its records
(`health.flag_diverged`), and the pairs it belongs to are left out of
the barrier means (`core.summarize_step`). Training is deterministic, so a
killed and resumed run ends with the same records as one never killed.
"""
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ticketjax.core import grid as grid_lib
from ticketjax.core import masks as masks_lib
from ticketjax.core import train as train_lib
from ticketjax.methods.imp import report as imp_report
from ticketjax.methods.lmc import core as instability
from ticketjax.methods.lmc import path as lmc
from ticketjax.methods.lmc import report as report_lib
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import steps as steps_lib
from ticketjax.run import store

SEEDS = 'refuse'  # copies of other seeds would need their own parents
NON_SEMANTIC = ()
report = report_lib.report  # the plug-in's report and its cross-run
series = report_lib.series  # series (`methods/registry.py`)
cross_run_section = report_lib.cross_run_section

# Config fields an IMP run must share with the analysis for its masks to
# belong to this run's dense trajectory (data_dir and eval chunking aside).
_SHARED_FIELDS = ('seed', 'first_seed', 'data.name', 'data.val_size',
                  'data.augment', 'model', 'optimizer', 'train.steps',
                  'train.batch_size')


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """Who member `member` is: of `copies_kK` 'level_003, seed 1, copy 0'
  (network-major, then seed, then copy), of `rewind_kK` 'seed 1' (the
  parent at step k); else ''."""
  S = int(config['num_seeds'])
  if checkpoint.startswith('rewind_k'):
    return f'seed {member}' if 0 <= member < S else ''
  cfg = lmc_config(ml_collections.ConfigDict(config))
  networks, C = cfg.networks(), cfg.copies
  if not checkpoint.startswith('copies_k') or not (
      0 <= member < len(networks) * S * C):
    return ''
  n, rest = divmod(member, S * C)
  return f'{networks[n]}, seed {rest // C}, copy {rest % C}'


def lmc_config(config) -> instability.LmcConfig:
  section = setup_lib.as_dict(config.lmc)
  for name in ('rewind_steps', 'imp_levels', 'splits'):
    if name in section:
      section[name] = tuple(section[name])
  return setup_lib.typed_section(instability.LmcConfig, section, 'lmc')


def _get(tree: dict, dotted: str):
  for name in dotted.split('.'):
    tree = tree.get(name, {}) if isinstance(tree, dict) else {}
  return tree


def _imp_rewind_state(k: int) -> str:
  """The IMP checkpoint that holds a grid point's W_k: its init for k = 0
  (a grid of k = 0 alone saves no `rewind_step`)."""
  return 'rewind_step' if k else 'rewind_init'


def _step_name(k: int) -> str:
  return f'k_{k:06d}'


def _member_key(rec: dict) -> tuple:
  """Who an evaluation record belongs to: one copy of one rewind step."""
  return rec['rewind_step'], rec['network'], rec['seed'], rec['copy']


class LmcRun:
  """Drives one instability analysis in its run folder (module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.folder = lifecycle.Run(config, workdir)
    self.pieces = self.folder.setup
    self.cfg = lmc_config(config)
    self.cfg.validate(self.pieces.train.steps)
    self.S, self.C = self.pieces.num_seeds, int(self.cfg.copies)
    self.networks = self.cfg.networks()
    self.init_keys, self.noise_keys = jax.vmap(train_lib.split_seed_key)(
        self.pieces.seed_keys())
    self.template = self.pieces.trainer.init_states(self.init_keys,
                                                    self.noise_keys)
    self.tickets = ''  # how IMP found the tickets (`check_imp_run`)
    self.imp_lineages, self.masks_KNS = {}, None  # `read_imp_run`
    self.data = train_lib.to_device(self.pieces.dataset)

  def read_imp_run(self) -> None:
    """Checks the IMP run and reads its masks (ValueError before any
    write); a finished analysis does not need it."""
    self.imp_lineages = self.check_imp_run()
    self.masks_KNS = self._masks()

  # -- inputs --------------------------------------------------------------

  def _masks(self) -> dict:
    """{k: masks [N, S] of the analysed networks at rewind step k} (all
    ones for 'dense'): the IMP tickets of `imp_lineages[k]`, each level's
    checkpoint read once."""
    tickets = []  # (level, its ticket mask of every lineage)
    if self.cfg.imp_levels:
      imp = store.Checkpoints(self.cfg.imp_run)
      tickets = [(level, imp.restore_raw(
          f'level_{int(level):03d}')['ticket']['mask'])
                 for level in self.cfg.imp_levels]
    by_first = {}  # one set of masks per IMP lineage block
    for k in self.cfg.rewind_steps:
      first = self.imp_lineages.get(k, 0)
      if first not in by_first:
        by_first[first] = self._masks_from(first, tickets)
    return {k: by_first[self.imp_lineages.get(k, 0)]
            for k in self.cfg.rewind_steps}

  def _masks_from(self, first: int, tickets: list):
    """Masks [N, S]: dense, the IMP tickets ([(level, mask of every
    lineage)]) of lineages first .. first + S and their random controls."""
    ones_S = self.template.mask
    masks = [ones_S] if self.cfg.dense else []
    for level, mask in tickets:
      mask_S = jax.tree.map(lambda v: jnp.asarray(v[first:first + self.S]),
                            mask)
      try:
        masks_lib.validate(mask_S, ones_S)
      except ValueError as e:
        raise ValueError(f'IMP level {level} mask of {self.cfg.imp_run} '
                         f'does not fit this model: {e}') from e
      masks.append(mask_S)
    if tickets and self.cfg.random_masks:  # same per-layer counts, random
      masks += [jax.vmap(lambda k, m, v=int(level): instability.random_like(
          jax.random.fold_in(jax.random.fold_in(
              k, instability.RANDOM_MASK_TAG), v), m))(self.init_keys, m_S)
                for (level, _), m_S in zip(tickets, masks[-len(tickets):])]
    return jax.tree.map(lambda *ms: jnp.stack(ms), *masks)

  def check_imp_run(self) -> dict:
    """The IMP run exists, is finished far enough and shares the protocol.

    Returns {k: the IMP lineage of seed 0 whose tickets k analyses}: for a
    grid over rewind steps, seed 0 of the point rewound to k; else {}
    (lineage 0 for every k).
    """
    if not self.cfg.imp_levels:
      return {}
    run = self.cfg.imp_run
    path = os.path.join(run, 'config.json')
    if not os.path.exists(path):
      raise ValueError(f'lmc.imp_run {run!r} is not an IMP run folder (no '
                       'config.json); give <workdir>/imp-<hash>')
    imp_cfg = records_lib.read_json(path)
    if imp_cfg.get('job') != 'imp':
      raise ValueError(f'lmc.imp_run {run!r} holds a {imp_cfg.get("job")!r} '
                       'run, not an IMP run')
    grid = grid_lib.from_config(ml_collections.ConfigDict(imp_cfg))
    imp = imp_cfg.get('imp') or {}
    if grid.names and (grid.names != ('rewind_step',)
                       or imp.get('rewind') != 'step'):
      raise ValueError(
          f'lmc.imp_run {run!r} is a grid over {list(grid.names)} with '
          f"imp.rewind {imp.get('rewind')!r}; the analysis takes the masks "
          'of an IMP run of one setting, or of a grid over rewind_step '
          "alone with imp.rewind 'step' (each k analyses the tickets "
          'rewound to it)')
    steps = [p['rewind_step'] for p in grid.points] if grid.names else []
    missing = [k for k in self.cfg.rewind_steps if steps and k not in steps]
    if missing:
      raise ValueError(
          f'lmc.rewind_steps {missing} are not rewind steps of the IMP grid '
          f'{run!r}, whose tickets are rewound to {steps}; give rewind '
          'steps from those')
    mine = json.loads(json.dumps(self.folder.config.to_dict(), default=list))
    for tree in (imp_cfg, mine):  # runs from before the fields
      tree.setdefault('first_seed', 0)
      tree.setdefault('data', {}).setdefault('augment', 'none')
    diff = [f for f in _SHARED_FIELDS if _get(imp_cfg, f) != _get(mine, f)]
    if diff:
      raise ValueError(
          f'lmc.imp_run {run!r} differs from this config in {diff}; the '
          'masks only belong to this trajectory when those fields agree')
    if int(imp_cfg.get('num_seeds', 0)) < self.S:
      raise ValueError(f'lmc.imp_run {run!r} has {imp_cfg.get("num_seeds")} '
                       f'seeds but this analysis asks for {self.S}')
    ckpt = store.Checkpoints(run)
    missing = [v for v in self.cfg.imp_levels
               if not ckpt.exists(f'level_{int(v):03d}')]
    if missing:
      raise ValueError(f'IMP levels {missing} are not finished in {run!r}')
    for name in {_imp_rewind_state(k) for k in self.cfg.rewind_steps
                 if steps}:
      ckpt.check(name)  # W_k of a grid point (ValueError naming it)
    self.tickets = imp_report.describe(ml_collections.ConfigDict(imp_cfg))
    seeds = int(imp_cfg['num_seeds'])
    return {k: steps.index(k) * seeds for k in self.cfg.rewind_steps
            if steps}

  # -- work ----------------------------------------------------------------

  def parent(self) -> None:
    """Saves the dense parent's state at every rewind step (resumable).

    One `train_chunks` chunk per rewind step, no evaluation: the chunk
    lengths are the gaps between rewind steps, so a resumed parent trains
    the same programs on the same steps as one never killed. From an IMP
    grid over rewind steps: its points' saved states at their k instead.
    """
    ckpt, steps = self.folder.store, self.cfg.rewind_steps
    name = lambda k: f'rewind_k{int(k):06d}'
    if self.imp_lineages:  # each k's W_k is its IMP grid point's
      imp, states = store.Checkpoints(self.cfg.imp_run), {}
      for k in steps:
        if not ckpt.usable(name(k)):
          saved = _imp_rewind_state(k)
          if saved not in states:  # every lineage's, read once
            size = imp.leading_size(saved)
            states[saved] = imp.restore(saved, jax.tree.map(
                lambda v, n=size: np.repeat(np.asarray(v)[:1], n, 0),
                self.template))
          first = self.imp_lineages[k]
          ckpt.save(name(k), jax.tree.map(lambda v, f=first: v[f:f + self.S],
                                          states[saved]))
      return
    done = []  # the saves up to the first one missing or damaged
    for k in steps:
      if not ckpt.usable(name(k)):
        break
      done.append(k)
    if done:
      state_S = ckpt.restore(name(done[-1]), self.template)
    else:
      state_S = self.template
      if steps[0] == 0:
        ckpt.save(name(0), state_S)  # k = 0 is the init itself
    loop.train_chunks(  # `stops` end the chunks, not eval_every
        self.pieces.trainer, state_S, self.data, steps[-1], steps[-1],
        stops=steps, evaluate=False,
        on_chunk=lambda k, state: ckpt.save(name(k), state),
        desc=f'parent ({self.S} seeds)',
        show_progress=self.folder.show_progress)

  def analyse(self, k: int) -> tuple[dict, bool]:
    """Trains the copies from W_k, probes every pair.

    Returns the records of step k and whether this call computed them
    (False: they were on disk already).
    """
    name = _step_name(k)
    if self.folder.has_records(name):
      return self.folder.read_records(name), False
    ckpt = self.folder.store
    rewind_S = ckpt.restore(f'rewind_k{k:06d}', self.template)
    start_M = instability.copy_states(rewind_S, self.masks_KNS[k],
                                      self.noise_keys, self.C)
    who = [{'rewind_step': k, 'network': n, 'seed': s, 'copy': c}
           for n, s, c in self._layout()]
    total = self.pieces.train.steps
    with steps_lib.MidStage(self.folder, name,
                            self.pieces.train.checkpoint_every_s) as saves:
      state_M, evals = saves.start(start_M)
      final_M = loop.train_chunks(
          self.pieces.trainer, state_M, self.data, total,
          self.pieces.train.eval_every,
          on_eval=lambda step, per_member: evals.extend(
              records_lib.member_records(who, per_member, step=step)),
          on_chunk=saves.on_chunk(evals, total),
          desc=f'k={k} ({len(self.networks)}x{self.S}x{self.C})',
          show_progress=self.folder.show_progress)
    diverged = health.flag_diverged(evals, key=_member_key)
    records = {'evals': evals, 'pairs': self.pair_records(k, final_M,
                                                          diverged),
               'members': evals[-len(who):]}
    ckpt.save(f'copies_k{k:06d}', final_M)  # the probe's endpoints
    self.folder.write_records(name, records)
    saves.end()
    return records, True

  def pair_records(self, k: int, final_M, diverged: set) -> list[dict]:
    """One record per pair and split: its barrier and path curves; a pair
    with a diverged copy is flagged `diverged`."""
    pairs, path = self.probe_pairs(final_M)
    out = []
    for split, metrics in path.items():
      barrier = np.asarray(lmc.error_barrier(metrics['error']))
      for p, (n, s, a, b) in enumerate(pairs):
        net = self.networks[n]
        rec = {'rewind_step': k, 'network': net, 'seed': s, 'copies': [a, b],
               'split': split, 'barrier': float(barrier[p]),
               'error': np.asarray(metrics['error'][p]).tolist(),
               'loss': np.asarray(metrics['loss'][p]).tolist()}
        if {(k, net, s, a), (k, net, s, b)} & diverged:
          rec['diverged'] = True
        out.append(rec)
    return out

  def probe_pairs(self, final_M):
    """Error and loss along the path of every pair, per split: [P, A]."""
    pairs = instability.pairs(len(self.networks), self.S, self.C)
    a_P, b_P = instability.endpoints(final_M, pairs, self.S, self.C)
    split_data = {'test': (self.data.x_test, self.data.y_test),
                  'train': (self.data.x_train, self.data.y_train)}
    out = {}
    for split in self.cfg.splits:
      # Both copies of a pair share their mask, so every point of the path
      # is already masked: no mask argument needed.
      out[split] = lmc.pair_path_metrics(
          self.pieces.trainer, a_P.params, b_P.params, a_P.model_state,
          b_P.model_state, *split_data[split],
          lmc.alphas(self.cfg.num_alphas), x_stats=self.data.x_train,
          recompute_stats=self.cfg.recompute_stats,
          stats_batches=self.cfg.stats_batches)
    return pairs, jax.tree.map(np.asarray, out)

  def _layout(self):
    return [(n, s, c) for n in self.networks for s in range(self.S)
            for c in range(self.C)]

  # -- the run -------------------------------------------------------------

  def run(self) -> dict:
    self.folder.check_seeds('run of this analysis')
    summary = self.folder.done()  # a finished run needs no IMP run
    if summary is not None:
      return summary
    self.read_imp_run()  # still before any write
    self.folder.begin()
    self.parent()
    done, steps = [], self.cfg.rewind_steps
    for k in steps:
      records, fresh = self.analyse(k)
      done.append((k, records))
      if fresh or k == steps[-1]:  # outputs of earlier steps are on disk
        summary = self.write_outputs(done)
    return summary

  def write_outputs(self, done) -> dict:
    """metrics.jsonl, summary.json, report.md and plots of the steps done."""
    lines, steps = [], []
    for k, rec in done:
      lines += [dict(r, kind='eval') for r in rec['evals']]
      lines += [dict(r, kind='pair') for r in rec['pairs']]
      steps += instability.summarize_step(k, self.networks, rec['pairs'],
                                          rec['members'])
    # the first k's masks: every k's keep the same total count, fixed per
    # IMP level (not so for a grid of global channel pruning, whose points
    # may pool units otherwise: then the density is the first k's)
    density = jax.vmap(jax.vmap(masks_lib.summary))(
        self.masks_KNS[self.cfg.rewind_steps[0]])
    summary = {
        'job': 'lmc', 'run_dir': self.folder.dir,
        'finished': len(done) == len(self.cfg.rewind_steps),
        'model': self.pieces.model.name, 'dataset': self.pieces.dataset.name,
        'num_seeds': self.S, 'copies': self.C,
        'train_steps': self.pieces.train.steps,
        'alphas': np.asarray(lmc.alphas(self.cfg.num_alphas)).tolist(),
        'networks': {net: float(np.mean(density['density/total'][n]))
                     for n, net in enumerate(self.networks)},
        'imp_run': self.cfg.imp_run,
        'steps': steps,
    }
    if self.cfg.imp_levels:  # how IMP found them (its rule and rewind)
      summary['tickets'] = self.tickets
    if self.imp_lineages:  # the tickets of each k were rewound to k
      summary['tickets_per_rewind_step'] = True
    return self.folder.finish(summary, lines, final=summary['finished'])


def check(config) -> None:
  """Checks config.lmc (ValueError); `setup.build` checks the rest."""
  lmc_config(config).validate(int(config.train.steps))


def run(config: Any, workdir: str) -> dict:
  """The `lmc` job: see the module docstring."""
  return LmcRun(config, workdir).run()
