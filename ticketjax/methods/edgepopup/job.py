"""The Edge-Popup job: supermasks of frozen random networks, resumable.

Two phases, each one compiled program over its members:
  edgepopup  K x S members, k-major (member i is k value i // S of seed
             i % S): scores trained on the frozen weights of seed s's
             network (`edgepopup.supermask`), every k in one program;
  dense      S members: the same architecture trained normally from the same
             init keys, the comparison line (unless
             `edgepopup.dense_baseline` is False).
Seed s uses `pieces.seed_keys()[s]` in both phases, so all k values
of a seed search the same random network and see the same data order.

Files in `run_dir` (see WORKSPACE.md):
  after every evaluation chunk of a phase, `records/<phase>_step_NNNNNN.json`
  (the phase's evaluation records so far) and then
  `checkpoints/<phase>_step_NNNNNN` (the whole TrainState of every member);
  the previous chunk's pair is deleted afterwards. A killed run resumes from
  the newest checkpoint whose records exist and, training being
  deterministic, ends with the same records as a run never killed.
  `metrics.jsonl`, `summary.json`, `report.md` and `accuracy.png` are
  regenerated after each phase; `summary.json` with `finished: true` marks
  the run done, and a rerun then only prints the table.
"""
import dataclasses
import functools
import json
import os
import re
import shutil
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods.edgepopup import core as ep
from ticketjax.run import hosts
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib

PHASES = ('edgepopup', 'dense')


def edgepopup_config(config) -> ep.EdgePopupConfig:
  """The typed, validated `config.edgepopup` section."""
  fields = sorted(f.name for f in dataclasses.fields(ep.EdgePopupConfig))
  if 'edgepopup' not in config:
    raise ValueError("job 'edgepopup' needs a config.edgepopup section "
                     f'with fields {fields}')
  section = config.edgepopup.to_dict()
  unknown = sorted(set(section) - set(fields))
  if unknown:
    raise ValueError(f'unknown fields {unknown} in config.edgepopup; valid '
                     f'fields are {fields}')
  k = section.get('k', ep.EdgePopupConfig.k)
  section['k'] = tuple(k) if isinstance(k, (list, tuple)) else (k,)
  cfg = ep.EdgePopupConfig(**section)
  cfg.validate()
  return dataclasses.replace(cfg, k=tuple(float(v) for v in cfg.k),
                             scale_fan=bool(cfg.scale_fan),
                             dense_baseline=bool(cfg.dense_baseline))


def _step_name(phase: str, step: int) -> str:
  return f'{phase}_step_{step:06d}'


