"""The IMP job: levels of prune-rewind-retrain with controls, resumable.

Order of work in `run_dir` (see WORKSPACE.md for the layout):
  1. `checkpoints/rewind_init` (step-0 state of every seed) and, for
     k > 0, `checkpoints/rewind_step` (step-k state) are saved during
     level 0;
  2. each level L ends by writing `records/level_LLL.json` (its evaluation
     records and per-member summaries) and then `checkpoints/level_LLL`
     (the ticket's final state and the random-control lineage's mask). A
     level is complete when its checkpoint exists; a killed run resumes at
     the first incomplete level (from its newest save inside the level,
     `steps.MidStage`, every `train.checkpoint_every_s` seconds) and,
     training being deterministic, ends with the same masks and metrics
     as a run that was never killed;
  3. `metrics.jsonl`, `summary.json`, `report.md` and the plots are
     regenerated from the level records after every level.
The numbers of levels and seeds stay out of the run's hash: asking for
more levels extends the same run, and asking for more seeds runs only the
new seeds as a sub-search and merges them in (`extend.py`).

With a hyperparameter grid (`ticketjax.core.grid`) the search has N = G x S
*lineages*, lineage g * S + s being seed s at grid point g: each is a
search of its own (own masks, own learning rate or pruning rate) and all
of them run in the one program of each level. Records carry the point's
values next to the seed. A grid run cannot grow to more seeds.
"""
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ticketjax.core import connectivity
from ticketjax.core import grid as grid_lib
from ticketjax.core import masks as masks_lib
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.methods.imp import core as imp_lib
from ticketjax.methods.imp import extend as imp_extend
from ticketjax.methods.imp import overlap
from ticketjax.methods.imp import report as report_lib
from ticketjax.run import health
from ticketjax.run import hosts
from ticketjax.run import lifecycle
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import steps as steps_lib
from ticketjax.run import store


def imp_config(config) -> imp_lib.ImpConfig:
  section = config.imp.to_dict()
  rates = section.get('rates', 0.2)
  section['rates'] = dict(rates) if isinstance(rates, dict) else float(rates)
  for name in ('prune_exclude', 'controls'):
    section[name] = setup_lib.tuple_field(f'imp.{name}', section.get(name, ()))
  section['control_levels'] = tuple(
      int(v) for v in section.get('control_levels', ()))
  return setup_lib.typed_section(imp_lib.ImpConfig, section, 'imp')


def _level_name(level: int) -> str:
  return f'level_{level:03d}'


@functools.partial(jax.jit, static_argnums=1)
def _first(tree, n):
  """The first n members of every leaf (one program, not one per leaf)."""
  return jax.tree.map(lambda x: x[:n], tree)


def _member_summaries(level, branches, who, evals, masks_BN, prunable):
  """Per-member summary of a level from its evaluation records.

  `who` lists {'seed': s, grid values...} of the N lineages; member i is
  lineage i % N of branch i // N.
  """
  dens = masks_lib.member_densities(masks_BN, prunable)
  out = []
  for b, branch in enumerate(branches):
    for l, lineage in enumerate(who):
      i = b * len(who) + l
      mine = [r for r in evals if r['member'] == i]
      out.append({'level': level, 'branch': branch, **lineage,
                  **health.member_stats(mine), **dens[i]})
  return out


