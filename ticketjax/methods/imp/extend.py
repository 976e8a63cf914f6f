"""Extending a finished or partial IMP search to more seeds, in place.

Seeds are independent searches and seed s's keys do not depend on the seed
count (`train.seed_keys`), so asking an IMP run with S_old seeds for S_new
runs only the new seeds [S_old, S_new): as a search of their own
(`first_seed` shifted by S_old) in `<run_dir>/extend/seeds_<old>_<new>/`,
through the levels the run has finished. Then, level by level, their
records and checkpoints are appended to the run's (seed indices shifted
by S_old), `config.json` takes the new seed count and the sub-run's folder
is removed. The old seeds' numbers are never recomputed, so they stay
bitwise what they were (retraining them in a wider vmap would only agree to
float rounding). The new seeds' numbers, for the same reason, agree with a
fresh run of S_new seeds only to float rounding, which training can grow
into points of accuracy (a 2-seed MNIST-1D run grown to 3: up to 4.8
points for seed 2); with `train.member_group=1` in both runs every member
trains in a program of one width and they agree but for the last bits.

Every step can be killed and rerun: the sub-run resumes like any IMP run;
a level counts as merged when its records hold S_new seeds; a merged
checkpoint is written beside the old one and swapped in by two renames
(`level_LLL` -> `level_LLL.old`, merged -> `level_LLL`) before the level's
records; a rerun finishes a swap cut between the renames and skips a
checkpoint that already holds S_new members.

With several processes (`ticketjax.run.hosts`) process 0 writes the merged
records, all save the merged checkpoints together, and process 0 alone
renames and deletes in the shared folders while the others wait
(`hosts.barrier`).
"""
import os
import shutil
import sys

import jax
import jax.numpy as jnp

from ticketjax.core import train as train_lib
from ticketjax.run import hosts
from ticketjax.run import records as records_lib
from ticketjax.run import store


def _seeds_in(records_path: str) -> int:
  return len({r['seed']
              for r in records_lib.read_json(records_path)['summaries']})


def _rename_in(ckpt: store.Checkpoints, name: str, merged_path: str):
  """Replaces checkpoint `name` by the folder `merged_path` (two renames)."""
  old = ckpt.path(name) + '.old'
  if os.path.isdir(ckpt.path(name)):
    if os.path.isdir(old):
      shutil.rmtree(old)
    os.rename(ckpt.path(name), old)
  os.rename(merged_path, ckpt.path(name))
  shutil.rmtree(old, ignore_errors=True)


def _finish_cut_swaps(ckpt: store.Checkpoints, sub_ckpt):
  """Completes swaps killed between their two renames (run on process 0)."""
  if not os.path.isdir(ckpt.root):
    return
  for entry in os.listdir(ckpt.root):
    if entry.endswith('.old'):
      name = entry[:-len('.old')]
      merged = sub_ckpt.path('merged_' + name)
      if not ckpt.exists(name) and os.path.isdir(merged):
        _rename_in(ckpt, name, merged)
      elif ckpt.exists(name):
        shutil.rmtree(ckpt.path(entry))


def extend(run, old: int, levels_done: int) -> None:
  """Grows `run` (an `imp_run.ImpRun` for S_new seeds) from `old` seeds,
  saying so on stderr."""
  new = run.S
  if hosts.is_main():
    print(f'extending the search in {run.run_dir} from {old} to {new} '
          'seeds: only the new seeds train. The old seeds keep their '
          'numbers bit for bit; the new ones train in a program of another '
          f'width than a fresh {new}-seed run, whose float rounding '
          'training can grow into points of accuracy (with '
          'train.member_group=1 in both they agree but for the last bits)',
          file=sys.stderr)
  sub_dir = os.path.join(run.run_dir, 'extend', f'seeds_{old}_{new}')
  sub_ckpt = store.Checkpoints(sub_dir)
  hosts.on_main('imp_extend: cut swaps finished', _finish_cut_swaps,
                run.ckpt, sub_ckpt)
  config = run.config.copy_and_resolve_references()
  with config.unlocked():
    config.first_seed = run.pieces.first_seed + old
    config.num_seeds = new - old
    config.imp.levels = levels_done - 1
    config.imp.target_density = 0.0  # exactly the levels the run has
  sub = type(run)(config, os.path.dirname(run.run_dir))
  sub.folder.dir, sub.folder.store, sub.quiet = sub_dir, sub_ckpt, True
  sub.search()

  trainer = run.pieces.trainer
  keys = jax.vmap(train_lib.split_seed_key)(run.seed_keys)
  like_old = trainer.init_states(keys[0][:old], keys[1][:old])
  like_new = trainer.init_states(keys[0][old:], keys[1][old:])

  def merge(name, like=lambda ref: ref):
    """Checkpoint `name` of the old seeds then the new ones, saved beside
    the run's and swapped in by process 0 (`_rename_in`); every process
    returns once it is done."""
    sub_ckpt.save('merged_' + name, jax.tree.map(
        lambda x, y: jnp.concatenate([x, y]),
        run.ckpt.restore(name, like(like_old)),
        sub_ckpt.restore(name, like(like_new))))
    hosts.on_main(f'imp_extend: swapped in {name}', _rename_in, run.ckpt,
                  name, sub_ckpt.path('merged_' + name))

  names = ['rewind_init'] + (['rewind_step'] if run.rewind_steps_N.any()
                             else [])
  for name in names:
    if run.ckpt.leading_size(name) == old:
      merge(name)

  for level in range(levels_done):
    name = f'level_{level:03d}'
    path, sub_path = run.records_path(level), sub.records_path(level)
    if _seeds_in(path) == new:
      continue
    mine, theirs = records_lib.read_json(path), records_lib.read_json(sub_path)
    for rec in theirs['evals'] + theirs['summaries']:
      rec['seed'] += old
    order = {b: i for i, b in enumerate(run.cfg.branches(level))}
    merged_records = {
        'evals': mine['evals'] + theirs['evals'],
        'summaries': sorted(mine['summaries'] + theirs['summaries'],
                            key=lambda r: (order[r['branch']], r['seed']))}
    if run.ckpt.leading_size(name) == old:  # else swapped before a kill
      merge(name, lambda ref: {'ticket': ref, 'random_mask': ref.mask})
    records_lib.write_json(path, merged_records)  # marks the level merged
  config_path = os.path.join(run.run_dir, 'config.json')
  records_lib.write_json(config_path, run.config.to_dict())
  # all processes are done with the sub-run's files before process 0
  # deletes them
  hosts.barrier('imp_extend: merged')
  hosts.on_main('imp_extend: sub-run removed', shutil.rmtree,
                os.path.join(run.run_dir, 'extend'))
