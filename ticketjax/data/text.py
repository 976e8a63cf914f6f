"""Text data for decoder language models: tokens in fixed windows.

A text data set is a corpus of documents (`text_builders`: `shakespeare`,
`austen`, `pydoc`), split by whole documents, tokenized and cut into
next-token windows. Each split is one stream: its documents in name order,
each ending with a newline, joined with one more newline (a blank line
between documents), tokenized at once. `windows` cuts a stream into
non-overlapping windows of `context` tokens, x = tokens[i*T:(i+1)*T] and
y = tokens[i*T+1:(i+1)*T+1], the remainder dropped (the WikiText protocol
of SparseGPT and Wanda).

Tokenizers (`get_tokenizer`):

* `'char'`: one token per character. The vocabulary is every character of
  the whole corpus (all three splits, so characters unseen in train still
  get ids), sorted by code point; deterministic for a given corpus.
* a path to a `tokenizers` JSON file (`tokenizer.json`, e.g. a byte-level
  BPE): its ids, without special tokens (`add_special_tokens=False`); the
  vocabulary size is the tokenizer's, added tokens included.

The validation split is the corpus's held-out documents, so `val_size`
(a hold-out of train for the other data sets) must be 0 and `split_seed`
is not used. The functions here take a resolved TFDS data directory; the
package's `load_dataset` and `document_text` resolve it.
"""
import operator
import os
from typing import Any, Protocol, Sequence

import numpy as np
import tensorflow_datasets as tfds

from ticketjax.core.types import Dataset
from ticketjax.data import text_builders

CHAR = 'char'
DEFAULT_CONTEXT = 128

# data set name (config.data.name) -> corpus (TFDS builder name)
TEXT_DATASETS = {
    'shakespeare': 'shakespeare_plays',
    'austen': 'austen_novels',
    'pydoc': 'pydoc_topics',
}


class Tokenizer(Protocol):
  """What a data set needs of a tokenizer."""
  label: str  # short name for the data set's name: 'char', 'bpe50257'
  size: int  # number of ids, 0..size-1

  def encode(self, text: str) -> np.ndarray:
    """int32 ids of `text`."""

  def decode(self, ids: Sequence[int]) -> str:
    """The text of `ids`."""


class CharVocab:
  """One id per character: the characters' position in sorted order.

  Attributes:
    chars: the vocabulary, sorted by code point, without repeats.
    label: `'char'`.
    size: `len(chars)`.
  """
  label = CHAR

  def __init__(self, chars: str):
    self.chars = ''.join(sorted(set(chars)))
    self.size = len(self.chars)
    self._codes = np.asarray([ord(c) for c in self.chars], dtype=np.uint32)

  def encode(self, text: str) -> np.ndarray:
    """int32 ids of every character of `text`.

    Raises:
      ValueError: `text` has a character outside the vocabulary.
    """
    codes = np.frombuffer(text.encode('utf-32-le'), dtype='<u4')
    if not self.size:
      ids = np.zeros(codes.shape, np.intp)
      known = np.zeros(codes.shape, bool)
    else:
      ids = np.minimum(np.searchsorted(self._codes, codes), self.size - 1)
      known = self._codes[ids] == codes
    if not known.all():
      unknown = sorted({chr(c) for c in codes[~known]})
      raise ValueError(f'characters outside the vocabulary: {unknown[:20]}')
    return ids.astype(np.int32)

  def decode(self, ids: Sequence[int]) -> str:
    """The characters of `ids`."""
    return ''.join(self.chars[i] for i in np.asarray(ids, np.int64).ravel())


def char_vocab(texts: Sequence[str]) -> CharVocab:
  """The character vocabulary of `texts` (every character, sorted)."""
  return CharVocab(''.join(set().union(*(set(t) for t in texts))))


class FileTokenizer:
  """A `tokenizers` tokenizer read from its JSON file.

  Attributes:
    path: the file.
    label: `'bpe<size>'` for a BPE model, else `'<model type><size>'`.
    size: vocabulary size, added tokens included.
  """

  def __init__(self, path: str):
    try:
      import tokenizers  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ValueError(f'data.tokenizer {path!r} needs the tokenizers '
                       'package: pip install tokenizers') from None
    try:
      self._tokenizer = tokenizers.Tokenizer.from_file(path)
    except Exception as e:  # pylint: disable=broad-exception-caught
      raise ValueError(f'data.tokenizer {path!r} is not a tokenizers JSON '
                       f'file ({type(e).__name__}: {e})') from None
    self.path = path
    self.size = int(self._tokenizer.get_vocab_size(with_added_tokens=True))
    kind = type(self._tokenizer.model).__name__.lower()
    self.label = f'{kind}{self.size}'

  def encode(self, text: str) -> np.ndarray:
    ids = self._tokenizer.encode(text, add_special_tokens=False).ids
    return np.asarray(ids, dtype=np.int32)

  def decode(self, ids: Sequence[int]) -> str:
    return self._tokenizer.decode([int(i) for i in np.ravel(ids)],
                                  skip_special_tokens=False)


