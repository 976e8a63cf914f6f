"""Damaged checkpoints: found, named, and recomputed where they can be.

`run/store.py` seals each complete checkpoint with the sha256 of its files;
a stage checkpoint that is missing a file, emptied, truncated or bit-flipped
is recomputed on the rerun (the same bytes as a run never damaged), and one
that cannot be recomputed is refused with one error naming it, nothing
else changed.
"""
import importlib
import os
from typing import NamedTuple

import numpy as np
import pytest

from configs import imp_mlp_mnist1d
from ticketjax.run import jobs
from ticketjax.run import lock
from ticketjax.run import store

import testlib


def _tree():
  return {'w': np.arange(12, dtype=np.float32).reshape(3, 4),
          'step': np.array([5, 5, 5], np.int32)}


def _empty(path):
  open(path, 'wb').close()


def _damage_sums(path):
  folder = os.path.dirname(path)
  with open(os.path.join(folder, store.SUMS), 'w') as f:
    f.write('{"cut')


@pytest.mark.parametrize('damage,match', [
    (testlib.flip_a_bit, 'sha256 differs'), (testlib.truncate_half, 'sha256 differs'),
    (_empty, 'sha256 differs'), (os.remove, 'is missing'),
    (_damage_sums, 'checksum list'),
])
def test_a_damaged_checkpoint_is_named_and_refused(tmp_path, capsys, damage,
                                                    match):
  ckpt = store.Checkpoints(str(tmp_path))
  ckpt.save('a', _tree())
  assert store.problem(ckpt.path('a')) is None and ckpt.usable('a')
  damage(testlib.largest_file(ckpt.path('a')))
  assert match in store.problem(ckpt.path('a'))
  with pytest.raises(ValueError, match=rf"checkpoint {ckpt.path('a')} "
                     f'cannot be used: .*{match}'):
    ckpt.restore('a', _tree())
  assert not ckpt.usable('a')  # a stage checkpoint is recomputed instead
  assert 'is damaged' in capsys.readouterr().err
  ckpt.save('a', _tree())  # the recomputed save replaces it
  np.testing.assert_array_equal(ckpt.restore('a', _tree())['w'], _tree()['w'])


def test_a_checkpoint_of_other_shapes_is_refused(tmp_path):
  ckpt = store.Checkpoints(str(tmp_path))
  ckpt.save('a', _tree())
  other = dict(_tree(), w=np.zeros((3, 5), np.float32))
  # orbax alone would restore it padded or cut, without a word
  with pytest.raises(ValueError, match=r'holds w as float32\[3, 4\], but '
                     r'this run needs float32\[3, 5\]'):
    ckpt.restore('a', other)
  with pytest.raises(ValueError, match=r'holds step as int32\[3\]'):
    ckpt.restore('a', dict(_tree(), step=np.zeros(3, np.float32)))


def test_a_checkpoint_saved_before_checksums_is_restored(tmp_path):
  ckpt = store.Checkpoints(str(tmp_path))
  ckpt.save('a', _tree())
  os.remove(os.path.join(ckpt.path('a'), store.SUMS))
  assert ckpt.usable('a')
  np.testing.assert_array_equal(ckpt.restore('a', _tree())['w'], _tree()['w'])


def _outputs(run_dir):
  return {k: v for k, v in testlib.file_hashes(run_dir).items()
          if not k.startswith('checkpoints')}


