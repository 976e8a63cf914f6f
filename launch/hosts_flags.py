"""The multi-host flags every launcher takes, and what they start.

  --num_processes=N [--coordinator_address=HOST:PORT --process_id=I]

With N > 1 every host runs the same command and `ticketjax.run.hosts` takes
over (one search across all processes' devices; process 0 writes the run
folders). On TPU VMs JAX finds the address and the process id itself.
"""
from absl import flags
from absl import logging
import jax

from ticketjax.run import hosts

_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'Multi-host: the number of JAX processes (one per '
    'host); each runs this same command. See ticketjax/run/hosts.py.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-host: host:port of process 0 (found '
    'by JAX on TPU VMs).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'Multi-host: this process, 0..num_processes-1 '
    '(found by JAX on TPU VMs).')


def initialize() -> None:
  """`hosts.initialize` when the flags ask for several processes; logs
  this process's place and devices either way."""
  if _NUM_PROCESSES.value is not None and _NUM_PROCESSES.value > 1:
    hosts.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                     _PROCESS_ID.value)
  try:
    devices = jax.devices()
  except Exception as e:  # pylint: disable=broad-except
    # JAX 0.10 raises a bare AssertionError for a platform it cannot start
    why = str(e) or type(e).__name__
    raise ValueError(
        f'no JAX backend could start for --jax_platforms='
        f'{jax.config.jax_platforms or "(default)"} ({why}); use a platform '
        'this machine has (e.g. --jax_platforms=cpu), or install its JAX '
        'plugin (e.g. jax[cuda12] for an NVIDIA GPU)') from e
  logging.info('JAX process %d/%d, devices: %s', jax.process_index(),
               jax.process_count(), devices)
