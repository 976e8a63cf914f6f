"""The finished run folders a cross-run report reads, and their names.

`find_runs` reads the `summary.json` of every finished run folder under
some workdirs (a run still going, or killed, is left out and named);
`name_runs` gives each a readable name ('imp mnist1d_mlp #2'), which the
report and the methods' own sections (`cross_run_section`,
`methods/registry.py`) show; `differences` says in which config fields a
run differs from most runs of its job and model. Pure reading.
"""
import collections
import glob
import os

import ml_collections

from ticketjax.methods import registry
from ticketjax.run import records as records_lib
from ticketjax.run import workdir as workdir_lib


def unfinished(run_dir: str) -> bool:
  """Whether the run in `run_dir` has not finished (still running, or
  killed): its `summary.json` is a mid-run one, and its
  `records/outputs.json` (`lifecycle.SUMS`) is `{}` until the run seals its
  final outputs."""
  path = os.path.join(run_dir, 'records', 'outputs.json')
  try:
    return os.path.exists(path) and not records_lib.read_json(path)
  except ValueError:  # damaged: the run's next launch recomputes its outputs
    return False


def find_runs(paths, left_out: list | None = None) -> list[dict]:
  """Summaries of the finished run folders in (or at) `paths`, sorted by
  folder, each once however often it is given; the unfinished ones'
  folders are appended to `left_out`."""
  runs, seen, unfinished_dirs = [], set(), []
  for path in paths:
    if os.path.isfile(path):
      raise ValueError(f'workdir {path} is a file; give a folder of run '
                       'folders, or a run folder')
    if not os.path.isdir(path):
      raise ValueError(f'no such workdir: {path!r}')
    files = sorted(glob.glob(os.path.join(path, '*', 'summary.json')))
    if os.path.exists(os.path.join(path, 'summary.json')):
      files.insert(0, os.path.join(path, 'summary.json'))
    for f in files:
      run_dir = os.path.dirname(os.path.abspath(f))
      if os.path.realpath(run_dir) in seen:
        continue  # (a workdir and one of its folders, or a path twice)
      seen.add(os.path.realpath(run_dir))
      if unfinished(run_dir):
        unfinished_dirs.append(run_dir)
        continue
      summary = records_lib.read_json(f)
      summary['run_dir'] = run_dir
      runs.append(summary)
  if left_out is not None:
    left_out.extend(unfinished_dirs)
  if not runs:
    still = (f"; not finished (still running, or stopped): "
             f"{', '.join(os.path.basename(d) for d in unfinished_dirs)}"
             if unfinished_dirs else '')
    raise ValueError(f'no finished runs (*/summary.json, sealed in '
                     f'records/outputs.json) under {paths}{still}')
  return runs


def check_out(out_dir: str) -> None:
  """ValueError if `out_dir`, where a report is written, is a run folder
  or inside one (it, or a folder above it, holds `config.json` and a run's
  `.lock`, `records/` or `summary.json`): a report there would overwrite
  the run's own report and plots."""
  folder = os.path.abspath(out_dir)
  while True:
    if os.path.isfile(os.path.join(folder, 'config.json')) and any(
        os.path.exists(os.path.join(folder, name))
        for name in ('.lock', 'records', 'summary.json')):
      where = 'is' if folder == os.path.abspath(out_dir) else 'is inside'
      raise ValueError(
          f'report folder {out_dir} {where} the run folder {folder}: its '
          'report and plots would be overwritten; give another folder')
    parent = os.path.dirname(folder)
    if parent == folder:
      return
    folder = parent


def name(run) -> str:
  """'imp mnist1d_mlp', and ' #2', ' #3', ... for a later run of the same
  job and model (`name_runs` numbers them in folder order)."""
  return run.get('_name') or f"{run['job']} {run.get('model', '')}"


def config(run) -> dict:
  """The run's config.json ({} without one), read once."""
  if '_config' not in run:
    path = os.path.join(run['run_dir'], 'config.json')
    run['_config'] = (records_lib.read_json(path) if os.path.exists(path)
                      else {})
  return run['_config']


def steps(run) -> str:
  """The run's `train.steps` (per level or stage), from its config.json;
  'none' for a method that trains nothing from it (`BUILDS = False`)."""
  if not getattr(registry.get(run['job']), 'BUILDS', True):
    return 'none'
  return str((config(run).get('train') or {}).get('steps', ''))


def _flat(tree, prefix='') -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def differences(runs) -> dict:
  """{run_dir: 'imp.rewind=step, imp.rewind_step=13'}: the config fields
  in which a run differs from most runs of its job and model, with its
  values; a field without a majority value is listed for every run. From
  config.json, without the fields no run folder's hash holds (num_seeds,
  data_dir, ...; `workdir.NON_SEMANTIC`), a field left out at its default
  taken at it, '-' for one a run lacks; '' for a run alone of its kind or
  like most."""
  groups = collections.defaultdict(list)
  for run in runs:
    groups[run['job'], model_label(run)].append(run)
  out = {}
  for group in groups.values():
    flat = [{**_flat(workdir_lib.DROPPED_AT_DEFAULT),
             **_flat(workdir_lib.semantic_config(config(r)))}
            for r in group]
    keys = sorted({k for f in flat for k in f})
    value = lambda f, k: repr(f.get(k, '-'))
    common = {}
    for k in keys:
      top, count = collections.Counter(value(f, k) for f in flat
                                       ).most_common(1)[0]
      common[k] = top if 2 * count > len(flat) else None
    for run, f in zip(group, flat):
      shown = {**f, **_flat(config(run))}  # as written (a grid's ints)
      out[run['run_dir']] = ', '.join(
          f'{k}={_shown(k, shown)}' for k in keys
          if value(f, k) != common[k])
  return out


# what a field a config leaves out means (its configs add it only when set)
_ABSENT = {'data.tokenizer': 'char'}


def _shown(key: str, fields: dict) -> str:
  """A field's value in the runs table: 'none' for an empty list (a grid
  name without values), the meaning of a field left out (`_ABSENT`), else
  '-' for one the run's config lacks."""
  if key not in fields:
    return _ABSENT.get(key, '-')
  value = fields[key]
  return 'none' if isinstance(value, (list, tuple)) and not value else str(
      value)


def title(run) -> str:
  """What the run is, in its own report's title (method, model, data,
  rule, rates, rewind mode, seeds), from its summary and config.json ('',
  a run folder without one, which no run of ticketjax leaves)."""
  if not config(run):
    return ''
  return registry.get(run['job']).report(
      run, [], ml_collections.ConfigDict(config(run))).title


def model_label(run) -> str:
  """The model's name; for 'pretrained', with its source's file or folder
  name, e.g. 'pretrained(finetuned)' (from the run's config.json)."""
  model = run.get('model', '')
  if model != 'pretrained' or not config(run):
    return model
  kwargs = config(run).get('model', {}).get('kwargs') or {}
  source = str(kwargs.get('source', 'smollm2')).rstrip('/')
  return f'{model}({os.path.basename(source)})'


def name_runs(runs) -> None:
  """Gives each run a readable name: job and model (a pretrained model's
  source), numbered when several runs share them (no hash fragments)."""
  seen = collections.Counter()
  for run in runs:
    base = f"{run['job']} {model_label(run)}".strip()
    seen[base] += 1
    run['_name'] = base if seen[base] == 1 else f'{base} #{seen[base]}'
