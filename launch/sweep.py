r"""Runs the jobs of a sweep file one after another, then one report.

  python -m launch.sweep --sweep=configs/sweep_mnist1d.py[:ARG] \
      --workdir=/tmp/tj [--report=/tmp/tj/report]

On several hosts, the same command on each with `--num_processes=N` (and
off TPU `--coordinator_address=HOST:PORT --process_id=I`), as for
`launch.main`: every job runs across all hosts and process 0 writes the
run folders and the report (`ticketjax/run/hosts.py`).

The sweep file's `get_sweep(ARG)` returns a list of configs. Every config
is checked before the first job starts; each job is resumable on its own
(rerun the command after a kill). Thin on purpose: it calls
`ticketjax.run.sweep.run_sweep`, the function the tests call.
"""
import importlib.util

from absl import app
from absl import flags
import jax

from launch import bad_input
from launch import logs
from launch import hosts_flags
from ticketjax.run import sweep

_SWEEP = flags.DEFINE_string('sweep', None, 'Sweep file, FILE.py[:ARG].')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder that holds the runs.')
_REPORT = flags.DEFINE_string('report', None, 'Report folder.')
flags.mark_flags_as_required(['sweep', 'workdir'])


def load_sweep(spec: str):
  """The configs of `FILE.py[:ARG]` (its `get_sweep(ARG)`)."""
  path, _, arg = spec.partition(':')
  loader = importlib.util.spec_from_file_location('sweep_file', path)
  if loader is None:
    raise ValueError(f'cannot load sweep file {path!r}')
  module = importlib.util.module_from_spec(loader)
  try:
    loader.loader.exec_module(module)
  except FileNotFoundError as e:
    raise ValueError(f'no sweep file {path!r}') from e
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'sweep file {path!r} does not load: '
                     f'{type(e).__name__}: {e}') from e
  if not hasattr(module, 'get_sweep'):
    raise ValueError(f'{path!r} has no get_sweep(arg) function')
  try:
    return list(module.get_sweep(arg or None))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'get_sweep({arg or None!r}) of {path!r} failed: '
                     f'{type(e).__name__}: {e}') from e


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax_sweep')
  with bad_input.launching('starting JAX (--jax_platforms, '
                           '--num_processes, --coordinator_address)'):
    hosts_flags.initialize()
  with bad_input.exit_on_value_error():
    sweep.run_sweep(load_sweep(_SWEEP.value), _WORKDIR.value, _REPORT.value)


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main, flags_parser=bad_input.parse_flags)
