"""Launchers run as `python -m launch.NAME ARGS` would, without paying the
imports each time: a helper process imports the heavy libraries (jax,
TFDS, orbax, ticketjax) once, then forks a child per call that runs the
launcher module as `__main__` (`runpy`, `sys.argv` set) with stdout and
stderr in files. The child is a fresh process for everything the launcher
does: absl flags, JAX's backend and the config are first set up there
(the helper never initializes a backend nor imports a launcher).

`run(launcher, argv, cwd)` -> `subprocess.CompletedProcess`-like result
(returncode, stdout, stderr), as `subprocess.run(..., capture_output=True,
text=True)` gives; `run_together` starts several at once; `start` returns
`Popen`-like children at once (to kill one, or to run hosts side by side),
each with its own changes to the environment (e.g. `XLA_FLAGS`, read when
the child first starts JAX's backend). Used where many calls make the
imports the cost (`bad_input_test.py`, kill-and-resume, two processes on
one run folder, the processes of a multi-host run).
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import types

_HELPER = None
TIMEOUT_S = 600  # a call's limit, as subprocess.run(timeout=600) had
# what every launcher imports and costs seconds; never a launcher itself
# (its absl flags would then be defined before the child's own import)
PRELOAD = ('jax', 'matplotlib.pyplot', 'optax', 'orbax.checkpoint',
           'tensorflow_datasets', 'ticketjax.run.jobs',
           'ticketjax.run.setup', 'ticketjax.reports.path_probe')


def _serve():
  """The helper: import once, then per request line one forked child per
  call (started together), answering their exit codes as a JSON list."""
  import importlib  # pylint: disable=g-import-not-at-top
  for module in PRELOAD:
    importlib.import_module(module)
  sys.stdout.write('ready\n')
  sys.stdout.flush()
  for line in sys.stdin:
    req = json.loads(line)
    pids = [_fork(req, call) for call in req['calls']]
    sys.stdout.write(json.dumps(pids) + '\n')  # so a child can be killed
    sys.stdout.flush()
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    sys.stdout.write(json.dumps(codes) + '\n')
    sys.stdout.flush()


def _fork(req: dict, call: dict) -> int:
  """Forks a child that runs the launcher (or a script: a `launcher` that
  ends in .py) as __main__; returns its pid."""
  import runpy  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  pid = os.fork()
  if pid:
    return pid
  code = 1
  try:
    os.chdir(req['cwd'])
    sys.path[0] = req['cwd']
    os.environ.update(call.get('env') or {})
    for fd, path in ((1, call['stdout']), (2, call['stderr'])):
      out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
      os.dup2(out, fd)
      os.close(out)
    launcher = req['launcher']
    try:
      if launcher.endswith('.py'):  # a script, as `python SCRIPT ARGS`
        sys.argv = [launcher, *call['argv']]
        runpy.run_path(launcher, run_name='__main__')
      else:
        sys.argv = [f'-m launch.{launcher}', *call['argv']]
        runpy.run_module(f'launch.{launcher}', run_name='__main__',
                         alter_sys=True)
      code = 0
    except SystemExit as e:
      if e.code is None:
        code = 0
      elif isinstance(e.code, int):
        code = e.code
      else:
        print(e.code, file=sys.stderr)
        code = 1
    except BaseException:  # pylint: disable=broad-exception-caught
      traceback.print_exc()
      code = 1
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _helper():
  global _HELPER
  if _HELPER is None or _HELPER.poll() is not None:
    _HELPER = subprocess.Popen(
        [sys.executable, __file__], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, start_new_session=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert _HELPER.stdout.readline().strip() == 'ready'
  return _HELPER


def run(launcher: str, argv, cwd: str):
  """Runs `python -m launch.<launcher> *argv` in `cwd` (see module doc)."""
  return run_together(launcher, [argv], cwd)[0]


def run_together(launcher: str, argvs, cwd: str) -> list:
  """`run` of every argv in `argvs`, all started at once (forked one after
  the other); the results in order."""
  return start(launcher, argvs, cwd).results()


def start(launcher: str, argvs, cwd: str, envs=None) -> 'Batch':
  """Forks a child per argv in `argvs` (`envs[i]`: variables the i-th sets
  in its environment) and returns at once; `launcher` is a name in
  `launch/` or the path of a script (`python SCRIPT ARGV`). The
  `Batch.children` are `Popen`-like. The helper takes its next call once
  every child has ended and `Batch.results` has been read."""
  return Batch(launcher, argvs, cwd, envs or [{}] * len(argvs))


class Batch:
  """Children of one call to the helper (`start`)."""

  def __init__(self, launcher, argvs, cwd, envs):
    self._helper = _helper()
    self._what = f'launch.{launcher} {argvs}'
    self._tmp = tempfile.TemporaryDirectory()
    self._calls = [{'argv': list(argv), 'env': dict(env),
                    **{k: os.path.join(self._tmp.name, f'{k}_{i}')
                       for k in ('stdout', 'stderr')}}
                   for i, (argv, env) in enumerate(zip(argvs, envs))]
    self._helper.stdin.write(json.dumps(
        {'launcher': launcher, 'calls': self._calls, 'cwd': cwd}) + '\n')
    self._helper.stdin.flush()
    self.pids = json.loads(self._read_line())
    self.children = [Child(self, i, pid) for i, pid in enumerate(self.pids)]
    self._results = None

  def _read_line(self) -> str:
    if not select.select([self._helper.stdout], [], [], TIMEOUT_S)[0]:
      os.killpg(self._helper.pid, signal.SIGKILL)  # helper and children
      self._helper.wait()  # the next call starts a new helper
      raise TimeoutError(f'{self._what} ran over {TIMEOUT_S} s')
    return self._helper.stdout.readline()

  def results(self) -> list:
    """Waits for every child; (returncode, stdout, stderr) of each."""
    if self._results is None:
      codes = json.loads(self._read_line())
      self._results = []
      for call, code in zip(self._calls, codes):
        texts = {}
        for k in ('stdout', 'stderr'):
          with open(call[k], encoding='utf-8', errors='replace') as f:
            texts[k] = f.read()
        self._results.append(types.SimpleNamespace(returncode=code, **texts))
      self._tmp.cleanup()
    return self._results


class Child:
  """One forked child, as much of `subprocess.Popen` as the tests use
  (`poll`, `send_signal`, `kill`, `wait`, `communicate`, `returncode`).
  Waiting for one waits for its whole `Batch`."""

  def __init__(self, batch: Batch, index: int, pid: int):
    self._batch, self._index, self.pid = batch, index, pid
    self.returncode = None

  def poll(self):
    """None while the child runs; else its exit code (waits for the
    batch: a child that ended has only its siblings left to wait for)."""
    try:
      with open(f'/proc/{self.pid}/stat', encoding='ascii') as f:
        running = f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
      running = False
    return None if running else self.wait()

  def send_signal(self, sig) -> None:
    if self.returncode is None:
      try:
        os.kill(self.pid, sig)
      except ProcessLookupError:
        pass

  def kill(self) -> None:
    self.send_signal(signal.SIGKILL)

  def wait(self, timeout=None) -> int:
    del timeout  # the helper's TIMEOUT_S bounds every batch
    self.returncode = self._batch.results()[self._index].returncode
    return self.returncode

  def communicate(self, timeout=None) -> tuple:
    self.wait(timeout)
    result = self._batch.results()[self._index]
    return result.stdout, result.stderr


if __name__ == '__main__':
  sys.path.insert(0, os.getcwd())
  _serve()
