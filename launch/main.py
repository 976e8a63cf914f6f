r"""Launches a ticketjax job from a config file.

  python -m launch.main --config=configs/dense_mnist1d.py[:variant] \
      --workdir=/tmp/tj [--config.train.steps=100] [--jax_platforms=cpu]

On several hosts, the same command on each with `--num_processes=N` (and
off TPU `--coordinator_address=HOST:PORT --process_id=I`); process 0
writes the run folder (`ticketjax/run/hosts.py`).

Kept thin on purpose: it parses flags and calls `ticketjax.run.jobs.run`,
the same function Colab and the tests call. Any config field can be
overridden with `--config.a.b=value`; a misspelt field is an error
(`lock_config=True`). JAX's own options are flags too.
"""

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from launch import bad_input
from launch import logs
from launch import hosts_flags
from ticketjax.run import jobs

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with a variant: FILE.py:ARG.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Folder that holds the runs (created if missing).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax')
  with bad_input.launching('the config'):
    config = _CONFIG.value
    config.get('job')  # a config file that failed to load raises here
  with bad_input.launching('starting JAX (--jax_platforms, '
                           '--num_processes, --coordinator_address)'):
    hosts_flags.initialize()
  with bad_input.exit_on_value_error():
    jobs.check_overrides(config, config_flags.get_override_values(
        flags.FLAGS['config']))
    jobs.run(config, _WORKDIR.value)


if __name__ == '__main__':
  jax.config.config_with_absl()  # JAX options become flags too
  app.run(main, flags_parser=bad_input.parse_flags)
