"""The run lifecycle every method shares (`run/lifecycle.py`)."""
import fcntl
import glob
import importlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import types

import pytest

import golden_lib
import testlib

from configs import dense_mnist1d
from configs import pai_mnist1d
from ticketjax.run import jobs
from ticketjax.run import health
from ticketjax.run import lifecycle
from ticketjax.run import lock
from ticketjax.run import records
from ticketjax.run import workdir as workdir_lib
from ticketjax.run import steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HOLD = '''
import sys, time
from configs import dense_mnist1d
from ticketjax.run import lifecycle
config = dense_mnist1d.get_config('smoke')
lifecycle.Run(config, sys.argv[1]).begin()
print('locked', flush=True)
time.sleep(600)
'''


def _smoke(seeds=2):
  config = dense_mnist1d.get_config(f'smoke,seeds={seeds}')
  config.progress = False
  return config


def test_a_second_process_is_refused_and_a_killed_holder_blocks_nothing(
    tmp_path):
  holder = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    while holder.stdout.readline().strip() != 'locked':  # TFDS may print
      assert holder.poll() is None, 'the lock holder died'
    with pytest.raises(ValueError, match=rf'in use by process {holder.pid}'):
      jobs.run(_smoke(), str(tmp_path))
    assert not (tmp_path / os.listdir(tmp_path)[0] / 'summary.json').exists()
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # the kernel dropped the dead holder's lock: the run goes through
  summary = jobs.run(_smoke(), str(tmp_path))
  assert summary['num_seeds'] == 2
  again = jobs.run(_smoke(), str(tmp_path))  # same process, lock released
  assert again == summary


def test_seed_policies(tmp_path):
  config = _smoke()
  run = lifecycle.Run(config, str(tmp_path))
  assert run.check_seeds(policy='refuse') is None  # a new folder takes any count
  run.begin()
  records.write_json(run.path('summary.json'), {})  # work was done
  for policy in lifecycle.SEED_POLICIES:  # the same count resumes
    assert run.check_seeds(policy=policy) is None
  more = lifecycle.Run(_smoke(seeds=3), str(tmp_path))
  assert more.dir == run.dir
  assert more.check_seeds(policy='extend') == 2
  with pytest.raises(ValueError, match='cannot grow to more seeds: ask for '
                     'num_seeds=2'):
    more.check_seeds('grid search', extendable=False, policy='extend')
  assert more.check_seeds(policy='rerun') is None
  with pytest.raises(ValueError, match='cannot grow'):
    more.check_seeds(policy='refuse')
  fewer = lifecycle.Run(_smoke(seeds=1), str(tmp_path))
  for policy in lifecycle.SEED_POLICIES:
    with pytest.raises(ValueError, match='holds a run with 2 seeds.*'
                       'num_seeds=2'):
      fewer.check_seeds(policy=policy)
  with pytest.raises(ValueError, match="unknown seed policy 'grow'"):
    fewer.check_seeds(policy='grow')
  lock.release_all()


def test_flag_diverged_marks_a_member_from_its_first_bad_record():
  recs = [{'m': 0, 'train_loss': 2.0}, {'m': 1, 'train_loss': 2.0},
          {'m': 0, 'train_loss': 1.0}, {'m': 1, 'train_loss': 3e3},
          {'m': 0, 'train_loss': 0.5}, {'m': 1, 'train_loss': 1.0}]
  assert health.flag_diverged(recs, key=lambda r: r['m']) == {1}
  assert [r.get('diverged', False) for r in recs] == [
      False, False, False, True, False, True]
  nan = [{'m': 0, 'train_loss': math.nan}]
  assert health.flag_diverged(nan, key=lambda r: r['m']) == {0}
  # exploded before its first record (lr 1e3: 6e11 at the first evaluation)
  early = [{'m': 0, 'train_loss': 6e11}, {'m': 0, 'train_loss': 1e9},
           {'m': 1, 'train_loss': 2.3}, {'m': 1, 'train_loss': 1.1}]
  assert health.flag_diverged(early, key=lambda r: r['m']) == {0}


