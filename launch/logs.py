"""Library logs go to a file, so a launch's console holds only its own lines.

JAX, orbax, TFDS and absl log at INFO through absl (orbax alone prints
dozens of lines per checkpoint). A launcher calls `to_file` first: every
log line then goes to `<log_dir>/<program>.INFO` (absl's file naming, with
a `<program>.INFO` link to the newest), `--log_dir` if given, else
`$TMPDIR/ticketjax-logs`; only ERROR and worse also reach stderr. What a run
prints itself (progress, its table, where results went, `error: ...`) is
unaffected.
"""
import os
import tempfile

from absl import flags
from absl import logging


def to_file(program: str) -> str:
  """Sends absl (and Python `logging`) records to a file; returns its dir."""
  log_dir = flags.FLAGS.log_dir or os.path.join(tempfile.gettempdir(),
                                                'ticketjax-logs')
  os.makedirs(log_dir, exist_ok=True)
  logging.get_absl_handler().use_absl_log_file(program, log_dir)
  flags.FLAGS.stderrthreshold = 'error'
  return log_dir