def test_imp_recomputes_a_damaged_level_to_the_same_bytes(tmp_path, capsys):
  config = imp_mlp_mnist1d.get_config('smoke')
  config.progress = False
  summary = jobs.run(config, str(tmp_path))
  run_dir = summary['run_dir']
  before = _outputs(run_dir)
  testlib.flip_a_bit(testlib.largest_file(os.path.join(run_dir, 'checkpoints/level_001')))
  assert jobs.run(config, str(tmp_path)) == summary
  err = capsys.readouterr().err
  assert 'level_001 is damaged' in err and 'recomputing it' in err
  assert _outputs(run_dir) == before  # records, metrics, summary, report
  assert store.problem(os.path.join(run_dir, 'checkpoints/level_001')) is None
  # level 1 starts from the init: with the init damaged too, nothing can
  # recompute it: one error naming the init, and no file changes
  testlib.flip_a_bit(testlib.largest_file(os.path.join(run_dir, 'checkpoints/level_001')))
  testlib.truncate_half(testlib.largest_file(os.path.join(run_dir, 'checkpoints/rewind_init')))
  damaged = testlib.file_hashes(run_dir)
  with pytest.raises(ValueError, match=r'checkpoints/rewind_init cannot be '
                     'used: its file .* sha256 differs'):
    jobs.run(config, str(tmp_path))
  lock.release_all()
  assert testlib.file_hashes(run_dir) == damaged


class _State(NamedTuple):
  params: dict
  step: np.ndarray


def test_a_named_tuple_state_is_checked_field_by_field(tmp_path):
  """A NamedTuple state (orbax's metadata holds it as a dict) is compared
  leaf by leaf; a mismatch names the leaf."""
  state = _State({'dense': {'kernel': np.zeros((2, 3, 4), np.float32)}},
                 np.zeros(2, np.int32))
  ckpt = store.Checkpoints(str(tmp_path))
  ckpt.save('s', state)
  bad = state._replace(params={'dense': {'kernel': np.zeros((2, 3, 5),
                                                              np.float32)}})
  with pytest.raises(ValueError, match='holds params/dense/kernel'):
    ckpt.restore('s', bad)
  assert ckpt.restore('s', state).step.shape == (2,)


# (config module, a stage checkpoint, a stage's records) of every job
JOBS = {
    'dense': ('dense_mnist1d', 'final', 'train'),
    'imp': ('imp_mlp_mnist1d', 'level_001', 'level_001'),
    'cs': ('cs_mnist1d', 'ticket', 'ticket'),
    'pai': ('pai_mnist1d', 'final', 'train'),
    'edgepopup': ('edgepopup_mnist1d', 'edgepopup', 'dense'),
    'lmc': ('lmc_mnist1d', 'rewind_k000030', 'k_000030'),
}


def _cut(path):
  testlib.truncate_half(path)


def _garble(path):
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{"not json\n')


def _first_line(path):  # still JSON lines: the sha256 sum finds it
  with open(path, encoding='utf-8') as f:
    first = f.readline()
  with open(path, 'w', encoding='utf-8') as f:
    f.write(first)


def _empty(path):
  open(path, 'w').close()


@pytest.mark.parametrize('job', sorted(JOBS))
def test_every_job_recomputes_damaged_files_to_the_same_bytes(
    job, tmp_path, capsys):
  module, checkpoint, records = JOBS[job]
  config = importlib.import_module(f'configs.{module}').get_config('smoke')
  config.progress = False
  summary = jobs.run(config, str(tmp_path))
  run_dir = summary['run_dir']
  before = _outputs(run_dir)
  damages = [(_cut, 'summary.json'), (_garble, 'metrics.jsonl'),
             (_first_line, 'metrics.jsonl'), (_empty, 'metrics.jsonl')]
  if records:  # an attempt cut before its summary, with a stage damaged
    damages += [(_cut, f'records/{records}.json'),
                (testlib.flip_a_bit, f'checkpoints/{checkpoint}')]
  for damage, name in damages:
    path = os.path.join(run_dir, name)
    damage(testlib.largest_file(path) if os.path.isdir(path) else path)
    if name.startswith(('records', 'checkpoints')):
      os.remove(os.path.join(run_dir, 'summary.json'))
    capsys.readouterr()
    assert jobs.run(config, str(tmp_path)) == summary, name
    lock.release_all()
    err = capsys.readouterr().err
    assert 'is damaged' in err and 'recomputing it' in err, (name, err)
    assert err.count('recomputing it') == 1, (name, err)  # said once
    assert _outputs(run_dir) == before, name
