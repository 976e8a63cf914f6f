"""Test helpers: a pure-JAX model over plain dicts and synthetic data.

Core tests use this model rather than the Flax zoo, so an NNX API change
cannot break the tests of masks, pruning and the trainer.
"""
import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core.types import Dataset, Model


class Stopped(Exception):
  """Stands for a kill right after a save inside a stage."""


def run_until_save(config, workdir, monkeypatch, stage: str = '',
                   step: int | None = None) -> None:
  """`jobs.run`, stopped (`Stopped`) right after its first save inside a
  stage, or, given `stage` and `step`, right after that stage's save at
  that step."""
  from ticketjax.run import jobs, steps  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  save = steps.MidStage.save

  def save_then_stop(self, at, *args):
    save(self, at, *args)
    if self.saves is not None and (not stage or (
        self.name == stage and at == step)):
      raise Stopped(at)

  monkeypatch.setattr(steps.MidStage, 'save', save_then_stop)
  with pytest.raises(Stopped):
    jobs.run(config, workdir)
  monkeypatch.setattr(steps.MidStage, 'save', save)


def count_training(monkeypatch) -> list:
  """The steps of every `Trainer.train` call from now on, as a list."""
  from ticketjax.core import train as train_lib  # pylint: disable=g-import-not-at-top
  trained = []
  train = train_lib.Trainer.train

  def counting(self, state, data, num_steps):
    trained.append(num_steps)
    return train(self, state, data, num_steps)

  monkeypatch.setattr(train_lib.Trainer, 'train', counting)
  return trained


def tiny_mlp(in_dim=8, hidden=16, num_classes=3) -> Model:
  """A 2-layer ReLU MLP with 'dense_0' and 'output' layers (pure JAX)."""

  def init(key):
    k0, k1 = jax.random.split(key)
    params = {
        'dense_0': {
            'kernel': jax.random.normal(k0, (in_dim, hidden)) / np.sqrt(in_dim),
            'bias': jnp.zeros(hidden)},
        'output': {
            'kernel': jax.random.normal(k1, (hidden, num_classes))
                      / np.sqrt(hidden),
            'bias': jnp.zeros(num_classes)},
    }
    return params, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    def dense(layer, h):
      return h @ params[layer]['kernel'] + params[layer]['bias'][None, :]
    return dense('output', jax.nn.relu(dense('dense_0', x))), state

  return Model(init, apply, 'tiny_mlp')


