"""The member axis sharded over several (forced) CPU devices.

The device count of a process is fixed when JAX starts, so the multi-device
side runs in another process (a forked child of `launch_pool`'s helper, which
has not started JAX) with XLA_FLAGS forcing host devices; this process
(one device) computes the reference.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from ticketjax.core import optim
from ticketjax.core import sharding
from ticketjax.core import train as train_lib
from ticketjax.run import store as checkpoint
import testlib
from testlib import synthetic_dataset, tiny_mlp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Trains 5 seeds of the tiny MLP and saves params and metrics; run both here
# and in a subprocess with more devices.
SCRIPT = textwrap.dedent('''
    import sys
    import jax
    import numpy as np
    from ticketjax.core import optim
    from ticketjax.core import sharding
    from ticketjax.core import train as train_lib
    from testlib import synthetic_dataset, tiny_mlp

    def run(out_path, group):
      cfg = optim.OptimizerConfig(name='adam', learning_rate=1e-2)
      trainer = train_lib.Trainer(tiny_mlp(), optim.make_optimizer(cfg, 100),
                                  batch_size=16, eval_batch_size=10,
                                  member_group=group)
      keys = jax.vmap(train_lib.split_seed_key)(train_lib.seed_keys(0, 5))
      state_S = trainer.init_states(*keys)
      data = train_lib.to_device(synthetic_dataset())
      # placed on every device once; train/evaluate do not copy it again
      placed_once = all(
          a is b and a.sharding.device_set == set(jax.devices())
          for a, b in zip(jax.tree.leaves(data),
                          jax.tree.leaves(sharding.replicate(data))))
      state_S, m = trainer.train(state_S, data, 30)
      state_S, m2 = trainer.train(state_S, data, 30)  # second chunk
      ev = trainer.evaluate(state_S, data.x_test, data.y_test)
      arrays = {'loss': np.concatenate([m['loss'], m2['loss']]),
                'acc': np.asarray(ev['accuracy']),
                'devices': np.asarray(jax.device_count()),
                'placed_once': np.asarray(placed_once)}
      for i, leaf in enumerate(jax.tree.leaves(state_S.params)):
        arrays[f'p{i}'] = np.asarray(leaf)
      np.savez(out_path, **arrays)

    if __name__ == '__main__':
      run(sys.argv[1], int(sys.argv[2]))
''')


def _run_here(tmp_path):
  """The 1-device reference, in this process (one CPU device)."""
  assert jax.device_count() == 1
  namespace = {'__name__': 'shard_run'}
  exec(compile(SCRIPT, 'shard_run.py', 'exec'), namespace)  # pylint: disable=exec-used
  namespace['run'](tmp_path / 'out1.npz', 0)
  return np.load(tmp_path / 'out1.npz')


def _with_devices(num_devices, xla_defaults=False):
  """This process's XLA_FLAGS, forcing `num_devices`; with `xla_defaults`,
  without conftest's compile-speed flag (XLA's default code generation)."""
  flags = os.environ.get('XLA_FLAGS', '').split()
  if xla_defaults:
    flags = [f for f in flags if not f.startswith(testlib.CODEGEN_FLAG)]
  return ' '.join(
      flags + [f'--xla_force_host_platform_device_count={num_devices}'])


def _run_with_devices(tmp_path, num_devices, group=0):
  script = tmp_path / 'shard_run.py'
  script.write_text(SCRIPT)
  out = tmp_path / f'out{num_devices}_{group}.npz'
  flags = {'XLA_FLAGS': _with_devices(num_devices)}
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):  # the pool's environment
    import launch_pool  # pylint: disable=g-import-not-at-top
    (result,) = launch_pool.start(str(script), [[str(out), str(group)]],
                                  ROOT, [flags]).results()
    assert result.returncode == 0, result.stderr[-3000:]
  else:
    subprocess.run([sys.executable, str(script), str(out), str(group)],
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                       [ROOT, HERE]), **flags), check=True, timeout=300)
  return np.load(out)


@pytest.mark.parametrize('num_devices,group', [(2, 0), (3, 2)])
def test_sharded_members_match_one_device(tmp_path, num_devices, group):
  """5 seeds over 2 devices (padded to 6), and over 3 devices in groups of
  2 (padded to 6, one group per device)."""
  one = _run_here(tmp_path)
  many = _run_with_devices(tmp_path, num_devices, group)
  assert int(one['devices']) == 1 and int(many['devices']) == num_devices
  assert bool(one['placed_once']) and bool(many['placed_once'])
  assert many['loss'].shape == one['loss'].shape == (60, 5)
  for name in set(one.files) - {'devices'}:
    np.testing.assert_allclose(many[name], one[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)


def test_pad_and_unpad_members_on_one_device():
  tree = {'a': np.arange(5.0), 'b': np.ones((5, 2))}
  assert sharding.num_devices() == jax.device_count()
  padded = sharding.pad_members(tree, 5)
  assert padded['a'].shape[0] == sharding.padded_count(5)
  back = sharding.unpad_members(padded, 5)
  np.testing.assert_array_equal(back['a'], tree['a'])
  metrics_TxS = np.zeros((7, sharding.padded_count(5)))
  assert sharding.unpad_members(metrics_TxS, 5, axis=1).shape == (7, 5)


def test_member_groups_make_results_independent_of_the_member_count():
  """In groups of 2, members 0-1 of a 6-member run are bitwise those of a
  2-member run (ungrouped vmaps compile per member count, so they only
  agree to rounding), and grouping changes nothing but rounding."""
  cfg = optim.OptimizerConfig(name='adam', learning_rate=1e-2)
  data = train_lib.to_device(synthetic_dataset())
  keys = jax.vmap(train_lib.split_seed_key)(train_lib.seed_keys(0, 6))
  out = {}
  for group in (0, 2):
    trainer = train_lib.Trainer(tiny_mlp(), optim.make_optimizer(cfg, 100),
                                batch_size=16, eval_batch_size=10,
                                member_group=group)
    for n in (2, 6):
      state, metrics = trainer.train(
          trainer.init_states(keys[0][:n], keys[1][:n]), data, 20)
      ev = trainer.evaluate(state, data.x_test, data.y_test)
      out[group, n] = jax.tree.map(
          lambda v: np.asarray(v)[..., :2] if v.ndim == 2 and v.shape[0] == 20
          else np.asarray(v)[:2], (state.params, metrics, ev))
  for a, b in zip(jax.tree.leaves(out[2, 2]), jax.tree.leaves(out[2, 6])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(out[2, 6]), jax.tree.leaves(out[0, 6])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('localhost', 0))
    return sock.getsockname()[1]


OVERRIDES = {'num_seeds': 8, 'imp.levels': 1, 'train.member_group': 2,
             'progress': False}


def test_imp_search_records_are_identical_on_one_device_and_two_hosts(
    tmp_path):
  """Issue 6, must-show 1: an 8-seed IMP search (with its controls) on two
  JAX processes of 2 forced CPU devices each (`--num_processes=2`, gloo on
  localhost), members in compiled groups (`train.member_group`), writes the
  records of the 1-device run, bit for bit, process 0 alone writing the run
  folder (no per-process copies). The two processes run the search in a
  sweep (`launch.sweep`, whose multi-host flags are `launch.main`'s) with a
  report from each: first with 4 seeds, then grown in place to 8
  (`imp_extend`, which swaps checkpoints), saving inside every level.
  (One process of 4 devices, the same layout without the hosts, gave the
  same bits too, and so did an Edge-Popup smoke run saving inside its
  phase; both were dropped to keep the suite short: docs/results.md.)

  Bitwise equality across layouts is claimed for XLA's default emitters,
  which users run: with conftest's compile-speed flag (the older emitter) an
  evaluation loss rounds differently with 2 member groups per device than
  with 4 (1 ulp, in 11 of 80 records), so every process here, the 1-device
  reference included, runs without that flag."""
  def args(workdir, sweep, *extra):
    return [f'--sweep={sweep_file}:{sweep}', f'--workdir={workdir}', *extra]

  sweep_file = tmp_path / 'sweep_imp.py'
  sweep_file.write_text(textwrap.dedent(f'''
      from configs import imp_mlp_mnist1d
      def get_sweep(arg):
        c = imp_mlp_mnist1d.get_config('smoke')
        for key, value in {OVERRIDES!r}.items():
          c.update_from_flattened_dict({{key: value}})
        if arg == 'grown':  # a save inside every level (results unchanged):
          c.train.checkpoint_every_s = 0.0  # process 0's clock decides
        # 4 seeds, then the same run grown to 8 in place (imp_extend)
        four = c.copy_and_resolve_references()
        four.num_seeds = 4
        return [c] if arg == 'straight' else [four, c]
      '''))

  def read(run_dir):
    summary = json.loads((run_dir / 'summary.json').read_text())
    del summary['run_dir']
    return (run_dir / 'metrics.jsonl').read_text(), summary

  # all at once: the references on 1 device (straight, no growing) and the
  # sweep on two hosts of 2 devices each; forked children of the launch
  # pool when the session shares a compile cache (no imports to pay), else
  # processes of their own
  port = _free_port()
  argvs = [args(tmp_path / 'd1', 'straight')] + [
      args(tmp_path / 'hosts', 'grown', '--num_processes=2',
           f'--coordinator_address=localhost:{port}', f'--process_id={i}')
      for i in range(2)]
  flags = [{'XLA_FLAGS': _with_devices(n, xla_defaults=True)}
           for n in (1, 2, 2)]
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):  # the pool's environment
    import launch_pool  # pylint: disable=g-import-not-at-top
    for result in launch_pool.start('sweep', argvs, ROOT, flags).results():
      assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
  else:
    procs = [subprocess.Popen(
        [sys.executable, '-m', 'launch.sweep', *argv], cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, **env), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for argv, env in zip(argvs, flags)]
    try:
      for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    finally:  # a failed process leaves no peer waiting for it
      for proc in procs:
        proc.kill()
        proc.wait()
  (imp_name,) = [p.name for p in (tmp_path / 'd1').glob('imp-*')]
  alone = read(tmp_path / 'd1' / imp_name)
  records = alone[0].splitlines()
  assert len(records) == 2 * 8 + 2 * 8 * 4  # 2 evals, 8 seeds, 4 branches

  workdir = tmp_path / 'hosts'
  run_dir = workdir / imp_name
  # one writer: no per-process copies anywhere in the workdir
  assert not (workdir / '.hosts').exists()
  # grown from 4 seeds: the old seeds' records come first, so compare the
  # records as a set (and the summary whole)
  grown = lambda r: (sorted(r[0].splitlines()), r[1])
  assert grown(read(run_dir)) == grown(alone)
  # the checkpoints are saved once, by both processes together
  assert checkpoint.Checkpoints(str(run_dir)).leading_size('level_001') == 8
  assert not (run_dir / 'extend').exists()
  assert not list(run_dir.glob('checkpoints/*.steps'))  # removed at the end

  # the sweep's report, written once, by process 0
  assert (workdir / 'report' / 'report.md').exists()


def test_one_process_is_the_main_one():
  from ticketjax.run import hosts  # pylint: disable=g-import-not-at-top
  assert hosts.is_main()
  hosts.barrier('one process: returns at once')
