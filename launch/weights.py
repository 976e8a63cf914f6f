r"""Per-layer weight distributions of networks in several states.

  python -m launch.weights --state=random=random:smollm2 \
      --state=pretrained=smollm2 --out=/tmp/tj/weights
  python -m launch.weights \
      --state=dense=/tmp/tj/imp-HASH/checkpoints/level_000:0 \
      --state=ticket=/tmp/tj/imp-HASH/checkpoints/level_008:0 --out=DIR

Each --state is NAME=SOURCE: 'smollm2', a .gguf file or a Hugging Face
GPT-2 folder; 'random:SOURCE' (a fresh init of that architecture); or a
saved network RUN/checkpoints/NAME[:MEMBER] of any run (its kept weights;
Edge-Popup's search and CS's rounds hold scores or mask logits and are
refused; a one-shot run's `mask_magnitude_*` or `mask_wanda_*` reads as the
pretrained weights it keeps, SparseGPT's is refused: its pruned network
updates them).
Writes weights.md (std, excess kurtosis, fraction near zero per layer and
state), weights.json, weights_hist.png and weights_layers.png to --out.
Thin on purpose: it calls `ticketjax.reports.weights.write`.
"""
import sys

from absl import app
from absl import flags

from launch import bad_input
from launch import logs
from ticketjax.reports import weights

_STATE = flags.DEFINE_multi_string('state', None, 'NAME=SOURCE; repeat.')
_OUT = flags.DEFINE_string('out', None, 'Output folder.')
flags.mark_flags_as_required(['state', 'out'])


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax_weights')
  with bad_input.exit_on_value_error():
    result = weights.write(weights.parse_states(_STATE.value), _OUT.value)
  for name, rows in result.items():
    print(weights.summary(name, rows))
  print(f'results: {_OUT.value}', file=sys.stderr)


if __name__ == '__main__':
  app.run(main, flags_parser=bad_input.parse_flags)