class EdgePopupRun:
  """Drives one Edge-Popup search in its run folder (module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.config = config
    self.cfg = edgepopup_config(config)  # cheap checks first
    self.pieces = setup_lib.build(config)
    self.model = ep.supermask(self.pieces.model, init=self.cfg.init,
                              scale_fan=self.cfg.scale_fan,
                              default_k=self.cfg.k[0])
    params = jax.eval_shape(self.pieces.model.init, jax.random.PRNGKey(0))[0]
    if not ep.scored_subtree(params):
      raise ValueError(f'model {self.pieces.model.name!r} has no prunable '
                       'kernels for Edge-Popup to score')
    base = self.pieces.trainer
    self.trainers = {
        'edgepopup': train_lib.Trainer(
            self.model, base.optimizer, base.batch_size, base.eval_batch_size,
            member_group=base.member_group, augment=base.augment),
        'dense': base,
    }
    self.phases = PHASES if self.cfg.dense_baseline else PHASES[:1]
    self.run_dir = workdir_lib.run_dir(workdir, config)
    self.ckpt = store.Checkpoints(self.run_dir)
    self.S, self.K = self.pieces.num_seeds, len(self.cfg.k)
    self.init_keys, self.noise_keys = jax.vmap(train_lib.split_seed_key)(
        self.pieces.seed_keys())
    self.show = config.get('progress', True)

  # -- members -------------------------------------------------------------

  def members(self, phase: str) -> list[dict]:
    """Who member i of `phase` is: {'method', 'seed'[, 'k']}."""
    if phase == 'dense':
      return [{'method': 'dense', 'seed': s} for s in range(self.S)]
    return [{'method': 'edgepopup', 'k': k, 'seed': s}
            for k in self.cfg.k for s in range(self.S)]

  def init_states(self, phase: str) -> train_lib.TrainState:
    """Step-0 states of every member of `phase`, stacked."""
    return self._states(phase, self.init_keys, self.noise_keys)

  def _states(self, phase, init_keys_S, noise_keys_S):
    """Step-0 states from the seeds' keys (pure: `jax.eval_shape` works).

    Both phases start from each seed's dense init (one compiled init of the
    model): the dense network trains it, Edge-Popup takes its signs.
    """
    dense_S = self.trainers['dense'].init_states(init_keys_S, noise_keys_S)
    if phase == 'dense':
      return dense_S
    # k-major: member i is k value i // S of seed i % S
    tile = lambda x: jnp.tile(x, (self.K,) + (1,) * (x.ndim - 1))
    dense_M = jax.tree.map(tile, dense_S)
    k_M = jnp.repeat(jnp.asarray(self.cfg.k, jnp.float32), self.S)
    return self._init_members(dense_M.params, dense_M.model_state,
                              tile(init_keys_S), dense_M.key, k_M)

  @functools.cached_property
  def _init_members(self):
    """jit(vmap) of one member's step-0 Edge-Popup state."""
    trainer = self.trainers['edgepopup']

    def one(params, model_state, init_key, noise_key, k):
      scores, state = ep.supermask_state(
          params, model_state, init_key, k, init=self.cfg.init,
          scale_fan=self.cfg.scale_fan)
      return trainer.reset(scores, state, None, noise_key)

    return jax.jit(jax.vmap(one))

  @functools.cached_property
  def _kept_counts(self):
    """jit(vmap): kept weights per scored leaf of each member's mask."""
    return jax.jit(jax.vmap(lambda scores, state: jax.tree.map(
        lambda m: jnp.sum(m, dtype=jnp.int32),
        ep.subnetwork_masks(scores, state))))

  # -- files ---------------------------------------------------------------

  def _records_path(self, name: str) -> str:
    return os.path.join(self.run_dir, 'records', name + '.json')

  def _saved_steps(self, phase: str) -> list[int]:
    """Steps of `phase` with a complete checkpoint and its records."""
    pattern = re.compile(rf'^{phase}_step_(\d+)$')
    if not os.path.isdir(self.ckpt.root):
      return []
    steps = []
    for entry in os.listdir(self.ckpt.root):
      match = pattern.match(entry)
      if match and os.path.exists(self._records_path(entry)):
        steps.append(int(match.group(1)))
    return sorted(steps)

  def _save(self, phase: str, step: int, state, records: list) -> None:
    """Records, then checkpoint, of `phase` at `step`; drops older saves."""
    name = _step_name(phase, step)
    records_lib.write_json(self._records_path(name), records)
    # the checkpoints are shared by all processes: process 0 changes them
    if hosts.is_main() and os.path.isdir(self.ckpt.root):
      for entry in os.listdir(self.ckpt.root):  # a save cut by a kill
        if entry.startswith(name + '.orbax-checkpoint-tmp'):
          shutil.rmtree(os.path.join(self.ckpt.root, entry))
    hosts.barrier(f'edgepopup: before saving {name}')
    self.ckpt.save(name, state)
    self._drop_older(phase, step)
    hosts.barrier(f'edgepopup: saved {name}')

  def _drop_older(self, phase: str, step: int) -> None:
    """Deletes every save of `phase` older than `step`.

    Also what a kill can leave behind: a records file without its
    checkpoint, an orbax temporary folder of an unfinished save. Each
    process deletes its own records; process 0 the shared checkpoints.
    """
    pattern = re.compile(rf'^{phase}_step_(\d+)')
    folders = [os.path.join(self.run_dir, 'records')]
    if hosts.is_main():
      folders.append(self.ckpt.root)
    for folder in folders:
      for entry in os.listdir(folder) if os.path.isdir(folder) else ():
        match = pattern.match(entry)
        if not match or int(match.group(1)) >= step:
          continue
        path = os.path.join(folder, entry)
        if os.path.isdir(path):
          shutil.rmtree(path, ignore_errors=True)
        else:
          os.remove(path)

  def _load(self, phase: str):
    """(state, records) of the newest save of `phase`, or (None, [])."""
    steps = self._saved_steps(phase)
    if not steps:
      return None, []
    name = _step_name(phase, steps[-1])
    like = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype),
                        self._abstract_state(phase))
    state = self.ckpt.restore(name, like)
    with open(self._records_path(name), encoding='utf-8') as f:
      return state, json.load(f)

  def _abstract_state(self, phase: str):
    return jax.eval_shape(functools.partial(self._states, phase),
                          self.init_keys, self.noise_keys)

  def _check_seeds(self) -> None:
    meta_path = os.path.join(self.run_dir, 'config.json')
    if not os.path.exists(meta_path):
      return
    with open(meta_path, encoding='utf-8') as f:
      old = json.load(f).get('num_seeds')
    if old != self.S and any(self._saved_steps(p) for p in PHASES):
      raise ValueError(
          f'{self.run_dir} holds a search with {old} seeds and this config '
          f'asks for {self.S}; extending a search to more seeds is not '
          'supported: use a new workdir or the same num_seeds')

  # -- phases --------------------------------------------------------------

  def phase(self, phase: str) -> list[dict]:
    """Trains `phase` to the end (resuming); returns its records."""
    total = self.pieces.train.steps
    state, records = self._load(phase)
    if state is not None and int(np.asarray(state.step)[0]) >= total:
      return records
    if state is None:
      state = self.init_states(phase)
    members = self.members(phase)
    os.makedirs(os.path.join(self.run_dir, 'records'), exist_ok=True)

    def on_eval(step, per_member):
      for i, who in enumerate(members):
        records.append({**who, 'step': step,
                        **{k: float(v[i]) for k, v in per_member.items()}})

    loop.train_chunks(
        self.trainers[phase], state, self.data, total,
        self.pieces.train.eval_every, on_eval=on_eval,
        on_chunk=lambda step, s: self._save(phase, step, s, records),
        desc=f'{phase} ({len(members)} members)', show_progress=self.show)
    return records

  @functools.cached_property
  def data(self) -> train_lib.DeviceData:
    return train_lib.to_device(self.pieces.dataset)

  def final_densities(self) -> list[dict]:
    """Per edgepopup member: weights kept overall and per layer (fractions).

    Counted from the masks the final scores select, not from the formula.
    """
    state, _ = self._load('edgepopup')
    kept = jax.tree.map(np.asarray, self._kept_counts(state.params,
                                                      state.model_state))
    paths = masks_lib.leaf_paths(state.params)
    sizes = [x[0].size for x in jax.tree.leaves(state.params)]
    kept = jax.tree.leaves(kept)
    out = []
    for i in range(self.K * self.S):
      out.append({
          'density': sum(int(c[i]) for c in kept) / sum(sizes),
          'density_per_layer': {p: int(c[i]) / n for p, c, n in
                                zip(paths, kept, sizes)}})
    return out

  # -- the run -------------------------------------------------------------

  def _finished_summary(self):
    path = os.path.join(self.run_dir, 'summary.json')
    if not os.path.exists(path):
      return None
    with open(path, encoding='utf-8') as f:
      summary = json.load(f)
    if summary.get('finished') and summary.get('num_seeds', 0) >= self.S:
      return summary
    return None

  def run(self) -> dict:
    done = self._finished_summary()
    if done is not None:
      print(f'already done: {self.run_dir}', file=sys.stderr)
      print(table(done))
      return done
    self._check_seeds()
    os.makedirs(self.run_dir, exist_ok=True)
    records_lib.write_json(os.path.join(self.run_dir, 'config.json'),
                           self.config.to_dict())
    records = {}
    for phase in self.phases:
      records[phase] = self.phase(phase)
      last = phase == self.phases[-1]
      summary = self.write_outputs(records, final=last, show=last)
    return summary

  def write_outputs(self, records: dict, final: bool = False,
                    show: bool = False) -> dict:
    """metrics.jsonl, summary.json, report.md and accuracy.png from records."""
    path = os.path.join(self.run_dir, 'metrics.jsonl')
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      for phase in PHASES:
        for rec in records.get(phase, []):
          f.write(json.dumps(rec, sort_keys=True) + '\n')
    os.replace(path + '.tmp', path)
    summary = summarize(records, self.final_densities(), self.cfg, self.S)
    summary.update({
        'job': 'edgepopup', 'run_dir': self.run_dir, 'finished': final,
        'model': self.pieces.model.name, 'dataset': self.pieces.dataset.name,
        'model_kwargs': records_lib.to_python(
            dict(self.config.model.get('kwargs', {}))),
        'steps': self.pieces.train.steps, 'num_seeds': self.S,
        'init': self.cfg.init, 'scale_fan': self.cfg.scale_fan})
    records_lib.write_json(os.path.join(self.run_dir, 'summary.json'),
                           summary)
    text = table(summary)
    with open(os.path.join(self.run_dir, 'report.md.tmp'), 'w',
              encoding='utf-8') as f:
      f.write(text + '\n\n![accuracy](accuracy.png)\n')
    os.replace(os.path.join(self.run_dir, 'report.md.tmp'),
               os.path.join(self.run_dir, 'report.md'))
    plot(summary, os.path.join(self.run_dir, 'accuracy.png'))
    if show:
      print(text)
      print(f'results: {self.run_dir}', file=sys.stderr)
    return summary