def test_member_stats_aggregate_and_the_health_cell():
  recs = [{'step': 10, 'test_accuracy': 0.5, 'test_loss': 1.0,
           'train_accuracy': 0.6, 'val_loss': 0.9},
          {'step': 20, 'test_accuracy': 0.4, 'test_loss': 1.2,
           'train_accuracy': 0.7, 'val_loss': 1.1}]
  stats = health.member_stats(recs)
  assert stats == {'final_test_accuracy': 0.4, 'final_test_loss': 1.2,
                   'best_test_accuracy': 0.5, 'final_train_accuracy': 0.7,
                   'early_stop_step': 10, 'early_stop_test_accuracy': 0.5}
  members = [{'x': 1.0}, {'x': 3.0}, {'x': 100.0, 'diverged': True}]
  agg = health.aggregate(members, ('x', 'absent'))
  assert agg['x']['mean'] == 2.0 and agg['x']['n'] == 2
  assert 'absent' not in agg and (agg['diverged'], agg['members']) == (1, 3)
  assert 'diverged' not in health.aggregate(members[:2], ('x',))
  # the table cell: counts out of the entry's members, else the seeds
  assert health.column(agg) == 'diverged 1/3'
  assert health.column({'diverged': 2}, 4) == 'diverged 2/4'
  assert health.column({'diverged': 1, 'members': 3, 'collapsed': 2}, 3,
                       collapsed=' (an empty layer)') == (
                           'diverged 1/3, collapsed 2/3 (an empty layer)')
  assert health.column(health.aggregate(members[:2], ('x',)), 2) == 'ok'


def test_json_is_strict_and_damage_is_named(tmp_path):
  path = str(tmp_path / 'a.json')
  records.write_json(path, {'bad': math.nan, 'inf': [math.inf, 1.0]})
  def no_constants(name):
    raise ValueError(name)
  assert json.loads(open(path).read(), parse_constant=no_constants) == {
      'bad': None, 'inf': [None, 1.0]}
  with open(path, 'w') as f:
    f.write('{"cut": [1, 2')
  with pytest.raises(ValueError, match=r'a\.json is damaged \(not valid JSON'):
    records.read_json(path)
  assert open(path).read() == '{"cut": [1, 2'  # reading changed nothing


def test_bad_workdirs_fail_before_anything_is_written(tmp_path):
  afile = tmp_path / 'a_file'
  afile.write_text('x')
  locked = tmp_path / 'locked'
  locked.mkdir()
  deep = os.path.join(tmp_path, 'new', *['d' * 200] * 20)  # > 4,096 - 256
  for workdir, match in ((afile, 'is a file'),
                         (afile / 'below', 'lies below the file'),
                         ('', 'the workdir is empty'),
                         (tmp_path / 'new' / ('x' * 300),
                          'a name in it is 300 bytes, longer than'),
                         (deep, 'bytes long; a run writes paths up'),
                         ('/proc/ticketjax_test',  # a folder no one creates
                          'not writable|cannot create the run folder')):
    with pytest.raises(ValueError, match=match):
      jobs.run(_smoke(), str(workdir))
  assert sorted(os.listdir(tmp_path)) == ['a_file', 'locked']
  if os.geteuid() != 0:  # root writes anywhere
    locked.chmod(0o500)
    with pytest.raises(ValueError, match='not writable'):
      jobs.run(_smoke(), str(locked / 'w'))
  assert sorted(os.listdir(tmp_path)) == ['a_file', 'locked']
  assert afile.read_text() == 'x' and not os.listdir(locked)


def test_a_run_folder_is_never_reused_for_another_config(tmp_path):
  summary = jobs.run(_smoke(), str(tmp_path))
  run_dir = summary['run_dir']
  config_path = os.path.join(run_dir, 'config.json')
  stored = json.load(open(config_path))
  stored['optimizer']['learning_rate'] = 0.5  # another config's folder
  records.write_json(config_path, stored)
  before = testlib.file_hashes(run_dir)  # every file under it
  with pytest.raises(ValueError, match=r"config of another run \(it "
                     r"differs in \['optimizer'\]\)"):
    jobs.run(_smoke(), str(tmp_path))
  assert testlib.file_hashes(run_dir) == before
  # a workdir that is itself a run folder
  with pytest.raises(ValueError, match='is a run folder'):
    jobs.run(_smoke(), run_dir)


@pytest.mark.parametrize('job,module', [
    ('dense', 'dense_mnist1d'), ('imp', 'imp_mlp_mnist1d'),
    ('cs', 'cs_mnist1d'), ('pai', 'pai_mnist1d'),
    ('edgepopup', 'edgepopup_mnist1d'), ('lmc', 'lmc_mnist1d')])
