"""The CS job: a vmapped lambda sweep of Continuous Sparsification, resumable.

Members are (lambda, seed) pairs, lambda-major on the member axis: member
i has lambda = cs.lambdas[i // S] and seed i % S, and every lambda of a seed
starts from the same init and data order. All members run in one compiled
program per stage. Order of work in `run_dir`:
  1. round 0 saves `checkpoints/rewind` (the search state after
     `rewind_epoch` epochs); every round R ends by writing
     `records/round_RR.json` and then `checkpoints/round_RR`; a round starts
     from the rewind weights, the previous round's logits reset to
     min(beta * s, s_init), beta = 1 and a fresh optimizer;
  2. the ticket (hard mask s > 0 of the last round, weights rewound to the
     rewind point) is retrained with the plain trainer to `train.steps`
     (`records/ticket.json`, `checkpoints/ticket`), evaluated like an IMP
     level;
  3. `metrics.jsonl`, `summary.json`, `report.md` and `accuracy.png`.
A killed run resumes at the first stage whose checkpoint is missing and
ends with the same records as an uninterrupted run.
"""
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.cs import core as cs_lib
from ticketjax.run import loop
from ticketjax.run import progress as progress_lib
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib


def cs_config(config) -> cs_lib.CsConfig:
  section = config.cs.to_dict()
  fields = {f.name for f in cs_lib.dataclasses.fields(cs_lib.CsConfig)}
  unknown = sorted(set(section) - fields)
  if unknown:
    raise ValueError(f'unknown fields {unknown} in config.cs; valid fields '
                     f'are {sorted(fields)}')
  for name in ('lambdas', 'prune_exclude'):
    if name in section:
      value = section[name]
      section[name] = tuple(value) if isinstance(value, (list, tuple)) else (
          value,)
  section['lambdas'] = tuple(float(v) for v in section.get('lambdas', ()))
  cfg = cs_lib.CsConfig(**section)
  cfg.validate()
  return cfg


def _round_name(r: int) -> str:
  return f'round_{r:02d}'