def check_options(name: str, *, context: Any = None, tokenizer: Any = None,
                  val_size: Any = 0) -> tuple[int, str]:
  """Validates a text data set's options; no file is read.

  Args:
    name: a key of `TEXT_DATASETS`.
    context: window length T, an integer >= 1; `None` for `DEFAULT_CONTEXT`.
    tokenizer: `'char'`, or the path of a `tokenizers` JSON file; `None`
      for `'char'`.
    val_size: must be 0 (the validation split is held-out documents).

  Returns:
    `(context, tokenizer)` with the defaults filled in (a path user-expanded
    and absolute).

  Raises:
    ValueError: an unknown name, a bad context or val_size, or a tokenizer
      path that is not a file.
  """
  if name not in TEXT_DATASETS:
    raise ValueError(f'unknown text data set {name!r}; known: '
                     f'{sorted(TEXT_DATASETS)}')
  context = DEFAULT_CONTEXT if context is None else context
  try:
    if isinstance(context, bool):
      raise TypeError
    context = operator.index(context)
  except TypeError:
    raise ValueError(
        f'data.context must be an integer, got {context!r}') from None
  if context < 1:
    raise ValueError(f'data.context must be >= 1, got {context}')
  tokenizer = CHAR if tokenizer is None else tokenizer
  if not isinstance(tokenizer, str) or not tokenizer:
    raise ValueError(f"data.tokenizer must be 'char' or the path of a "
                     f'tokenizers JSON file, got {tokenizer!r}')
  if tokenizer != CHAR:
    tokenizer = os.path.abspath(os.path.expanduser(tokenizer))
    if not os.path.isfile(tokenizer):
      raise ValueError(f"data.tokenizer {tokenizer!r} is not a file (give "
                       "'char' or the path of a tokenizers JSON file)")
  if isinstance(val_size, bool) or val_size != 0:
    raise ValueError(
        f'data.val_size must be 0 for the text data set {name!r}, got '
        f'{val_size!r}: its validation split is the held-out documents '
        f'({_held_out_note(name)})')
  return context, tokenizer


def _held_out_note(name: str) -> str:
  corpus = TEXT_DATASETS[name]
  if corpus == 'shakespeare_plays':
    splits = text_builders.SHAKESPEARE_SPLITS
  elif corpus == 'austen_novels':
    splits = text_builders.AUSTEN_SPLITS
  else:
    return 'every tenth topic for validation, the next for test'
  return '; '.join(f'{s}: {", ".join(n)}' for s, n in splits.items())


def windows(tokens: np.ndarray, context: int) -> tuple[np.ndarray,
                                                       np.ndarray]:
  """Non-overlapping next-token windows of a token stream.

  Args:
    tokens: 1-D token ids.
    context: window length T >= 1.

  Returns:
    `(x, y)`, int32 [N, T] with N = (len(tokens) - 1) // T: x[i] =
    tokens[i*T:(i+1)*T] and y[i] = tokens[i*T+1:(i+1)*T+1]; the tokens
    after the last whole window are dropped.
  """
  tokens = np.asarray(tokens).ravel()
  if context < 1:
    raise ValueError(f'context must be >= 1, got {context}')
  n = max(len(tokens) - 1, 0) // context
  x = tokens[:n * context].reshape(n, context)
  y = tokens[1:n * context + 1].reshape(n, context)
  return x.astype(np.int32), y.astype(np.int32)


BYTES = 256  # the byte-level alphabet


def train_bpe(name: str, vocab_size: Any, data_dir: str, path: str
              ) -> FileTokenizer:
  """Trains a byte-level BPE on a corpus's train split and saves it.

  GPT-2's kind of tokenizer (the `tokenizers` library's byte-level
  pre-tokenizer, BPE model and decoder; no special tokens): every text has
  ids, so a model pretrained with it can be fine-tuned on another corpus.
  Deterministic for a given corpus and size.

  Args:
    name: a key of `TEXT_DATASETS`; only its train split is read.
    vocab_size: the vocabulary size, an int > 256 (the 256 bytes plus the
      merges).
    data_dir: a resolved TFDS data directory.
    path: the JSON file to write; must not exist yet.

  Returns:
    The saved tokenizer.

  Raises:
    ValueError: an unknown name, a bad size or an existing `path`, before
      the corpus is read.
  """
  if name not in TEXT_DATASETS:
    raise ValueError(f'unknown text data set {name!r}; known: '
                     f'{sorted(TEXT_DATASETS)}')
  if (isinstance(vocab_size, bool) or not isinstance(vocab_size, int)
      or vocab_size <= BYTES):
    raise ValueError(f'vocab_size must be an int > {BYTES} (the bytes plus '
                     f'the merges), got {vocab_size!r}')
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(path):
    raise ValueError(f'{path} exists; give a new file for the tokenizer')
  import tokenizers  # pylint: disable=g-import-not-at-top
  from tokenizers import decoders, models, pre_tokenizers, trainers  # pylint: disable=g-import-not-at-top,g-multiple-import
  tokenizer = tokenizers.Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  train = read_splits(name, data_dir)['train']
  tokenizer.train_from_iterator([d.text for d in train], trainer)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tokenizer.save(path)
  return FileTokenizer(path)


