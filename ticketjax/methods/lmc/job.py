"""The `lmc` job: instability analysis over rewind steps, resumable.

Order of work in `run_dir` (WORKSPACE.md has the layout):
  1. The dense *parent* trajectory of every seed is trained once from init
     and its state at every rewind step k is saved as
     `checkpoints/rewind_kKKKKKK` (orbax; weights, optimizer state, step).
     With the IMP run's config, seed and keys it is exactly that run's
     level-0 trajectory, so W_k of an IMP rewind step is its ticket's start.
  2. For each k in order: the N networks x S seeds x C copies
     (`instability.copy_states`) train from W_k to the end in one compiled
     program per chunk; after every chunk the evaluation records go to
     `records/k_KKKKKK.partial.json` and the copies' state to
     `checkpoints/copies_kKKKKKK`, so a killed run resumes mid-step k.
     Then every pair of copies is interpolated (one program,
     `lmc.pair_path_metrics`) on each split and `records/k_KKKKKK.json` is
     written: that file marks k done. The final copies stay on disk as
     probe endpoints (`python -m launch.probe`).
  3. `metrics.jsonl`, `summary.json`, `report.md`, `barrier.png` and
     `paths.png` are regenerated from the records after every k.
Training is deterministic, so a killed and resumed run ends with the same
records as one that was never killed.
"""
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import train as train_lib
from ticketjax.methods.lmc import core as instability
from ticketjax.methods.lmc import path as lmc
from ticketjax.methods.lmc import report as lmc_report
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib

# Config fields an IMP run must share with the analysis for its masks to
# belong to this run's dense trajectory (data_dir and eval chunking aside).
_SHARED_FIELDS = ('seed', 'first_seed', 'data.name', 'data.val_size',
                  'model', 'optimizer', 'train.steps', 'train.batch_size')


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


def _step_name(k: int) -> str:
  return f'k_{k:06d}'


