"""The CS job: a vmapped lambda sweep of Continuous Sparsification, resumable.

Members are (lambda, seed) pairs, lambda-major on the member axis: member
i has lambda = cs.lambdas[i // S] and seed i % S, and every lambda of a seed
starts from the same init and data order. All members run in one compiled
program per stage. `lifecycle.Run` owns the run folder, its lock,
`config.json` and every write; the stages are:
  1. search rounds: each epoch is one chunk of `loop.train_chunks`, whose
     `before_chunk` sets that epoch's beta (and, in round 0, saves
     `checkpoints/rewind`, the search state after `rewind_epoch` epochs);
     every round R ends by writing `records/round_RR.json` and then
     `checkpoints/round_RR`, and saves inside itself every
     `train.checkpoint_every_s` seconds (`steps.MidStage`); a round starts
     from the rewind weights, the previous round's logits reset to
     min(beta * s, s_init), beta = 1 and a fresh optimizer;
  2. the ticket (hard mask s > 0 of the last round, weights rewound to the
     rewind point) is retrained with the plain trainer to `train.steps`
     (`records/ticket.json`, `checkpoints/ticket`), evaluated like an IMP
     level; a member whose training loss turns non-finite or explodes is
     flagged 'diverged' in its records and member summary
     (`health.flag_diverged`) and left out of its lambda's means; a
     ticket with a prunable layer at density 0 (`density_per_layer`) is
     counted as collapsed;
  3. `metrics.jsonl`, `summary.json`, `report.md` and `accuracy.png`
     (`report.py`).
A killed run resumes at the first stage whose checkpoint is missing, from
its newest save inside the stage if it has one, and ends with the same
records as an uninterrupted run. A finished run, run again, prints its
table as already done and redraws only a missing report or plot (or the
plot, when `cs.compare_imp` changed).
"""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import train as train_lib
from ticketjax.methods.cs import core as cs_lib
from ticketjax.methods.cs import report as report_lib
from ticketjax.run import lifecycle
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import steps as steps_lib

# More seeds are refused: members are lambda-major, so new seeds would need
# a search of their own merged member by member (not implemented).
SEEDS = 'refuse'
NON_SEMANTIC = ('cs.compare_imp',)  # only the plot reads it
# the search's checkpoints hold params {weights, logits} (`launch.weights`
# and `launch.probe` refuse them); `ticket` holds plain weights
WRAPPED_CHECKPOINTS = {'rewind': 'mask logits beside the weights',
                       'round_': 'mask logits beside the weights'}
report = report_lib.report  # the plug-in's report and its cross-run
series = report_lib.series  # series (`methods/registry.py`)
cross_run_section = report_lib.cross_run_section


def cs_config(config) -> cs_lib.CsConfig:
  cfg = setup_lib.method_section(config, 'cs', cs_lib.CsConfig,
                                 tuples=('prune_exclude', 'controls'),
                                 floats=('lambdas',))
  cfg.validate()
  return cfg


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """Who member `member` of `ticket` is: 'ticket of lambda 1e-05, seed 1'
  (lambda-major, then seed; branch-major first with controls, 'shuffle of
  lambda ...'); else ''."""
  cfg = cs_config(ml_collections.ConfigDict(config))
  S = int(config['num_seeds'])
  who = [(b, lam, s) for b in ('ticket',) + tuple(cfg.controls)
         for lam in cfg.lambdas for s in range(S)]
  if checkpoint != 'ticket' or not 0 <= member < len(who):
    return ''
  b, lam, s = who[member]
  return f'{b} of lambda {lam:g}, seed {s}'


def _round_name(r: int) -> str:
  return f'round_{r:02d}'


class _KeepsLoss:
  """The search trainer, keeping the last chunk's mean loss per member.

  The round records hold XLA's mean over the epoch's steps (`jnp.mean`),
  as they always have. `loop.train_means` takes numpy's mean, which
  differs in the last bit (XLA sums in its own order and multiplies by
  1/T), so the records take their loss from here instead.
  """

  def __init__(self, trainer):
    self.trainer = trainer
    self.loss = None

  def train(self, state, data, num_steps):
    state, metrics = self.trainer.train(state, data, num_steps)
    self.loss = metrics['loss'].mean(0)
    return state, metrics