# -- summaries, table, plot (pure functions of records) ------------------------


def _member_stats(recs: list[dict]) -> dict:
  last = max(recs, key=lambda r: r['step'])
  return {'final_test_accuracy': last['test_accuracy'],
          'final_test_loss': last['test_loss'],
          'final_train_accuracy': last['train_accuracy'],
          'best_test_accuracy': max(r['test_accuracy'] for r in recs)}


def summarize(records: dict, densities: list[dict], cfg: ep.EdgePopupConfig,
              num_seeds: int) -> dict:
  """Per k (and dense): mean ± std over seeds of the final metrics.

  Returns {'k': [{'k', 'density', 'density_per_layer', stats...}],
  'dense': {stats...} or None, 'members': [per-member summaries]}.
  """
  members = []
  for i, k in enumerate(x for x in cfg.k for _ in range(num_seeds)):
    s = i % num_seeds
    mine = [r for r in records.get('edgepopup', [])
            if r['k'] == k and r['seed'] == s]
    members.append({'method': 'edgepopup', 'k': k, 'seed': s,
                    **densities[i], **_member_stats(mine)})
  for s in range(num_seeds):
    mine = [r for r in records.get('dense', []) if r['seed'] == s]
    if mine:
      members.append({'method': 'dense', 'seed': s, 'density': 1.0,
                      **_member_stats(mine)})
  stat_names = ('final_test_accuracy', 'final_test_loss',
                'final_train_accuracy', 'best_test_accuracy')

  def aggregate(group):
    return {name: stats.mean_std([m[name] for m in group])
            for name in stat_names}

  per_k = []
  for k in cfg.k:
    group = [m for m in members if m.get('k') == k]
    layers = group[0]['density_per_layer']
    per_k.append({
        'k': k,
        'density': float(np.mean([m['density'] for m in group])),
        'density_per_layer': {
            path: float(np.mean([m['density_per_layer'][path]
                                 for m in group])) for path in layers},
        **aggregate(group)})
  dense = [m for m in members if m['method'] == 'dense']
  return {'k': per_k, 'dense': aggregate(dense) if dense else None,
          'members': members}


