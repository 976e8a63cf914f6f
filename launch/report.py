r"""Writes one report across finished runs.

  python -m launch.report --workdir=/tmp/tj [--workdir=/tmp/other ...] \
      [--out=/tmp/tj/report] [--only=REGEX]

Every run folder under each workdir (or a run folder itself) with a
`summary.json` is read; `report.md`, `accuracy.png` and, with LMC runs,
`lmc.png` go to --out (default: <first workdir>/report). Thin on purpose:
it calls `ticketjax.reports.cross_run.write`, the function the tests call.
"""
import os
import sys

from absl import app
from absl import flags

from launch import bad_input
from launch import logs
from ticketjax.reports import cross_run

_WORKDIR = flags.DEFINE_multi_string(
    'workdir', None, 'Workdir (or run folder) to read; repeat for more.')
_OUT = flags.DEFINE_string('out', None, 'Output folder.')
_ONLY = flags.DEFINE_string(
    'only', '', 'A regular expression: only the accuracy series whose label '
    'it matches (as the table names them) go into the plot and the accuracy '
    'and per-layer tables; the runs table and the methods\' own sections '
    '(mask overlap, LMC barriers) still cover every run.')
flags.mark_flag_as_required('workdir')


def main(argv):
  logs.to_file('ticketjax_report')
  paths = list(_WORKDIR.value) + list(argv[1:])  # extra paths also work
  out = _OUT.value or os.path.join(paths[0], 'report')
  with bad_input.exit_on_value_error():
    print(cross_run.write(paths, out, only=_ONLY.value))
  print(f'results: {out}', file=sys.stderr)


if __name__ == '__main__':
  app.run(main, flags_parser=bad_input.parse_flags_and_paths)