class CsRun:
  """Drives one CS lambda sweep in its run folder (module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.cfg = cs_config(config)  # cheap checks before the data loads
    self.folder = lifecycle.Run(config, workdir)
    self.pieces = p = self.folder.setup
    self.S, self.L = p.num_seeds, len(self.cfg.lambdas)
    self.M = self.S * self.L
    self.spe = p.dataset.x_train.shape[0] // p.train.batch_size
    self.round_steps = self.cfg.epochs_per_round * self.spe
    self.rewind_step = self.cfg.rewind_epoch * self.spe
    check_built(config, p)
    self.search = train_lib.Trainer(
        cs_lib.wrap_model(p.model, self.cfg),
        cs_lib.make_optimizer(p.optimizer, self.round_steps,
                              self.cfg.mask_learning_rate,
                              self.cfg.mask_optimizer),
        batch_size=p.train.batch_size,
        eval_batch_size=p.train.eval_batch_size,
        member_group=p.train.member_group,
        penalty=cs_lib.make_penalty(self.cfg),
        augment=p.trainer.augment)
    init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
        p.seed_keys())
    self.init_keys = jnp.tile(init_keys, (self.L, 1))
    self.noise_keys = jnp.tile(noise_keys, (self.L, 1))
    self.lams = jnp.repeat(jnp.asarray(self.cfg.lambdas, jnp.float32),
                           self.S)
    self.data = self.folder.data
    # lambda-major: member i is lambda i // S of seed i % S
    self.who = [{'lambda': lam, 'seed': s} for lam in self.cfg.lambdas
                for s in range(self.S)]

  def _template(self):
    return self.search.init_states(self.init_keys, self.noise_keys)

  def _with_beta(self, state_M, beta):
    ms = dict(state_M.model_state)
    ms['beta'] = jnp.full((self.M,), beta, jnp.float32)
    return state_M._replace(model_state=ms)

  def _hard_masks(self, state_M):
    return jax.vmap(lambda p: cs_lib.hard_mask(
        p['logits'], p['weights'], self.cfg.prunable))(state_M.params)

  # -- stages ----------------------------------------------------------

  def _round_start(self, r: int):
    template = self._template()
    if r == 0:
      ms = dict(template.model_state, lam=self.lams)
      return template._replace(model_state=ms)
    prev = self.folder.store.restore(_round_name(r - 1), template)
    rewind = self.folder.store.restore('rewind', template)
    logits = jax.vmap(lambda s, b: cs_lib.next_round_logits(
        s, b, self.cfg.s_init))(prev.params['logits'],
                                prev.model_state['beta'])
    params = {'weights': rewind.params['weights'], 'logits': logits}
    ms = dict(rewind.model_state, lam=self.lams)
    step = r * self.round_steps
    return jax.vmap(lambda p, m, k: self.search.reset(p, m, None, k, step))(
        params, ms, self.noise_keys)

  def run_round(self, r: int) -> None:
    """Search round r: one chunk per epoch, each at its own beta, saved
    every `train.checkpoint_every_s` seconds (`steps.MidStage`)."""
    cfg, first = self.cfg, r * self.round_steps
    end = first + self.round_steps
    search = _KeepsLoss(self.search)

    with steps_lib.MidStage(self.folder, _round_name(r),
                            self.pieces.train.checkpoint_every_s) as saves:

      def before_chunk(step, state_M):
        if r == 0 and step == self.rewind_step:
          saves.wait()  # one save at a time (orbax, on every process)
          self.folder.store.save('rewind', state_M)
        epoch = (step - first) // self.spe
        return self._with_beta(state_M, cs_lib.beta_at(
            epoch, cfg.epochs_per_round, cfg.beta_max))

      start_M, _ = saves.start(self._round_start(r))  # (no records)
      state_M = loop.train_chunks(
          search, start_M, self.data, end, self.spe,
          before_chunk=before_chunk, evaluate=False,
          on_chunk=saves.on_chunk([], end),
          desc=f'cs round {r} ({self.L}x{self.S})',
          show_progress=self.folder.show_progress)
    train_loss = np.asarray(search.loss)
    ev = loop.evaluate_splits(self.search, state_M, self.data)
    dens = jax.vmap(lambda m: masks_lib.summary(m, cfg.prunable))(
        self._hard_masks(state_M))
    records = records_lib.member_records(
        self.who, {'beta': state_M.model_state['beta'],
                   'train_loss': train_loss,
                   'density': dens['density/total'],
                   **{f'soft_{k}': v for k, v in ev.items()}},
        stage=_round_name(r), round=r)
    self.folder.write_records(_round_name(r), {'evals': records})
    self.folder.store.save(_round_name(r), state_M)
    saves.end()

  def run_ticket(self) -> None:
    cfg, trainer = self.cfg, self.pieces.trainer
    template = self._template()
    last = self.folder.store.restore(_round_name(cfg.rounds - 1), template)
    rewind = self.folder.store.restore('rewind', template)
    mask_M = self._hard_masks(last)
    weights = rewind.params['weights']
    flags = masks_lib.prunable_tree(jax.tree.map(lambda x: x[0], weights),
                                    cfg.prunable)
    scale = (lambda w: jax.tree.map(
        lambda x, f: x * cs_lib.scale(cfg.s_init) if f else x, w, flags)
             ) if cfg.hard_mask_scale else (lambda w: w)
    reset = jax.vmap(lambda w, ms, m, k: trainer.reset(
        w, ms, m, k, self.rewind_step))
    inner = rewind.model_state['inner']
    def start(mask, weights=weights, model_state=inner):
      return reset(scale(weights), model_state, mask, self.noise_keys)

    state_M = start(mask_M)
    who = self.who
    if cfg.controls:  # branch-major: the tickets, then each control
      states = [state_M] + [self._control(c, mask_M, last, start)
                            for c in cfg.controls]
      state_M = jax.tree.map(lambda *xs: jnp.concatenate(xs), *states)
      who = [{'branch': b, **w} for b in ('original',) + cfg.controls
             for w in self.who]
    self.folder.train_stage(
        'ticket', trainer, state_M, who, cfg.prunable,
        desc=f'cs ticket ({len(who)} members)', train_accuracy=False,
        stage='ticket')

  def _control(self, name, mask_M, last, start):
    """The start states of control branch `name` (see `CsConfig`)."""
    cfg = self.cfg
    tagged = lambda tag: jax.vmap(lambda k: jax.random.fold_in(k, tag))(
        self.init_keys)
    if name == 'shuffle':
      return start(jax.vmap(lambda k, m: pruning.shuffle(
          k, m, cfg.prunable))(tagged(cs_lib.SHUFFLE_TAG), mask_M))
    if name == 'invert':
      def invert(logits, m):
        counts = masks_lib.counts(m, cfg.prunable)['kept']
        scores = jax.tree.map(  # unprunable leaves hold a scalar logit
            lambda s, x: -s if s.shape == x.shape else jnp.zeros(x.shape),
            logits, m)
        return pruning.keep_counts(scores, masks_lib.ones_like(m), counts,
                                   cfg.prunable)
      return start(jax.vmap(invert)(last.params['logits'], mask_M))
    fresh = self.pieces.trainer.init_states(tagged(cs_lib.REINIT_TAG),
                                            self.noise_keys)
    return start(mask_M, fresh.params, fresh.model_state)

  # -- driver ----------------------------------------------------------

  def run(self) -> dict:
    done = self.folder.start('CS search')
    if done is not None:
      return done
    for r in range(self.cfg.rounds):
      if not self.folder.stage_done(_round_name(r)):
        self.run_round(r)
    if not self.folder.stage_done('ticket'):
      self.run_ticket()
    return self.write_outputs()

  def step_counts(self) -> dict:
    """Sequential steps (the longest chain) and steps over all members."""
    seq = (self.cfg.rounds * self.round_steps + self.pieces.train.steps
           - self.rewind_step)
    return {'sequential_steps': seq, 'member_steps': seq * self.M}

  def write_outputs(self) -> dict:
    """metrics.jsonl, summary.json, report.md and the plot, from records."""
    evals = []
    for r in range(self.cfg.rounds):
      evals += self.folder.read_records(_round_name(r))['evals']
    ticket = self.folder.read_records('ticket')
    summary = {'job': 'cs', 'run_dir': self.folder.dir, 'num_seeds': self.S,
               'lambdas': list(self.cfg.lambdas),
               'model': self.pieces.model.name,
               'dataset': self.pieces.dataset.name,
               **self.step_counts(),
               'by_lambda': report_lib.summarize(ticket['members'],
                                             self.cfg.lambdas),
               'members': ticket['members']}
    return self.folder.finish(summary, evals + ticket['evals'])


def check(config) -> None:
  """Checks config.cs (ValueError); `setup.build` checks the rest."""
  cs_config(config)


def check_built(config, pieces) -> None:
  """Checks config.cs against the built data and schedule (ValueError):
  the rewind epoch ends before training does."""
  cfg = cs_config(config)
  step = cfg.rewind_epoch * (pieces.dataset.x_train.shape[0]
                             // pieces.train.batch_size)
  if step >= pieces.train.steps:
    raise ValueError(f'cs.rewind_epoch {cfg.rewind_epoch} is step {step}, '
                     f'not before train.steps = {pieces.train.steps}')


def run(config: Any, workdir: str) -> dict:
  """The `cs` job: see the module docstring."""
  return CsRun(config, workdir).run()  # jobs.run releases the lock