class LmcRun:
  """Drives one instability analysis in its run folder (module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.config = config
    self.pieces = setup_lib.build(config)
    self.cfg = lmc_config(config)
    self.cfg.validate(self.pieces.train.steps)
    self.S, self.C = self.pieces.num_seeds, int(self.cfg.copies)
    self.networks = self.cfg.networks()
    self.init_keys, self.noise_keys = jax.vmap(train_lib.split_seed_key)(
        self.pieces.seed_keys())
    self.template = self.pieces.trainer.init_states(self.init_keys,
                                                    self.noise_keys)
    self.check_imp_run()
    self.masks_NS = self._masks()  # reads the IMP run: fails before writes
    self.run_dir = workdir_lib.run_dir(workdir, config)
    self.ckpt = store.Checkpoints(self.run_dir)
    self.data = train_lib.to_device(self.pieces.dataset)
    self.show = config.get('progress', True)

  # -- inputs --------------------------------------------------------------

  def _masks(self):
    """Masks [N, S] of the analysed networks (all ones for 'dense')."""
    ones_S = self.template.mask
    masks = [ones_S] if self.cfg.dense else []
    if self.cfg.imp_levels:
      imp = store.Checkpoints(self.cfg.imp_run)
      for level in self.cfg.imp_levels:
        raw = imp.restore_raw(f'level_{int(level):03d}')
        mask_S = jax.tree.map(lambda v: jnp.asarray(v[:self.S]),
                              raw['ticket']['mask'])
        try:
          masks_lib.validate(mask_S, ones_S)
        except ValueError as e:
          raise ValueError(f'IMP level {level} mask of {self.cfg.imp_run} '
                           f'does not fit this model: {e}') from e
        masks.append(mask_S)
    return jax.tree.map(lambda *ms: jnp.stack(ms), *masks)

  def check_imp_run(self) -> None:
    """The IMP run exists, is finished far enough and shares the protocol."""
    if not self.cfg.imp_levels:
      return
    run = self.cfg.imp_run
    path = os.path.join(run, 'config.json')
    if not os.path.exists(path):
      raise ValueError(f'lmc.imp_run {run!r} is not an IMP run folder (no '
                       'config.json); give <workdir>/imp-<hash>')
    with open(path, encoding='utf-8') as f:
      imp_cfg = json.load(f)
    if imp_cfg.get('job') != 'imp':
      raise ValueError(f'lmc.imp_run {run!r} holds a {imp_cfg.get("job")!r} '
                       'run, not an IMP run')
    if any((imp_cfg.get('grid') or {}).values()):
      raise ValueError(f'lmc.imp_run {run!r} is a hyperparameter grid; the '
                       'analysis takes the masks of an IMP run of one '
                       'setting (run that setting without a grid)')
    mine = json.loads(json.dumps(self.config.to_dict(), default=list))
    for tree in (imp_cfg, mine):
      tree.setdefault('first_seed', 0)  # runs from before the field
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

  def _check_seeds(self):
    path = os.path.join(self.run_dir, 'config.json')
    if os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        old = json.load(f).get('num_seeds')
      if old != self.S and os.path.isdir(self.ckpt.root):
        raise ValueError(
            f'{self.run_dir} holds an analysis with {old} seeds and this '
            f'config asks for {self.S}; use a new workdir or num_seeds={old}')

  # -- work ----------------------------------------------------------------

  def parent(self) -> None:
    """Saves the dense parent's state at every rewind step (resumable)."""
    steps = self.cfg.rewind_steps
    names = [f'rewind_k{k:06d}' for k in steps]
    done = [i for i, name in enumerate(names) if self.ckpt.exists(name)]
    if done:
      first = done[-1] + 1
      state_S = self.ckpt.restore(names[done[-1]], self.template)
    else:
      first, state_S = 0, self.template
    for i in range(first, len(steps)):
      gap = steps[i] - int(np.asarray(state_S.step)[0])
      if gap:
        state_S, _ = self.pieces.trainer.train(state_S, self.data, gap)
      self.ckpt.save(names[i], state_S)

  def analyse(self, k: int) -> dict:
    """Trains the copies from W_k, probes every pair; returns the records."""
    final_path = self._records_path(k)
    if os.path.exists(final_path):
      with open(final_path, encoding='utf-8') as f:
        return json.load(f)
    trainer = self.pieces.trainer
    rewind_S = self.ckpt.restore(f'rewind_k{k:06d}', self.template)
    state_M = instability.copy_states(rewind_S, self.masks_NS,
                                      self.noise_keys, self.C)
    name, partial = f'copies_k{k:06d}', final_path + '.partial'
    evals = []
    if self.ckpt.exists(name):
      state_M = self.ckpt.restore(name, state_M)
      step = int(np.asarray(state_M.step)[0])
      if os.path.exists(partial):
        with open(partial, encoding='utf-8') as f:
          evals = [r for r in json.load(f) if r['step'] <= step]

    def on_eval(step, per_member):
      for i, (n, s, c) in enumerate(self._layout()):
        rec = {'rewind_step': k, 'network': n, 'seed': s, 'copy': c,
               'step': step}
        rec.update({key: float(v[i]) for key, v in per_member.items()})
        evals.append(rec)

    def on_chunk(step, state):
      del step
      records_lib.write_json(partial, evals)
      self.ckpt.save(name, state)

    final_M = loop.train_chunks(
        trainer, state_M, self.data, self.pieces.train.steps,
        self.pieces.train.eval_every, on_eval=on_eval, on_chunk=on_chunk,
        desc=f'k={k} ({len(self.networks)}x{self.S}x{self.C})',
        show_progress=self.show)
    pairs, path = self.probe_pairs(final_M)
    pair_records = []
    for split, metrics in path.items():
      barrier = np.asarray(lmc.error_barrier(metrics['error']))
      for p, (n, s, a, b) in enumerate(pairs):
        pair_records.append({
            'rewind_step': k, 'network': self.networks[n], 'seed': s,
            'copies': [a, b], 'split': split, 'barrier': float(barrier[p]),
            'error': np.asarray(metrics['error'][p]).tolist(),
            'loss': np.asarray(metrics['loss'][p]).tolist()})
    last = evals[-len(self._layout()):]
    records = {'evals': evals, 'pairs': pair_records, 'members': last}
    records_lib.write_json(final_path, records)
    if os.path.exists(partial):
      os.remove(partial)
    return records

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

  def _records_path(self, k):
    return os.path.join(self.run_dir, 'records', _step_name(k) + '.json')

  def run(self) -> dict:
    self._check_seeds()
    os.makedirs(os.path.join(self.run_dir, 'records'), exist_ok=True)
    records_lib.write_json(os.path.join(self.run_dir, 'config.json'),
                           self.config.to_dict())
    summary_path = os.path.join(self.run_dir, 'summary.json')
    if os.path.exists(summary_path):
      with open(summary_path, encoding='utf-8') as f:
        summary = json.load(f)
      if summary.get('finished'):
        print(f'already done: {self.run_dir}', file=sys.stderr)
        print(lmc_report.table(summary))
        return summary
    self.parent()
    done = []
    for k in self.cfg.rewind_steps:
      done.append((k, self.analyse(k)))
      summary = self.write_outputs(done)
    print(lmc_report.table(summary))
    print(f'results: {self.run_dir}', file=sys.stderr)
    return summary

  def write_outputs(self, done) -> dict:
    lines = []
    steps = []
    for k, rec in done:
      lines += [dict(r, kind='eval') for r in rec['evals']]
      lines += [dict(r, kind='pair') for r in rec['pairs']]
      steps += instability.summarize_step(k, self.networks, rec['pairs'],
                                          rec['members'])
    path = os.path.join(self.run_dir, 'metrics.jsonl')
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      for rec in lines:
        f.write(json.dumps(rec, sort_keys=True) + '\n')
    os.replace(path + '.tmp', path)
    density = jax.vmap(jax.vmap(masks_lib.summary))(self.masks_NS)
    summary = {
        'job': 'lmc', 'run_dir': self.run_dir,
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
    records_lib.write_json(os.path.join(self.run_dir, 'summary.json'),
                           summary)
    lmc_report.write_report(self.run_dir, summary)
    return summary


def check(config) -> None:
  """Checks config.lmc (ValueError); `setup.build` checks the rest."""
  lmc_config(config).validate(int(config.train.steps))


def run(config: Any, workdir: str) -> dict:
  """The `lmc` job: see the module docstring."""
  return LmcRun(config, workdir).run()