def synthetic_dataset(n_train=96, n_val=16, n_test=32, in_dim=8,
                      num_classes=3, seed=0) -> Dataset:
  """Linearly separable-ish Gaussian blobs, float32 x and int32 y."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(num_classes, in_dim)) * 2

  def make(n):
    y = rng.integers(0, num_classes, n).astype(np.int32)
    x = (centers[y] + rng.normal(size=(n, in_dim))).astype(np.float32)
    return x, y

  (xt, yt), (xv, yv), (xs, ys) = make(n_train), make(n_val), make(n_test)
  return Dataset(xt, yt, xv, yv, xs, ys, num_classes, 'synthetic')


def kill_when(proc, pattern: str, timeout: float = 300.0) -> None:
  """SIGKILLs the running `proc` as soon as a path matches glob `pattern`.

  The kill-and-resume tests use it to stop a launch mid-search, right after
  a given checkpoint appears; it fails if the process ends first.
  """
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if glob.glob(pattern):
      break
    time.sleep(0.02)
  assert proc.poll() is None, 'finished before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()


# The XLA flag tests/conftest.py adds to make compiling faster (it cannot
# import this module before JAX starts). It changes code generation, so a
# test of bitwise equality across layouts drops it from its processes.
CODEGEN_FLAG = '--xla_cpu_use_fusion_emitters'


def launch_env(cache_dir) -> dict:
  """The environment of a launcher subprocess sharing a compilation cache.

  Kill-and-resume tests launch the same job several times; with one
  persistent cache the later launches read the compiled programs from disk.
  The session's cache (`conftest.py`) is used when there is one, so even
  the first launch finds what earlier tests compiled; else `cache_dir`.
  """
  cache = os.environ.get('JAX_COMPILATION_CACHE_DIR') or str(cache_dir)
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')



def launch(launcher: str, argv, cwd: str, env=None):
  """`python -m launch.<launcher> *argv` in `cwd`, output captured (as
  `subprocess.run(..., capture_output=True, text=True)` gives): a forked
  child of `launch_pool`'s helper when the session shares one compilation
  cache (the helper's environment, so `env` must be None or `launch_env`'s),
  else a process of its own in `env`."""
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    assert env is None or env == launch_env(None), 'the pool has its own'
    import launch_pool  # pylint: disable=g-import-not-at-top
    return launch_pool.run(launcher, list(argv), cwd)
  return subprocess.run([sys.executable, '-m', f'launch.{launcher}', *argv],
                        cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=600)


def start(argv, cwd: str, env=None):
  """Starts `argv` (`[python, '-m', 'launch.NAME', *args]`) in `cwd` and
  returns it running, `Popen`-like with text stdout and stderr: a forked
  child of `launch_pool`'s helper when the session shares one compilation
  cache (`env` must be None or `launch_env`'s), else a process of its own in
  `env`. A pool child must end (`wait`, `communicate`) before the next
  launch."""
  assert argv[1] == '-m' and argv[2].startswith('launch.'), argv
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    assert env is None or env == launch_env(None), 'the pool has its own'
    import launch_pool  # pylint: disable=g-import-not-at-top
    (child,) = launch_pool.start(argv[2][len('launch.'):], [argv[3:]],
                                 cwd).children
    return child
  return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def assert_kill_and_resume_identical(argv, tmp_path, checkpoint: str,
                                     cwd: str, resumes: str = '') -> dict:
  """Launches `argv(workdir)` straight through in tmp_path/straight, and
  in tmp_path/killed killed as soon as `checkpoint` (a path under the run
  folder, e.g. 'checkpoints/level_001') appears, then launched again;
  asserts both runs end with the same members and byte-identical
  `metrics.jsonl`, and that the second launch's stderr says `resumes`
  (e.g. 'from its save at step 20'). Returns the straight run's summary.

  The three launches run in forked children of `launch_pool`'s helper
  when the session shares one compilation cache (the helper's
  environment), saving their imports (`start`)."""
  env = launch_env(tmp_path / 'cache')

  def run(name):
    cmd = argv(tmp_path / name)
    assert cmd[1] == '-m' and cmd[2].startswith('launch.'), cmd
    return launch(cmd[2][len('launch.'):], cmd[3:], cwd, env)
  straight = run('straight')
  assert straight.returncode == 0, straight.stderr[-2000:]
  proc = start(argv(tmp_path / 'killed'), cwd, env)
  kill_when(proc, str(tmp_path / 'killed' / '*' / checkpoint))
  resumed = run('killed')
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert resumes in resumed.stderr, resumed.stderr[-2000:]
  (a,) = glob.glob(str(tmp_path / 'straight/*/summary.json'))
  (b,) = glob.glob(str(tmp_path / 'killed/*/summary.json'))
  with open(a) as fa, open(b) as fb:
    sa, sb = json.load(fa), json.load(fb)
  assert sa['members'] == sb['members']
  metrics = lambda path: open(path.replace('summary.json',
                                           'metrics.jsonl')).read()
  assert metrics(a) == metrics(b)
  return sa


# -- damaging files (bad-input and integrity tests) -------------------------


def largest_file(folder: str) -> str:
  """The largest file under `folder` but a checkpoint's checksum list."""
  files = [f for f in glob.glob(os.path.join(folder, '**'), recursive=True)
           if os.path.isfile(f) and not f.endswith('.sha256')]
  return max(files, key=os.path.getsize)


def flip_a_bit(path: str) -> None:
  """Flips the lowest bit of the middle byte of `path`."""
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 1]))


def truncate_half(path: str) -> None:
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def file_hashes(root: str) -> dict:
  """{relative path: sha256} of every file under `root` but `.lock` files
  (they hold the last holder's name)."""
  out = {}
  for path in glob.glob(os.path.join(root, '**'), recursive=True):
    if os.path.isfile(path) and os.path.basename(path) != '.lock':
      with open(path, 'rb') as f:
        out[os.path.relpath(path, root)] = hashlib.sha256(
            f.read()).hexdigest()
  return out


def assert_weights_tool_reads(run_dir: str, config, plain, wrapped) -> None:
  """`launch.weights` reads each `plain` checkpoint of a run as its model's
  weights; it and `launch.probe` refuse each `wrapped` one, whose params
  indeed are not the model's tree (the method's `WRAPPED_CHECKPOINTS`
  tells the truth)."""
  import pytest  # pylint: disable=g-import-not-at-top
  from ticketjax.reports import path_probe  # pylint: disable=g-import-not-at-top
  from ticketjax.reports import weights  # pylint: disable=g-import-not-at-top
  from ticketjax.run import setup  # pylint: disable=g-import-not-at-top
  tree = jax.tree.structure(jax.eval_shape(
      setup.model_from_config(config).init, jax.random.PRNGKey(0))[0])
  for name in plain:
    params, _ = weights.load_state(f'{run_dir}/checkpoints/{name}:0')
    assert jax.tree.structure(params) == tree, name
  for name in wrapped:
    path = f'{run_dir}/checkpoints/{name}'
    params = path_probe.load_endpoint(path, 0)[0]
    assert jax.tree.structure(params) != tree, name
    for read in (weights.load_state, lambda spec: (
        path_probe.probe_checkpoints(spec, spec))):  # and `launch.probe`
      with pytest.raises(ValueError, match=(
          f"does not hold the weights of a network: checkpoint '{name}' of "
          f"job '{config.job}' holds")):
        read(f'{path}:0')
