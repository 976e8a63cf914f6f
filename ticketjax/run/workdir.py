"""Content-addressed run folders: a run's folder is named by its config.

`run_dir(workdir, config)` is `workdir/<job>-<hash>` where the hash is the
SHA-256 of the canonical JSON (sorted keys) of the *semantic* config: every
field that changes what is computed. Fields that only say how much or where
(`NON_SEMANTIC`: the seed count, the data directory, evaluation chunking,
member grouping and the CPU kernels (float rounding only), how often a
stage saves where it is, progress display) stay out, so running more
seeds of the same experiment lands in the same folder. `first_seed`
(which seeds a run holds) is semantic but left out at its default 0, and
so are the empty lists of `grid` (no hyperparameter grid), so older
folders keep their names. `SCHEMA_VERSION` is part of the hash; bump it
only when old folders must not be reused.

A field of `RUN_FIELDS` (another run's folder) is hashed, and stored in
`config.json`, as its absolute, normalized path (since 2026-12-07: a run
that read another through a relative path or one with a trailing slash
is found under a new name and computed again).

The hash holds a path, not what is at it: a config field of
`INPUT_FIELDS` naming a file or folder (a pretrained source, a tokenizer)
has its contents' sha256 written to `inputs.json` in the run folder when
the run begins, and `check_inputs` refuses the folder once they have
changed (its results are the old contents').
"""
import hashlib
import json
import os
from typing import Any

from ticketjax.run import records

SCHEMA_VERSION = 1

NON_SEMANTIC = (
    'num_seeds',
    'data.data_dir',
    'train.eval_batch_size',
    'train.member_group',
    'train.checkpoint_every_s',
    'cpu_kernels',
    'progress',
)

# Fields left out of the hash while they hold their default, so adding
# them did not move existing runs' folders.
DROPPED_AT_DEFAULT = {'first_seed': 0, 'data.augment': 'none',
                      'imp.structure': 'unstructured',
                      'pai.structure': 'unstructured', 'pai.controls': [],
                      'pai.prune_at': 'init', 'pai.rounds': 0,
                      'lmc.random_masks': False,
                      'cs.controls': [], 'edgepopup.controls': []}


# Fields naming another run's folder: hashed as the absolute, normalized
# path, so 'imp-x/' and a relative spelling are the run they name.
RUN_FIELDS = ('lmc.imp_run', 'transfer.source_run', 'transfer.target_run')


def _parent(tree: dict, dotted: str):
  """(the dict that holds field `dotted`, its name there); (None, name)
  where a section on the way is missing."""
  *parents, leaf = dotted.split('.')
  for name in parents:
    tree = tree.get(name) if isinstance(tree, dict) else None
  return (tree if isinstance(tree, dict) else None), leaf


def _run_fields(tree: dict):
  """(field, section, name) of every `RUN_FIELDS` entry `tree` sets to a
  path: `section[name]` is its value."""
  for dotted in RUN_FIELDS:
    section, leaf = _parent(tree, dotted)
    if section is not None and isinstance(section.get(leaf), str) and (
        section[leaf]):
      yield dotted, section, leaf


def absolute_runs(tree: dict) -> dict:
  """A copy of the config dict `tree` with its `RUN_FIELDS` as absolute,
  normalized paths (what `config.json` stores and the hash reads)."""
  tree = json.loads(json.dumps(tree, default=list))
  for _, section, leaf in _run_fields(tree):
    section[leaf] = os.path.normpath(os.path.abspath(section[leaf]))
  return tree


def relative_runs_as(stored: dict, config: Any) -> dict:
  """`stored` (a run folder's config.json) with each relative `RUN_FIELDS`
  path taken from `config`: a run from before they were stored absolute,
  whose folder name (the hash) already says they matched then."""
  stored = json.loads(json.dumps(stored))
  mine = {dotted: section[leaf] for dotted, section, leaf in
          _run_fields(absolute_runs(_to_dict(config)))}
  for dotted, section, leaf in _run_fields(stored):
    if not os.path.isabs(section[leaf]) and dotted in mine:
      section[leaf] = mine[dotted]
  return stored


def _to_dict(config: Any) -> dict:
  return config.to_dict() if hasattr(config, 'to_dict') else dict(config)


_ALWAYS = object()


def _drop(tree: dict, dotted: str, only_if=_ALWAYS) -> None:
  """Removes field `dotted` from `tree` (only while it equals `only_if`,
  when that is given; a missing field counts as equal)."""
  tree, leaf = _parent(tree, dotted)
  if tree is not None and (only_if is _ALWAYS
                           or tree.get(leaf, only_if) == only_if):
    tree.pop(leaf, None)


