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
An Edge-Popup state's `params` are the scores, its `model_state` holds
the frozen weights and k, and its `mask` is all True (what may be
scored): the subnetwork keeps each layer's top fraction k of its scores
(`ep.subnetwork_masks`).

The run folder, its lifecycle and each phase's training are
`lifecycle.Run`'s (`train_stage`): a phase ends by writing
`records/<phase>.json` (its evaluation records and member summaries) and
then `checkpoints/<phase>` (the final states), and saves inside itself
every `train.checkpoint_every_s` seconds, so a killed run resumes where
it was and, training being deterministic, ends with the same records as
a run never killed. `metrics.jsonl`, `summary.json`, `report.md`, `accuracy.png`
and `curves.png` are written after each phase; `summary.json` with
`finished: true` marks the run done, and a rerun then only prints the
table (rewriting a missing report or plot first).
"""
import dataclasses
import functools
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import train as train_lib
from ticketjax.methods.edgepopup import core as ep
from ticketjax.methods.edgepopup import report as report_lib
from ticketjax.run import hosts
from ticketjax.run import lifecycle
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib

# more seeds would be a new K x S program over every k: a new workdir
SEEDS = 'refuse'
NON_SEMANTIC = ()
# the search's params are scores, its weights frozen in the model state
# (`launch.weights` and `launch.probe` refuse it); `dense` holds weights
WRAPPED_CHECKPOINTS = {'edgepopup': 'scores over frozen weights'}
report = report_lib.report  # the plug-in's report and its cross-run
series = report_lib.series  # series (`methods/registry.py`)
PHASES = ('edgepopup', 'dense')


def member_label(config: dict, checkpoint: str, member: int) -> str:
  """'dense, seed 1' for member `member` of the `dense` phase (its
  `edgepopup` phase holds scores, which the probe refuses); else ''."""
  S = int(config['num_seeds'])
  return (f'dense, seed {member}' if checkpoint == 'dense'
          and 0 <= member < S else '')


def edgepopup_config(config) -> ep.EdgePopupConfig:
  """The typed, validated `config.edgepopup` section."""
  cfg = setup_lib.method_section(config, 'edgepopup', ep.EdgePopupConfig,
                                 floats=('k',))
  cfg.validate()
  return dataclasses.replace(cfg, scale_fan=bool(cfg.scale_fan),
                             dense_baseline=bool(cfg.dense_baseline))


class EdgePopupRun:
  """Drives one Edge-Popup search in its run folder (module docstring)."""

  def __init__(self, config: Any, workdir: str):
    self.cfg = edgepopup_config(config)  # cheap checks first
    self.folder = lifecycle.Run(config, workdir)
    self.pieces = self.folder.setup
    self.model = ep.supermask(self.pieces.model, init=self.cfg.init,
                              scale_fan=self.cfg.scale_fan,
                              default_k=self.cfg.k[0])
    check_built(config, self.pieces)
    base = self.pieces.trainer
    self.trainers = {
        'edgepopup': train_lib.Trainer(
            self.model, base.optimizer, base.batch_size, base.eval_batch_size,
            member_group=base.member_group, augment=base.augment),
        'dense': base,
    }
    self.phases = PHASES if self.cfg.dense_baseline else PHASES[:1]
    self.S, self.K = self.pieces.num_seeds, len(self.cfg.k)
    self.init_keys, self.noise_keys = jax.vmap(train_lib.split_seed_key)(
        self.pieces.seed_keys())

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

  # -- the run -------------------------------------------------------------

  def phase(self, phase: str) -> dict:
    """Trains `phase` unless it is done (`Run.train_stage`); returns its
    records. A phase of an older run folder, whose records are a list
    (before the phases were stages, 2026-12), is trained again."""
    records = (self.folder.read_records(phase)
               if self.folder.stage_done(phase) else None)
    if isinstance(records, list) and hosts.is_main():
      print(f'{self.folder.records_path(phase)} is of an older layout: '
            f'training {phase} again', file=sys.stderr)
    if not isinstance(records, dict):
      members = self.members(phase)
      self.folder.train_stage(
          phase, self.trainers[phase], self.init_states(phase), members,
          None, desc=f'{phase} ({len(members)} members)',
          extras=(self._densities if phase == 'edgepopup'
                  else lambda _: [{'density': 1.0}] * self.S))
      records = self.folder.read_records(phase)
    return records

  def final_state(self) -> train_lib.TrainState:
    """The edgepopup phase's final states (its checkpoint)."""
    return self.folder.store.restore('edgepopup',
                                     self.init_states('edgepopup'))

  def _densities(self, state) -> list[dict]:
    """Per edgepopup member: weights kept overall and per layer (fractions),
    counted from the masks its scores select, not from the formula."""
    kept = jax.tree.map(np.asarray, self._kept_counts(state.params,
                                                      state.model_state))
    paths = masks_lib.leaf_paths(state.params)
    sizes = [x[0].size for x in jax.tree.leaves(state.params)]
    kept = jax.tree.leaves(kept)
    return [{'density': sum(int(c[i]) for c in kept) / sum(sizes),
             'density_per_layer': {p: int(c[i]) / n for p, c, n in
                                   zip(paths, kept, sizes)}}
            for i in range(self.K * self.S)]

  def run(self) -> dict:
    done = self.folder.start('search')
    if done is not None:
      return done
    records = {}
    for phase in self.phases:
      records[phase] = self.phase(phase)
      summary = self.write_outputs(
          records, final=phase == self.phases[-1] and not self.cfg.controls)
    if self.cfg.controls:
      records['controls'] = self.controls()
      summary = self.write_outputs(records, final=True)
    return summary

  def controls(self) -> list[dict]:
    """Evaluation records of the sanity checks of the final supermasks
    (`records/controls.json`; `core.control`), computed once."""
    if self.folder.has_records('controls'):
      return self.folder.read_records('controls')
    step, state = self.pieces.train.steps, self.final_state()
    tile = lambda x: jnp.tile(x, (self.K,) + (1,) * (x.ndim - 1))
    keys_M = tile(self.init_keys)
    fresh = self._states(
        'edgepopup', jax.vmap(lambda k: jax.random.fold_in(
            k, ep.REINIT_TAG))(self.init_keys), self.noise_keys)
    out = []
    for name in self.cfg.controls:
      scores, model_state = jax.jit(jax.vmap(functools.partial(
          ep.control, name)))(state.params, state.model_state, keys_M,
                              fresh.model_state)
      ev = loop.evaluate_splits(
          self.trainers['edgepopup'],
          state._replace(params=scores, model_state=model_state),
          self.folder.data)
      out += records_lib.member_records(
          [{**w, 'branch': name} for w in self.members('edgepopup')], ev,
          step=step)
    self.folder.write_records('controls', out)
    return out

  def write_outputs(self, records: dict, final: bool = False) -> dict:
    """metrics.jsonl, summary.json, report.md and plots from records
    (diverged members flagged by `Run.train_stage`)."""
    lines = [r for phase in PHASES for r in records.get(phase, {}).get(
        'evals', [])] + records.get('controls', [])
    summary = report_lib.summarize(records, self.cfg.k)
    summary.update({
        'job': 'edgepopup', 'run_dir': self.folder.dir, 'finished': final,
        'model': self.pieces.model.name, 'dataset': self.pieces.dataset.name,
        'model_kwargs': records_lib.to_python(
            dict(self.folder.config.model.get('kwargs', {}))),
        'steps': self.pieces.train.steps, 'num_seeds': self.S,
        'init': self.cfg.init, 'scale_fan': self.cfg.scale_fan})
    return self.folder.finish(summary, lines, final=final)


def check(config) -> None:
  """Checks config.edgepopup (ValueError); `setup.build` the rest."""
  edgepopup_config(config)


def check_built(config, pieces) -> None:
  """Checks the built model (ValueError): Edge-Popup needs kernels to
  score."""
  del config  # its section is checked by `check`
  params = jax.eval_shape(pieces.model.init, jax.random.PRNGKey(0))[0]
  if not ep.scored_subtree(params):
    raise ValueError(f'model {pieces.model.name!r} has no prunable kernels '
                     'for Edge-Popup to score')


def run(config: Any, workdir: str) -> dict:
  """The `edgepopup` job: see the module docstring."""
  return EdgePopupRun(config, workdir).run()