class CsRun:
  """Drives one CS lambda sweep in its run folder (module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.config = config
    self.cfg = cs_config(config)
    self.pieces = p = setup_lib.build(config)
    self.S, self.L = p.num_seeds, len(self.cfg.lambdas)
    self.M = self.S * self.L
    self.spe = p.dataset.x_train.shape[0] // p.train.batch_size
    self.round_steps = self.cfg.epochs_per_round * self.spe
    self.rewind_step = self.cfg.rewind_epoch * self.spe
    if self.rewind_step >= p.train.steps:
      raise ValueError(
          f'cs.rewind_epoch {self.cfg.rewind_epoch} is step '
          f'{self.rewind_step}, not before train.steps = {p.train.steps}')
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
    self.run_dir = workdir_lib.run_dir(
        workdir, config, extra_non_semantic=('cs.compare_imp',))
    self.ckpt = store.Checkpoints(self.run_dir)
    seed_keys = p.seed_keys()
    init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(seed_keys)
    self.init_keys = jnp.tile(init_keys, (self.L, 1))
    self.noise_keys = jnp.tile(noise_keys, (self.L, 1))
    self.lams = jnp.repeat(jnp.asarray(self.cfg.lambdas, jnp.float32),
                           self.S)
    self.data = train_lib.to_device(p.dataset)
    self.show = config.get('progress', True)

  def _member(self, i: int) -> dict:
    return {'lambda': self.cfg.lambdas[i // self.S], 'seed': i % self.S}

  def _path(self, name: str) -> str:
    return os.path.join(self.run_dir, 'records', name + '.json')

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
    prev = self.ckpt.restore(_round_name(r - 1), template)
    rewind = self.ckpt.restore('rewind', template)
    logits = jax.vmap(lambda s, b: cs_lib.next_round_logits(
        s, b, self.cfg.s_init))(prev.params['logits'],
                                prev.model_state['beta'])
    params = {'weights': rewind.params['weights'], 'logits': logits}
    ms = dict(rewind.model_state, lam=self.lams)
    step = r * self.round_steps
    return jax.vmap(lambda p, m, k: self.search.reset(p, m, None, k, step))(
        params, ms, self.noise_keys)

  def run_round(self, r: int) -> None:
    cfg = self.cfg
    state_M = self._round_start(r)
    bar = progress_lib.Progress(cfg.epochs_per_round,
                                f'cs round {r} ({self.L}x{self.S})',
                                enabled=self.show)
    train_loss = None
    for epoch in range(cfg.epochs_per_round):
      if r == 0 and epoch == cfg.rewind_epoch:
        self.ckpt.save('rewind', state_M)
      beta = cs_lib.beta_at(epoch, cfg.epochs_per_round, cfg.beta_max)
      state_M, m = self.search.train(self._with_beta(state_M, beta),
                                     self.data, self.spe)
      train_loss = np.asarray(m['loss'].mean(0))
      bar.update(epoch + 1, beta=beta, loss=float(train_loss.mean()))
    ev = loop.evaluate_splits(self.search, state_M, self.data)
    dens = jax.vmap(lambda m: masks_lib.summary(m, cfg.prunable))(
        self._hard_masks(state_M))
    records = []
    for i in range(self.M):
      rec = {'stage': _round_name(r), 'round': r, **self._member(i),
             'beta': float(state_M.model_state['beta'][i]),
             'train_loss': float(train_loss[i]),
             'density': float(dens['density/total'][i])}
      rec.update({f'soft_{k}': float(v[i]) for k, v in ev.items()})
      records.append(rec)
    os.makedirs(os.path.dirname(self._path('x')), exist_ok=True)
    records_lib.write_json(self._path(_round_name(r)), {'evals': records})
    self.ckpt.save(_round_name(r), state_M)

  def run_ticket(self) -> None:
    cfg, trainer = self.cfg, self.pieces.trainer
    template = self._template()
    last = self.ckpt.restore(_round_name(cfg.rounds - 1), template)
    rewind = self.ckpt.restore('rewind', template)
    mask_M = self._hard_masks(last)
    weights = rewind.params['weights']
    if cfg.hard_mask_scale:
      c = cs_lib.scale(cfg.s_init)
      flags = masks_lib.prunable_tree(jax.tree.map(lambda x: x[0], weights),
                                      cfg.prunable)
      weights = jax.tree.map(lambda w, f: w * c if f else w, weights, flags)
    state_M = jax.vmap(lambda w, ms, m, k: trainer.reset(
        w, ms, m, k, self.rewind_step))(
            weights, rewind.model_state['inner'], mask_M, self.noise_keys)
    evals = []

    def on_eval(step, per_member):
      for i in range(self.M):
        rec = {'stage': 'ticket', **self._member(i), 'step': step}
        rec.update({k: float(v[i]) for k, v in per_member.items()})
        evals.append(rec)

    final_M = loop.train_chunks(
        trainer, state_M, self.data, self.pieces.train.steps,
        self.pieces.train.eval_every, on_eval=on_eval,
        desc=f'cs ticket ({self.L}x{self.S})', show_progress=self.show)
    dens = jax.tree.map(np.asarray, jax.vmap(
        lambda m: masks_lib.summary(m, cfg.prunable))(final_M.mask))
    members = []
    for i in range(self.M):
      mine = [r for r in evals if r['lambda'] == self._member(i)['lambda']
              and r['seed'] == i % self.S]
      rec = {**self._member(i),
             'final_test_accuracy': mine[-1]['test_accuracy'],
             'final_test_loss': mine[-1]['test_loss'],
             'best_test_accuracy': max(r['test_accuracy'] for r in mine),
             'density': float(dens['density/total'][i]),
             'density_per_layer': {
                 k[len('density/'):]: float(v[i]) for k, v in dens.items()
                 if k.startswith('density/') and k != 'density/total'}}
      if 'val_loss' in mine[-1]:
        best = min(mine, key=lambda r: r['val_loss'])
        rec['early_stop_step'] = best['step']
        rec['early_stop_test_accuracy'] = best['test_accuracy']
      members.append(rec)
    records_lib.write_json(self._path('ticket'),
                           {'evals': evals, 'members': members})
    self.ckpt.save('ticket', final_M)

  # -- driver ----------------------------------------------------------

  def _check_seeds(self) -> None:
    path = os.path.join(self.run_dir, 'config.json')
    if not (os.path.exists(path) and self.ckpt.exists('rewind')):
      return
    with open(path, encoding='utf-8') as f:
      old = json.load(f).get('num_seeds')
    if old != self.S:
      raise ValueError(
          f'{self.run_dir} holds a CS search with {old} seeds and this '
          f'config asks for {self.S}; extending a search to more seeds is '
          'not supported: use a new workdir or the same num_seeds')

  def run(self) -> dict:
    self._check_seeds()
    os.makedirs(self.run_dir, exist_ok=True)
    records_lib.write_json(os.path.join(self.run_dir, 'config.json'),
                           self.config.to_dict())
    for r in range(self.cfg.rounds):
      if not self.ckpt.exists(_round_name(r)):
        self.run_round(r)
    if not self.ckpt.exists('ticket'):
      self.run_ticket()
    return self.write_outputs()

  def step_counts(self) -> dict:
    """Sequential steps (the longest chain) and steps over all members."""
    seq = (self.cfg.rounds * self.round_steps + self.pieces.train.steps
           - self.rewind_step)
    return {'sequential_steps': seq, 'member_steps': seq * self.M}

  def write_outputs(self) -> dict:
    evals = []
    for r in range(self.cfg.rounds):
      with open(self._path(_round_name(r)), encoding='utf-8') as f:
        evals += json.load(f)['evals']
    with open(self._path('ticket'), encoding='utf-8') as f:
      ticket = json.load(f)
    evals += ticket['evals']
    with open(os.path.join(self.run_dir, 'metrics.jsonl'), 'w',
              encoding='utf-8') as f:
      for rec in evals:
        f.write(json.dumps(rec, sort_keys=True) + '\n')
    summary = {'job': 'cs', 'run_dir': self.run_dir, 'num_seeds': self.S,
               'lambdas': list(self.cfg.lambdas),
               'model': self.pieces.model.name,
               'dataset': self.pieces.dataset.name,
               **self.step_counts(),
               'by_lambda': summarize(ticket['members'], self.cfg.lambdas),
               'members': ticket['members']}
    imp = load_imp_summary(self.cfg.compare_imp)
    records_lib.write_json(os.path.join(self.run_dir, 'summary.json'),
                           summary)
    text = table(summary)
    with open(os.path.join(self.run_dir, 'report.md'), 'w',
              encoding='utf-8') as f:
      f.write(f"# CS lambda sweep: {summary['model']} on "
              f"{summary['dataset']}\n\n{text}\n\n![accuracy](accuracy.png)\n")
    plot(summary, imp, os.path.join(self.run_dir, 'accuracy.png'))
    print(text)
    print(f'results: {self.run_dir}', file=sys.stderr)
    return summary


def summarize(members: list[dict], lambdas) -> list[dict]:
  """Mean ± std over seeds of each lambda's ticket."""
  out = []
  for lam in lambdas:
    recs = [r for r in members if r['lambda'] == lam]
    out.append({
        'lambda': lam,
        'density': stats.mean_std([r['density'] for r in recs]),
        'final_test_accuracy': stats.mean_std(
            [r['final_test_accuracy'] for r in recs]),
        'best_test_accuracy': stats.mean_std(
            [r['best_test_accuracy'] for r in recs])})
  return out


