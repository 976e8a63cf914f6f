"""Launchers run as `python -m launch.NAME ARGS` would, without paying the
imports each time: a helper process imports the heavy libraries (jax,
TFDS, orbax, ticketjax) once, then forks a child per call that runs the
launcher module as `__main__` (`runpy`, `sys.argv` set) with stdout and
stderr in files. The child is a fresh process for everything the launcher
does: absl flags, JAX's backend and the config are first set up there
(the helper never initializes a backend nor imports a launcher).

`run(launcher, argv, cwd)` -> `subprocess.CompletedProcess`-like result
(returncode, stdout, stderr), as `subprocess.run(..., capture_output=True,
text=True)` gives; `run_together` starts several at once. Used where many
calls make the imports the cost (`bad_input_test.py`, kill-and-resume, two
processes on one run folder).
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
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    sys.stdout.write(json.dumps(codes) + '\n')
    sys.stdout.flush()


def _fork(req: dict, call: dict) -> int:
  """Forks a child that runs the launcher as __main__; returns its pid."""
  import runpy  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  pid = os.fork()
  if pid:
    return pid
  code = 1
  try:
    os.chdir(req['cwd'])
    sys.path[0] = req['cwd']
    for fd, path in ((1, call['stdout']), (2, call['stderr'])):
      out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
      os.dup2(out, fd)
      os.close(out)
    sys.argv = [f"-m launch.{req['launcher']}", *call['argv']]
    try:
      runpy.run_module(f"launch.{req['launcher']}", run_name='__main__',
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
  helper = _helper()
  with tempfile.TemporaryDirectory() as tmp:
    calls = [{'argv': list(argv),
              **{k: os.path.join(tmp, f'{k}_{i}') for k in ('stdout',
                                                           'stderr')}}
             for i, argv in enumerate(argvs)]
    helper.stdin.write(json.dumps({'launcher': launcher, 'calls': calls,
                                   'cwd': cwd}) + '\n')
    helper.stdin.flush()
    if not select.select([helper.stdout], [], [], TIMEOUT_S)[0]:
      os.killpg(helper.pid, signal.SIGKILL)  # the helper and its children
      helper.wait()  # the next call starts a new helper
      raise TimeoutError(f'launch.{launcher} {argvs} ran over {TIMEOUT_S} s')
    codes = json.loads(helper.stdout.readline())
    out = []
    for call, code in zip(calls, codes):
      texts = {}
      for k in ('stdout', 'stderr'):
        with open(call[k], encoding='utf-8', errors='replace') as f:
          texts[k] = f.read()
      out.append(types.SimpleNamespace(returncode=code, **texts))
  return out


if __name__ == '__main__':
  sys.path.insert(0, os.getcwd())
  _serve()
