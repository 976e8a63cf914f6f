r"""Probes the linear path between two saved networks.

  python -m launch.probe \
      --a=/tmp/tj/lmc-HASH/checkpoints/copies_k000100:0 \
      --b=/tmp/tj/lmc-HASH/checkpoints/copies_k000100:1 [--split=test] \
      [--num_alphas=30] [--mask=none|a|b] [--out=DIR]

An endpoint is PATH[:MEMBER]: a checkpoint folder of a run that holds
trained networks (dense, IMP, LMC, CS's ticket, Edge-Popup's dense, PaI,
DST, Early-Bird or transfer `final`) and the member along its leading
axis, printed as who it is where the method says (e.g. 'full at density
0.5, seed 1', 'level_003, seed 1, copy 0'). Prints error and loss at
every alpha and the error barrier; with --out also writes probe.json and
probe.png. Thin on purpose: it calls
`ticketjax.reports.path_probe.main`, the function the tests call.
"""

from absl import app
from absl import flags
import jax

from launch import bad_input
from launch import logs
from ticketjax.reports import path_probe

_A = flags.DEFINE_string('a', None, 'First endpoint, PATH[:MEMBER].')
_B = flags.DEFINE_string('b', None, 'Second endpoint, PATH[:MEMBER].')
_SPLIT = flags.DEFINE_enum('split', 'test', ['test', 'train'],
                           'Data the path is evaluated on.')
_ALPHAS = flags.DEFINE_integer('num_alphas', 30, 'Points of the alpha grid.')
_MASK = flags.DEFINE_enum('mask', 'none', list(path_probe.MASK_CHOICES),
                          "Apply endpoint a's or b's mask along the path.")
_OUT = flags.DEFINE_string('out', None, 'Folder for probe.json/probe.png.')
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'TFDS data dir, if not the run\'s.')
flags.mark_flags_as_required(['a', 'b'])


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax_probe')
  with bad_input.exit_on_value_error():
    path_probe.main(_A.value, _B.value, split=_SPLIT.value,
               num_alphas=_ALPHAS.value, mask=_MASK.value, out_dir=_OUT.value,
               data_dir=_DATA_DIR.value)


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main, flags_parser=bad_input.parse_flags)