def semantic_config(config: Any, extra_non_semantic=()) -> dict:
  """The config as a dict without the non-semantic fields."""
  tree = json.loads(json.dumps(_to_dict(config), sort_keys=True,
                               default=list))
  for dotted in tuple(NON_SEMANTIC) + tuple(extra_non_semantic):
    _drop(tree, dotted)
  for dotted, default in DROPPED_AT_DEFAULT.items():
    _drop(tree, dotted, only_if=default)
  tree = absolute_runs(tree)
  grid = {k: v for k, v in (tree.pop('grid', None) or {}).items() if v}
  if grid:  # a grid's values are floats whatever way they were written
    tree['grid'] = {k: [float(x) for x in v] if isinstance(v, list)
                    else float(v) for k, v in grid.items()}
  return tree


def config_hash(config: Any, extra_non_semantic=()) -> str:
  """12 hex digits of SHA-256 over the canonical semantic config."""
  payload = {'schema': SCHEMA_VERSION,
             'config': semantic_config(config, extra_non_semantic)}
  text = json.dumps(payload, sort_keys=True, separators=(',', ':'))
  return hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]


def run_dir(workdir: str, config: Any, extra_non_semantic=()) -> str:
  """`workdir/<job>-<hash>`: where this config's run lives (the workdir's
  path normalized: 'runs/imp-x/..' is 'runs')."""
  return os.path.join(os.path.normpath(workdir),
                      f'{config.job}-{config_hash(config, extra_non_semantic)}')


# the longest path a run writes below its workdir (run folder, checkpoint
# step, orbax's temporary names), with room to spare
PATH_INSIDE = 256


def check_folder(path: str, what: str) -> None:
  """ValueError naming `what` for a folder path that is empty, a file,
  below a file, where this process cannot write, or whose names or length
  the file system cannot hold (checked before anything is written; the
  folder need not exist yet)."""
  if not path:
    raise ValueError(f'the {what} is empty; give a folder (created if '
                     'missing)')
  full = os.path.abspath(path)
  if os.path.exists(full) and not os.path.isdir(full):
    raise ValueError(f'{what} {path} is a file; give a folder')
  existing = full
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f'{what} {path} lies below the file {existing}; give '
                     'a folder')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'{what} {path}: {existing} is not writable by this '
                     'process; give a folder it can write')
  shown = path if len(path) <= 100 else f'{path[:50]}...{path[-30:]}'
  longest = os.pathconf(existing, 'PC_NAME_MAX')  # bytes
  for size in (len(os.fsencode(name)) for name in full.split(os.sep)):
    if 0 < longest < size:
      raise ValueError(f'{what} {shown}: a name in it is {size} bytes, '
                       f'longer than the {longest} this file system allows')
  room, size = (os.pathconf(existing, 'PC_PATH_MAX') - PATH_INSIDE,
                len(os.fsencode(full)))
  if 0 < room < size:
    raise ValueError(f'{what} {shown} is {size} bytes long; a run writes '
                     f'paths up to {PATH_INSIDE} bytes below it, so give '
                     f'one of at most {room}')


# {config field that may name a file or folder the run reads: its values
# that name no file (the built-in tokenizer, the packaged model)}
INPUT_FIELDS = {'model.kwargs.source': (), 'data.tokenizer': ('char',),
                'oneshot.model': ('smollm2',)}
INPUTS = 'inputs.json'  # in the run folder, next to config.json


def input_sums(config: Any) -> dict[str, str]:
  """{field: sha256 of its contents} of the `INPUT_FIELDS` of `config`
  that name a file or folder (`~` expanded, relative to the working
  directory, as the loaders read them)."""
  out = {}
  for dotted, names in INPUT_FIELDS.items():
    value = config
    for name in dotted.split('.'):
      value = value.get(name) if hasattr(value, 'get') else None
    if not isinstance(value, str) or not value or value in names:
      continue
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.exists(path):
      out[dotted] = records.content_sum(path)
  return out


def check_inputs(run_dir: str, sums: dict[str, str]) -> bool:
  """ValueError if `run_dir` was run from other contents of its input
  files than `sums` (`input_sums` now); whether it holds their sums (a
  damaged file is reported and is to be written again)."""
  path = os.path.join(run_dir, INPUTS)
  if not records.intact(path):
    return False
  stored = records.read_json(path)
  changed = [f for f in stored if sums.get(f) != stored[f]]
  if changed:
    raise ValueError(
        f'the contents of {", ".join(changed)} changed since {run_dir} was '
        'run from them (their sha256 differs): its results are those of the '
        'old contents; use another workdir, or move the folder away to run '
        'again')
  return True