def test_every_job_refuses_a_folder_another_process_writes(job, module,
                                                           tmp_path):
  config = importlib.import_module(f'configs.{module}').get_config('smoke')
  assert config.job == job
  run_dir = lifecycle.Run(config, str(tmp_path)).dir
  os.makedirs(run_dir)
  # flock treats two opens of one file as two holders, even in one process
  with open(os.path.join(run_dir, '.lock'), 'a+', encoding='utf-8') as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.write('process 4242 on elsewhere\n')
    f.flush()
    with pytest.raises(ValueError, match=f'{run_dir} is in use by process '
                       '4242 on elsewhere; one process writes a run folder'):
      jobs.run(config, str(tmp_path))
  assert os.listdir(run_dir) == ['.lock']  # nothing else was written


def test_a_refused_process_waits_for_the_holder_to_name_itself(tmp_path):
  # the holder writes its line just after it locks: a second process
  # that comes in between waits for the line rather than naming no one
  with open(tmp_path / '.lock', 'a+', encoding='utf-8') as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    later = threading.Timer(0.2, lambda: (f.write('process 7 on here\n'),
                                          f.flush()))
    later.start()
    with pytest.raises(ValueError, match='is in use by process 7 on here;'):
      lock.take(str(tmp_path))
    later.join()


def test_a_killed_holders_line_names_no_one(tmp_path):
  # a killed run leaves its line; a new holder that has locked but not
  # yet written is not named by it
  gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  dead = f'process {gone.stdout.strip()} on {socket.gethostname()}\n'
  (tmp_path / '.lock').write_text(dead)
  with open(tmp_path / '.lock', 'a+', encoding='utf-8') as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(ValueError, match='is in use by another process;'):
      lock.take(str(tmp_path))
  # a holder that returns empties its line
  lock.take(str(tmp_path))
  assert (tmp_path / '.lock').read_text().startswith(f'process {os.getpid()}')
  lock.release_all()
  assert (tmp_path / '.lock').read_text() == ''


@pytest.mark.parametrize('module', [
    'dense_mnist1d', 'imp_mlp_mnist1d', 'cs_mnist1d', 'pai_mnist1d',
    'edgepopup_mnist1d'])