def table(summary: dict) -> str:
  rows = [[f"{e['lambda']:g}",
           stats.format_mean_std(e['density']),
           stats.format_mean_std(e['final_test_accuracy'])]
          for e in summary['by_lambda']]
  steps = (f"\n\nsequential training steps: {summary['sequential_steps']}; "
           f"over all {len(summary['members'])} members: "
           f"{summary['member_steps']}")
  return stats.markdown_table(
      ['lambda', 'weights remaining (%)', 'ticket test acc (%)'],
      rows) + steps


def load_imp_summary(path: str) -> dict | None:
  """An IMP run's summary.json (path of the file or its run folder)."""
  if not path:
    return None
  if os.path.isdir(path):
    path = os.path.join(path, 'summary.json')
  if not os.path.exists(path):
    print(f'warning: cs.compare_imp {path} not found; plotting CS alone',
          file=sys.stderr)
    return None
  with open(path, encoding='utf-8') as f:
    summary = json.load(f)
  if 'points' in summary:
    print(f'warning: cs.compare_imp {path} is a hyperparameter grid; '
          'plotting CS alone', file=sys.stderr)
    return None
  return summary


def plot(summary: dict, imp: dict | None, path: str) -> None:
  """Ticket test accuracy against weights remaining, CS next to IMP."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  e = summary['by_lambda']
  ax.errorbar([100 * x['density']['mean'] for x in e],
              [100 * x['final_test_accuracy']['mean'] for x in e],
              xerr=[100 * x['density']['std'] for x in e],
              yerr=[100 * x['final_test_accuracy']['std'] for x in e],
              fmt='o', capsize=3, label='CS tickets (one per lambda)')
  if imp is not None:
    levels = [lv for lv in imp['levels'] if 'ticket' in lv]
    d = np.array([100 * lv['ticket']['density'] for lv in levels])
    m = np.array([100 * lv['ticket']['final_test_accuracy']['mean']
                  for lv in levels])
    s = np.array([100 * lv['ticket']['final_test_accuracy']['std']
                  for lv in levels])
    ax.plot(d, m, '-s', ms=3, label='IMP tickets')
    ax.fill_between(d, m - s, m + s, alpha=0.2)
    ax.axhline(m[0], color='gray', ls='--', lw=1, label='dense (IMP level 0)')
  ax.set_xscale('log')
  ax.invert_xaxis()
  ax.set_xlabel('weights remaining (%)')
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(f"{summary['model']} on {summary['dataset']}")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def check(config) -> None:
  """Checks config.cs (ValueError); `setup.build` checks the rest."""
  cs_config(config)


def run(config: Any, workdir: str) -> dict:
  """The `cs` job: see the module docstring."""
  return CsRun(config, workdir).run()