class ImpRun:
  """Drives one IMP search in its run folder (see the module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.config = config
    self.cfg = imp_config(config)  # cheap checks first
    self.folder = lifecycle.Run(config, workdir)
    self.pieces = self.folder.setup
    check_built(config, self.pieces)
    self.grid = self.pieces.grid  # its values were range-checked in build
    self.S = self.pieces.num_seeds
    self.N = self.grid.size * self.S  # lineages: seed s of grid point g
    self.rewind_steps_N = self._rewind_steps()
    self.who = [self.grid.who(l, self.S) for l in range(self.N)]
    self.seed_keys = self.pieces.lineage_keys()
    self.init_keys, self.noise_keys = jax.vmap(train_lib.split_seed_key)(
        self.seed_keys)
    self.data = train_lib.to_device(self.pieces.dataset)
    # channels: the kept weights left reading removed units, compiled once
    # per run (not counted for a language model)
    self.live = None
    if (self.cfg.structure == 'channels'
        and self.pieces.dataset.y_train.ndim == 1):
      self.live = connectivity.member_live_density(
          self.pieces.model, self.pieces.dataset.x_train.shape[1:],
          self.cfg.prunable)
    self.quiet = False  # True: no final table (a seed extension's sub-run)

  # -- files ---------------------------------------------------------------

  @property
  def run_dir(self) -> str:
    return self.folder.dir

  @property
  def ckpt(self):
    return self.folder.store

  def records_path(self, level):
    return self.folder.records_path(_level_name(level))

  def levels_done(self) -> int:
    """Levels with a complete checkpoint, counted from level 0."""
    done = 0
    while self.ckpt.exists(_level_name(done)):
      done += 1
    return done

  # -- grid ----------------------------------------------------------------

  def _rewind_steps(self) -> np.ndarray:
    """[N] rewind step of every lineage: the grid's (range-checked in
    `grid.from_config`), else imp.rewind_step."""
    if 'rewind_step' in self.grid.names:
      return self.grid.per_lineage('rewind_step', self.S)
    return np.full(self.N, self.cfg.rewind_step, np.int32)

  def _with_hparams(self, state_M):
    """`state_M` (branch-major over the lineages) with each lineage's
    optimizer values of the grid; the identity without a grid over them."""
    names = self.grid.optimizer_names
    if not names:
      return state_M
    reps = state_M.step.shape[0] // self.N
    values = {n: np.tile(self.grid.per_lineage(n, self.S), reps)
              for n in names}
    return state_M._replace(
        opt_state=optim.set_hparams(state_M.opt_state, values))

  # -- levels --------------------------------------------------------------

  def _train_level(self, level, branches, state_BS, end_step, evals=None,
                   on_chunk=None, **chunks):
    """Trains a level's members to `end_step` (`chunks`: more arguments of
    `loop.train_chunks`); returns (final states, `evals` extended by the
    level's evaluation records)."""
    evals = [] if evals is None else evals

    def on_eval(step, per_member):
      # members still waiting for their rewind step (a rewind-step grid)
      # have not trained yet: no record
      trained = per_member.pop('trained_steps', None)
      for i in range(len(branches) * self.N):
        if trained is not None and not trained[i]:
          continue
        rec = {'level': level, 'branch': branches[i // self.N],
               **self.who[i % self.N], 'member': i, 'step': step}
        rec.update({k: float(v[i]) for k, v in per_member.items()})
        evals.append(rec)

    final_BS = loop.train_chunks(
        self.pieces.trainer, state_BS, self.data, end_step,
        self.pieces.train.eval_every, on_eval=on_eval, on_chunk=on_chunk,
        desc=f'level {level} ({len(branches)}x{self.N})',
        show_progress=self.folder.show_progress, **chunks)
    return final_BS, evals

  def _finish_level(self, level, branches, final_BS, evals, random_mask_S):
    health.flag_diverged(evals, key=lambda r: r['member'])
    summaries = _member_summaries(level, branches, self.who, evals,
                                  final_BS.mask, self.cfg.prunable)
    if self.live is not None:
      for summary, live in zip(summaries, self.live(
          final_BS.mask, final_BS.params, final_BS.model_state)):
        summary['live_density'] = float(live)
    for rec in evals:
      del rec['member']
    self.folder.write_records(_level_name(level),
                              {'evals': evals, 'summaries': summaries})
    ticket_S = _first(final_BS, self.N)
    self.ckpt.save(_level_name(level),
                   {'ticket': ticket_S, 'random_mask': random_mask_S})

  def level0(self):
    """The dense level. Chunks also end at every rewind step k (a grid's
    several), where the members rewound to k take their state into
    `checkpoints/rewind_step`; saves inside the level resume anywhere,
    before a rewind step too (that checkpoint holds the ones passed)."""
    trainer, total = self.pieces.trainer, self.pieces.train.steps
    init_S = self._with_hparams(
        trainer.init_states(self.init_keys, self.noise_keys))
    self.ckpt.save('rewind_init', init_S)
    ks = sorted({int(k) for k in self.rewind_steps_N} - {0})
    ends, start = [], 0  # the chunks of training to each k in turn
    for end in ks + [total]:
      ends += loop.chunk_ends(start, end, self.pieces.train.eval_every)
      start = end
    saves = self._saves(0)
    past = ks and saves.step() is not None and ks[0] < saves.step()
    if past and not self.ckpt.usable('rewind_step'):  # its states are gone
      saves.end()
      saves, past = self._saves(0), False
    with saves:
      state_S, evals = saves.start(init_S)
      rewind_S = (self.ckpt.restore('rewind_step', init_S) if past
                  else init_S)  # (a k not passed yet is taken when passed)

      def before_chunk(step, state_S):
        nonlocal rewind_S
        if step in ks:  # the members rewound to this step keep it
          rewind_S = train_lib.where_members(
              jnp.asarray(self.rewind_steps_N == step), state_S, rewind_S)
          saves.wait()  # one save at a time (orbax, on every process)
          self.ckpt.save('rewind_step', rewind_S)
        return state_S

      final_S, evals = self._train_level(
          0, ('ticket',), state_S, total, evals, saves.on_chunk(evals, total),
          stops=ends, before_chunk=before_chunk)
    self._finish_level(0, ('ticket',), final_S, evals, final_S.mask)
    saves.end()

  def _saves(self, level) -> steps_lib.MidStage:
    """The saves inside `level`, so a killed level resumes where it was."""
    return steps_lib.MidStage(self.folder, _level_name(level),
                              self.pieces.train.checkpoint_every_s)

  @functools.cached_property
  def _level_starts(self):
    """jit of `imp_lib.level_starts` (pruning, the controls' masks and
    every branch's start state), one compiled program per branch tuple.
    Run op by op under `vmap` (with argsorts then), one Conv-2 smoke level
    start took 39.5 s; compiled, 9.3 s, mostly compile."""
    return jax.jit(functools.partial(imp_lib.level_starts, self.cfg,
                                     self.pieces.trainer),
                   static_argnames='branches')

  def level(self, level):
    trainer, cfg = self.pieces.trainer, self.cfg
    template = trainer.init_states(self.init_keys, self.noise_keys)
    init_S = self.ckpt.restore('rewind_init', template)
    rewind_S = (self.ckpt.restore('rewind_step', template)
                if self.rewind_steps_N.any() else init_S)
    prev = self.ckpt.restore(_level_name(level - 1),
                             {'ticket': template,
                              'random_mask': template.mask})
    # a grid point's pruning rate per lineage, else the configured rates
    rates_N = (self.grid.per_lineage('pruning_rate', self.S)
               if 'pruning_rate' in self.grid.names
               else None)
    branches = cfg.branches(level)
    state_BS, random_mask_S = self._level_starts(
        jnp.int32(level), branches, init_S, rewind_S, prev['ticket'],
        prev['random_mask'], self.seed_keys, rates_N)
    state_BS = self._with_hparams(state_BS)
    first = int(np.asarray(state_BS.step)[0])
    end = (first + self.pieces.train.steps - cfg.rewind_step
           if cfg.rewind == 'finetune' else self.pieces.train.steps)
    with self._saves(level) as saves:
      state_BS, evals = saves.start(state_BS)
      final_BS, evals = self._train_level(level, branches, state_BS, end,
                                          evals, saves.on_chunk(evals, end))
    self._finish_level(level, branches, final_BS, evals, random_mask_S)
    saves.end()

  def _complete(self, levels_done: int) -> bool:
    """Whether the search has every level it will train (`imp.levels`, or
    fewer when the last ticket reached `imp.target_density`), the records
    and checkpoint of each intact (checked quietly: the levels loop reports
    and recomputes a damaged one)."""
    try:
      if not (levels_done == self.cfg.levels + 1 or (
          0 < levels_done <= self.cfg.levels and self.cfg.target_density
          and self.ticket_density(levels_done - 1)
          <= self.cfg.target_density)):
        return False
      for level in range(levels_done):
        self.folder.read_records(_level_name(level))
    except (OSError, ValueError):
      return False
    return all(store.problem(self.ckpt.path(_level_name(level))) is None
               for level in range(levels_done))

  def ticket_density(self, level) -> float:
    """The largest ticket density of `level` (the target stops a search
    once every lineage's ticket is at or below it)."""
    sums = self.folder.read_records(_level_name(level))['summaries']
    return float(np.max([r['density'] for r in sums
                         if r['branch'] == 'ticket']))

  def search(self) -> dict:
    old = self.folder.check_seeds(
        'grid search' if self.grid.names else 'search',
        extendable=not self.grid.names)
    levels_done = self.levels_done()
    # every level after 0 starts from these (level 0 writes them again):
    # damaged after level 0, nothing can recompute them
    for name in ('rewind_init', 'rewind_step') if levels_done else ():
      if self.ckpt.exists(name):
        self.ckpt.check(name)
    checked = old is None and not self.quiet and self._complete(levels_done)
    if checked:  # (`done` reports a damaged summary or metrics file)
      done = self.folder.done(lambda s: s.get('levels_done') == levels_done)
      if done is not None:
        return done
    if old is not None:
      self.folder.lock()
      # saves inside a level hold the old seed count
      hosts.on_main('dropped saves inside levels', steps_lib.remove,
                    *steps_lib.leftovers(self.folder))
      if levels_done:
        imp_extend.extend(self, old, levels_done)
    self.folder.begin()
    for name in ('summary.json', 'metrics.jsonl') if not checked else ():
      records_lib.intact(self.folder.path(name))  # rewritten below: a
      # damaged one is reported
    done = 0
    for level in range(self.cfg.levels + 1):
      if level and self.cfg.target_density and (
          self.ticket_density(level - 1) <= self.cfg.target_density):
        break
      if self.folder.stage_done(_level_name(level)):
        done = level + 1
        continue
      self.level0() if level == 0 else self.level(level)
      done = level + 1
      if level < self.cfg.levels:  # the last level's are the final ones
        self.write_outputs(done)
    return self.write_outputs(done, final=True)

  def write_outputs(self, levels_done, final=False) -> dict:
    """metrics.jsonl, summary.json, report.md and plots from the records."""
    evals, summaries = [], []
    for level in range(levels_done):
      rec = self.folder.read_records(_level_name(level))
      evals += rec['evals']
      summaries += rec['summaries']
    text = self.pieces.dataset.y_train.ndim > 1  # next-token labels
    summary = report_lib.summarize(summaries, self.grid, perplexity=text,
                                   evals=evals)
    summary.update({'job': 'imp', 'run_dir': self.run_dir,
                    'num_seeds': self.S, 'levels_done': levels_done,
                    'model': self.pieces.model.name,
                    'dataset': self.pieces.dataset.name,
                    'members': summaries})
    if self.cfg.structure != 'unstructured':  # (older summaries: none)
      summary['structure'] = self.cfg.structure
    if text:  # (image runs' summaries: no such key)
      summary['metric'] = 'perplexity'
    return self.folder.finish(summary, evals, final=final,
                              show=not self.quiet)


SEEDS = 'extend'  # more seeds run as a sub-search and are merged in
NON_SEMANTIC = ('imp.levels',)  # more levels extend the same run
report = report_lib.report  # the plug-in's report and its cross-run
series = report_lib.series  # series (`methods/registry.py`)
cross_run_section = overlap.cross_run_section  # (mask overlap of seeds)


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """'seed 1', or with a grid 'seed 1 at grid point lr=0.003' (lineage
  g * S + s), for a level or rewind checkpoint; else ''."""
  if not checkpoint.startswith(('level_', 'rewind_')):
    return ''
  spec = grid_lib.from_config(ml_collections.ConfigDict(config))
  g, s = divmod(member, int(config.get('num_seeds', 1)))
  if not spec.names:
    return f'seed {s}'
  return (f'seed {s} at grid point {spec.label(spec.points[g])}'
          if g < spec.size else '')


def check(config) -> None:
  """Checks config.imp (ValueError); `setup.build` checks the rest."""
  imp_config(config)


def check_built(config, pieces) -> None:
  """Checks config.imp against the built model and schedule (ValueError):
  rewind steps, rates and structure of the real layers."""
  params = jax.eval_shape(pieces.trainer.model.init, jax.random.PRNGKey(0))[0]
  imp_config(config).validate(
      pieces.train.steps,
      jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), params),
      final_lr_positive=pieces.optimizer.schedule != 'cosine')


def run(config: Any, workdir: str) -> dict:
  """The `imp` job: see the module docstring."""
  return ImpRun(config, workdir).search()