def test_two_processes_at_once_one_runs_and_the_other_is_refused(
    module, tmp_path):
  """Both launched on one workdir together: one runs, the other is refused
  (or, if it got there after the end, finds the run done); the results are
  a lone run's (the golden smoke outputs). Two forked children of the
  launch pool when the session shares a compile cache (no imports to pay),
  else two launcher processes. (LMC takes the same lock in the same
  `Run.begin`, tested above; its race cost 20 s of the suite.)"""
  args = [f'--config=configs/{module}.py:smoke', f'--workdir={tmp_path}']
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):  # the pool's environment
    import launch_pool  # pylint: disable=g-import-not-at-top
    results = launch_pool.run_together('main', [args, args], REPO)
  else:
    procs = [subprocess.Popen([sys.executable, '-m', 'launch.main', *args],
                              cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    results = [types.SimpleNamespace(returncode=p.returncode, stderr=err)
               for p, (_, err) in zip(procs, outs)]
  returned = [r.returncode for r in results]
  codes = sorted(returned)
  errs = [r.stderr for r in results]
  assert codes in ([0, 2], [0, 0]), errs
  loser = errs[returned.index(codes[-1])] if (
      codes == [0, 2]) else next(e for e in errs if 'already done' in e)
  assert ('is in use by process' in loser  # (`test_every_job_...`)
          or 'already done' in loser), errs
  (run_dir,) = glob.glob(str(tmp_path / '*'))
  golden_lib.check(f'{module}.smoke', run_dir)


def test_mid_run_outputs_redraw_plots_at_most_every_redraw_s(tmp_path,
                                                             monkeypatch):
  """`finish(final=False)` rewrites records, summary and report but draws
  the plots only once `REDRAW_S` has passed; the final call always draws."""
  summary = jobs.run(_smoke(), str(tmp_path))
  lines = records.read_jsonl(os.path.join(summary['run_dir'],
                                          'metrics.jsonl'))
  run = lifecycle.Run(_smoke(), str(tmp_path))
  run.begin()
  plot = run.path('curves.png')
  os.remove(plot)
  run.finish(summary, lines, final=False)
  assert not os.path.exists(plot)
  report = open(run.path('report.md'), encoding='utf-8').read()
  assert 'curves.png' not in report and summary['run_dir'] in open(
      run.path('summary.json'), encoding='utf-8').read()
  monkeypatch.setattr(lifecycle, 'REDRAW_S', 0.0)
  run.finish(summary, lines, final=False)
  assert os.path.getsize(plot) > 0
  assert '![curves](curves.png)' in open(run.path('report.md'),
                                         encoding='utf-8').read()
  monkeypatch.setattr(lifecycle, 'REDRAW_S', 1e9)
  os.remove(plot)
  run.finish(summary, lines, final=True, show=False)
  assert os.path.getsize(plot) > 0
  lock.release_all()


def test_a_stage_killed_mid_way_resumes_from_its_newest_save(tmp_path,
                                                             monkeypatch):
  """`train_stage` with `train.checkpoint_every_s=0` saves after every
  chunk but the last; a run stopped right after the step-20 save trains
  only steps 20-40 when run again, ends with the bytes of a run never
  stopped, and removes its saves and their records (and so does the
  finish of a run killed before it removed them)."""

  def config(every_s):
    c = pai_mnist1d.get_config('smoke')  # 40 steps, chunks of 20
    c.train.checkpoint_every_s = every_s
    c.progress = False
    return c

  straight = jobs.run(config(600.0), str(tmp_path / 'straight'))
  testlib.run_until_save(config(0.0), str(tmp_path / 'killed'), monkeypatch)
  (run_dir,) = glob.glob(str(tmp_path / 'killed' / 'pai-*'))
  assert os.listdir(os.path.join(run_dir, 'checkpoints', 'train.steps')) == [
      '20']
  partial = records.read_json(
      os.path.join(run_dir, 'records', 'train.partial.json'))
  assert {r['step'] for r in partial} == {20}
  trained = testlib.count_training(monkeypatch)
  resumed = jobs.run(config(0.0), str(tmp_path / 'killed'))
  assert trained == [20]  # from the step-20 save to the end
  assert resumed['members'] == straight['members']
  metrics = lambda s: open(os.path.join(s['run_dir'], 'metrics.jsonl')).read()
  assert metrics(resumed) == metrics(straight)
  assert not os.path.exists(os.path.join(run_dir, 'checkpoints',
                                         'train.steps'))
  assert not os.path.exists(os.path.join(run_dir, 'records',
                                         'train.partial.json'))
  # killed after the stage's checkpoint, before its saves were removed and
  # the run finished: the rerun trains nothing and removes them
  os.makedirs(os.path.join(run_dir, 'checkpoints', 'train.steps', '20'))
  records.write_json(os.path.join(run_dir, 'records', 'train.partial.json'),
                     partial)
  os.remove(os.path.join(run_dir, 'summary.json'))
  trained.clear()
  again = jobs.run(config(0.0), str(tmp_path / 'killed'))
  assert trained == [] and again['members'] == straight['members']
  assert steps.leftovers(lifecycle.Run(config(0.0),
                                       str(tmp_path / 'killed'))) == []


def test_the_dense_job_resumes_inside_its_stage_and_reruns_more_seeds(
    tmp_path, monkeypatch, capsys):
  """The dense job saves inside its stage: stopped after its step-30 save,
  it trains only steps 30-60 when run again and ends with the bytes of a
  run never stopped. Asked for more seeds, it reruns from scratch (its
  'rerun' policy): the old count's records and checkpoints go, and the
  folder ends as a new run of that count would."""
  metrics = lambda s: open(os.path.join(s['run_dir'], 'metrics.jsonl')).read()
  straight = jobs.run(_smoke(), str(tmp_path / 'straight'))
  config = _smoke()
  config.train.checkpoint_every_s = 0.0
  testlib.run_until_save(config, str(tmp_path / 'w'), monkeypatch)
  trained = testlib.count_training(monkeypatch)
  resumed = jobs.run(config, str(tmp_path / 'w'))
  assert trained == [30]  # 60 steps, evaluated every 30
  assert metrics(resumed) == metrics(straight)
  assert {k: v for k, v in resumed.items() if k != 'run_dir'} == {
      k: v for k, v in straight.items() if k != 'run_dir'}
  lock.release_all()

  three = _smoke(seeds=3)
  three.train.checkpoint_every_s = 0.0  # (out of the hash: same folder)
  capsys.readouterr()
  grown = jobs.run(three, str(tmp_path / 'w'))
  assert grown['run_dir'] == resumed['run_dir']
  assert (f"{grown['run_dir']} holds a run of 2 seeds: training all 3 "
          'again') in capsys.readouterr().err
  fresh = jobs.run(_smoke(seeds=3), str(tmp_path / 'fresh'))
  assert metrics(grown) == metrics(fresh) and grown['num_seeds'] == 3
  assert records.read_json(os.path.join(grown['run_dir'], 'records',
                                        'train.json')) == records.read_json(
      os.path.join(fresh['run_dir'], 'records', 'train.json'))
  assert steps.leftovers(lifecycle.Run(three, str(tmp_path / 'w'))) == []


def test_outputs_are_sealed_only_when_all_are_written(tmp_path, capsys):
  """`finish` unseals the outputs first and seals them last: a run killed
  while writing them (here: its plots) is not found done on its rerun,
  which writes them again, quietly, to the same bytes."""
  summary = jobs.run(_smoke(), str(tmp_path))
  run_dir = summary['run_dir']
  sums = os.path.join(run_dir, 'records', 'outputs.json')
  sealed = open(sums).read()
  assert set(json.loads(sealed)) == {'metrics.jsonl', 'summary.json'}
  before = testlib.file_hashes(run_dir)
  with open(sums, 'w') as f:  # as `finish` leaves it until the end
    f.write('{}')
  os.remove(os.path.join(run_dir, 'curves.png'))
  capsys.readouterr()
  assert jobs.run(_smoke(), str(tmp_path)) == summary
  err = capsys.readouterr().err
  assert 'already done' not in err and 'damaged' not in err
  assert open(sums).read() == sealed
  after = testlib.file_hashes(run_dir)
  assert after.keys() == before.keys()  # the plot drawn again
  assert {k: v for k, v in after.items() if not k.endswith('.png')} == {
      k: v for k, v in before.items() if not k.endswith('.png')}


def test_exact_records_keep_non_finite_values(tmp_path):
  """Records a resumed stage reads back keep NaN and ±inf (strict JSON
  elsewhere writes them as null)."""
  values = {'loss': [math.nan, math.inf, -math.inf, 1.5], 'name': 'x'}
  path = str(tmp_path / 'r.json')
  records.write_json(path, values, exact=True)
  with open(path) as f:
    json.load(f, parse_constant=lambda c: pytest.fail(f'not strict: {c}'))
  back = records.from_exact(records.read_json(path))
  assert math.isnan(back['loss'][0]) and back['loss'][1:] == [
      math.inf, -math.inf, 1.5] and back['name'] == 'x'
  records.write_json(path, values)
  assert records.read_json(path)['loss'] == [None, None, None, 1.5]


def test_input_sums_cover_the_files_the_loaders_read(tmp_path, monkeypatch):
  """The sums `Run` keeps in inputs.json: a tokenizer given with `~`, a
  source folder without its hidden files; not the built-in tokenizer
  'char' or the packaged model 'smollm2', even if the working directory
  holds files of those names."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.chdir(tmp_path)
  (tmp_path / 'bpe.json').write_text('{}')
  (tmp_path / 'char').write_text('not a tokenizer')
  (tmp_path / 'smollm2').mkdir()
  source = tmp_path / 'pretrained'
  (source / '.cache').mkdir(parents=True)
  (source / '.cache' / 'meta').write_text('1')
  (source / 'model.safetensors').write_bytes(b'weights')
  config = ml_collections.ConfigDict({
      'data': {'tokenizer': '~/bpe.json'},
      'model': {'kwargs': {'source': str(source)}},
      'oneshot': {'model': 'smollm2'}})
  sums = workdir_lib.input_sums(config)
  assert sorted(sums) == ['data.tokenizer', 'model.kwargs.source']
  (source / '.cache' / 'meta').write_text('2')  # a cache: the same source
  assert workdir_lib.input_sums(config) == sums
  (source / 'model.safetensors').write_bytes(b'other weights')
  assert workdir_lib.input_sums(config)['model.kwargs.source'] != sums[
      'model.kwargs.source']
  config.data.tokenizer = 'char'
  assert 'data.tokenizer' not in workdir_lib.input_sums(config)