def get_tokenizer(spec: str, corpus_texts: Sequence[str] = ()) -> Tokenizer:
  """`'char'`: the `CharVocab` of `corpus_texts`; else a `FileTokenizer`."""
  if spec == CHAR:
    return char_vocab(corpus_texts)
  return FileTokenizer(spec)


def _as_str(value) -> str:
  value = value.item() if isinstance(value, np.ndarray) else value
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def read_splits(name: str, data_dir: str
                ) -> dict[str, list[text_builders.Document]]:
  """The documents of a text data set by split, each sorted by name.

  The corpus is prepared in `data_dir` first if it is not there yet.

  Args:
    name: a key of `TEXT_DATASETS`.
    data_dir: a resolved TFDS data directory.

  Returns:
    `{'train': [...], 'validation': [...], 'test': [...]}`.
  """
  if name not in TEXT_DATASETS:
    raise ValueError(f'unknown text data set {name!r}; known: '
                     f'{sorted(TEXT_DATASETS)}')
  corpus = TEXT_DATASETS[name]
  text_builders.prepare(corpus, data_dir)
  out = {}
  for split in text_builders.SPLITS:
    source = tfds.data_source(corpus, split=split, data_dir=data_dir,
                              download=False)
    records = [source[i] for i in range(len(source))]
    out[split] = sorted(
        (text_builders.Document(*(_as_str(r[f]) for f in
                                  text_builders.Document._fields))
         for r in records), key=lambda d: d.name)
  return out


def stream(documents: Sequence[text_builders.Document]) -> str:
  """The text of a split: the documents in name order, a blank line between
  them (each text ends with a newline; one more joins them)."""
  return '\n'.join(d.text for d in sorted(documents, key=lambda d: d.name))


def document_text(name: str, document: str, data_dir: str) -> str:
  """The raw text of one document of a text data set, by its name.

  Args:
    name: a key of `TEXT_DATASETS`, e.g. `'austen'`.
    document: the document's name, e.g. `'prideprejudice'`, `'hamlet'`.
    data_dir: a resolved TFDS data directory.

  Raises:
    ValueError: no such document (the message lists the valid names).
  """
  documents = {d.name: d for docs in read_splits(name, data_dir).values()
               for d in docs}
  if document not in documents:
    raise ValueError(f'no document {document!r} in {name!r}; its documents: '
                     f'{sorted(documents)}')
  return documents[document].text


def load(name: str, *, data_dir: str, context: Any = None,
         tokenizer: Any = None, val_size: Any = 0) -> Dataset:
  """Loads a text data set as next-token windows.

  Args:
    name: a key of `TEXT_DATASETS`.
    data_dir: a resolved TFDS data directory (prepared there on first use).
    context: window length T; see `check_options`.
    tokenizer: `'char'` or a tokenizers JSON path; see `check_options`.
    val_size: must be 0.

  Returns:
    A `Dataset` whose x and y are int32 [N, T] (y is x shifted by one
    token), one row per window of each split; `num_classes` is the
    vocabulary size and `name` is `<name>_<tokenizer label>`, e.g.
    `'shakespeare_char'`.

  Raises:
    ValueError: bad options (before anything is read), a missing corpus
      source, or a split with fewer than `context + 1` tokens.
  """
  context, tokenizer = check_options(name, context=context,
                                     tokenizer=tokenizer, val_size=val_size)
  if tokenizer != CHAR:
    tokenizer = FileTokenizer(tokenizer)  # read before the corpus
  by_split = read_splits(name, data_dir)
  if tokenizer == CHAR:
    tokenizer = char_vocab([d.text for docs in by_split.values()
                            for d in docs])
  arrays = {}
  for split, docs in by_split.items():
    tokens = tokenizer.encode(stream(docs))
    if len(tokens) < context + 1:
      raise ValueError(
          f'the {split} split of {name!r} has {len(tokens)} tokens, too few '
          f'for one window of data.context={context} (at most '
          f'{max(len(tokens) - 1, 0)})')
    arrays[split] = windows(tokens, context)
  return Dataset(
      x_train=arrays['train'][0], y_train=arrays['train'][1],
      x_val=arrays['validation'][0], y_val=arrays['validation'][1],
      x_test=arrays['test'][0], y_test=arrays['test'][1],
      num_classes=tokenizer.size, name=f'{name}_{tokenizer.label}')

