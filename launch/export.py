r"""Exports a saved GPT network of a run as a Hugging Face GPT-2 folder.

  python -m launch.export --network=/tmp/tj/imp-HASH/checkpoints/level_000:0 \
      --out=/tmp/tj/pretrained

--network is RUN/checkpoints/NAME[:MEMBER] (member 0 by default); --out a
new or empty folder. Writes config.json, model.safetensors (mask applied),
tokenizer.json (the run's data.tokenizer file) and ticketjax_export.json.
The folder is then a model source: model 'pretrained' with
`source=FOLDER` (fine-tune or prune it), or `launch.weights`. Thin on
purpose: it calls `ticketjax.run.export.export_network`.
"""
import sys

from absl import app
from absl import flags

from launch import bad_input
from launch import logs
from ticketjax.run import export

_NETWORK = flags.DEFINE_string(
    'network', None, 'RUN/checkpoints/NAME[:MEMBER], a saved network.')
_OUT = flags.DEFINE_string('out', None, 'The folder to write (new or empty).')
flags.mark_flags_as_required(['network', 'out'])


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax_export')
  with bad_input.exit_on_value_error():
    manifest = export.export_network(_NETWORK.value, _OUT.value)
  print(f"{manifest['model']} of {manifest['network']} "
        f"({manifest['dataset']}, vocabulary {manifest['vocab_size']})",
        file=sys.stderr)
  print(f'results: {_OUT.value}', file=sys.stderr)


if __name__ == '__main__':
  app.run(main, flags_parser=bad_input.parse_flags)