def _model_name(summary: dict) -> str:
  """'mnist1d_mlp(width=500)': the model and its config kwargs."""
  kwargs = summary.get('model_kwargs') or {}
  args = ', '.join(f'{k}={v}' for k, v in sorted(kwargs.items()))
  return f"{summary.get('model', '')}({args})" if args else summary.get(
      'model', '')


def table(summary: dict) -> str:
  """Markdown table: one row per k, then the dense-trained network."""
  fmt = stats.format_mean_std
  rows = []
  for entry in summary['k']:
    rows.append([f"{entry['k']:g}", f"{100 * entry['density']:.2f}",
                 fmt(entry['final_test_accuracy']),
                 fmt(entry['best_test_accuracy']),
                 fmt(entry['final_train_accuracy'])])
  dense = summary.get('dense')
  if dense:
    rows.append(['dense (trained)', '100.00',
                 fmt(dense['final_test_accuracy']),
                 fmt(dense['best_test_accuracy']),
                 fmt(dense['final_train_accuracy'])])
  title = (f'Edge-Popup {_model_name(summary)} on '
           f"{summary.get('dataset', '')}, {summary.get('init', '')} "
           f"frozen weights{', scaled fan' if summary.get('scale_fan') else ''}"
           f", {summary.get('steps', '?')} steps, "
           f"{summary.get('num_seeds', '?')} seeds (final-step accuracy, "
           'mean ± std over seeds; the k rows train no weight)')
  header = ['k (fraction kept)', 'weights kept (%)', 'test acc (%)',
            'best test acc (%)', 'train acc (%)']
  return title + '\n\n' + stats.markdown_table(header, rows)


def plot(summary: dict, path: str) -> None:
  """Test accuracy against k, seed std as error bars; dense as a band."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg', force=False)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  ks = np.array([e['k'] for e in summary['k']])
  mean = np.array([100 * e['final_test_accuracy']['mean']
                   for e in summary['k']])
  std = np.array([100 * e['final_test_accuracy']['std']
                  for e in summary['k']])
  order = np.argsort(ks)
  ax.errorbar(ks[order], mean[order], yerr=std[order], marker='o', ms=4,
              capsize=3, label='Edge-Popup (untrained weights)')
  dense = summary.get('dense')
  if dense:
    d = dense['final_test_accuracy']
    ax.axhline(100 * d['mean'], color='gray', ls='--', lw=1,
               label='dense, trained')
    ax.axhspan(100 * (d['mean'] - d['std']), 100 * (d['mean'] + d['std']),
               color='gray', alpha=0.2)
  ax.set_xlabel('k (fraction of weights kept per layer)')
  ax.set_ylabel('test accuracy (%)')
  ax.set_xlim(0, 1.02)
  ax.set_title(f"{_model_name(summary)} on {summary.get('dataset', '')}")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def check(config) -> None:
  """Checks config.edgepopup (ValueError); `setup.build` the rest."""
  edgepopup_config(config)


def run(config: Any, workdir: str) -> dict:
  """The `edgepopup` job: see the module docstring."""
  return EdgePopupRun(config, workdir).run()
