"""The `oneshot` job: prune a pretrained decoder LM once, measure perplexity.

A pretrained model (`oneshot.model`: 'smollm2', a Llama .gguf file or a
Hugging Face GPT-2 folder, `setup.pretrained`) is evaluated dense, then
pruned by every method x target (`core.prune`, block by block on
calibration windows) and evaluated again. Calibration windows are drawn at
random offsets (seeded by `config.seed`) from one document and the
evaluation windows are the first non-overlapping ones of another
(`corpus:document`, e.g. 'austen:emma' and 'austen:prideprejudice'), both
tokenized with the model's own tokenizer; a window of T tokens predicts
the T tokens after each of its positions.

Records, one stage each, so a killed run resumes at the first missing one:
`records/dense.json`, then `records/<method>_<target>.json` (perplexity,
the density of the projections, the wall time of the pruning and of the
evaluation). A resumed run's numbers are those of a run that never
stopped; its wall times (`prune_seconds`, `eval_seconds`: measurements,
not results) are not, so its records, `metrics.jsonl`, `summary.json` and
table differ from such a run's in those fields only. With `save_masks`,
each mask is also saved as the checkpoint
`mask_<method>_<target>` (a mask generator for ticket searches), which
`launch.weights` reads as the pretrained weights it keeps
(`checkpoint_state`): a magnitude or Wanda mask is the pruned network
itself; SparseGPT's is not (it also updates the weights it keeps, which
are not saved) and is refused there.
"""
import dataclasses
import math
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import oneshot as oneshot_lib
from ticketjax.core import stats
from ticketjax.methods.oneshot import core
from ticketjax.reports import plots as plots_lib
from ticketjax.run import lifecycle
from ticketjax.run import progress as progress_lib
from ticketjax.run import setup as setup_lib

SEEDS = 'refuse'
NON_SEMANTIC = ('oneshot.batch',)
BUILDS = False  # the model and the text come from `oneshot`, not data/model
# never read (the launcher refuses overrides of them: they are in the run
# folder's hash, so they would only make a new folder)
IGNORED = ('model', 'train', 'optimizer', 'grid', 'data.name',
           'data.val_size', 'data.augment')


@dataclasses.dataclass(frozen=True)
class OneshotConfig:
  """What a one-shot pruning job does.

  Attributes:
    model: 'smollm2', a .gguf file or a Hugging Face GPT-2 folder.
    calibration: 'corpus:document' the calibration windows come from.
    evaluation: 'corpus:document' perplexity is measured on.
    context: tokens per window.
    calibration_windows: windows drawn at random offsets for calibration.
    evaluation_windows: the first this many non-overlapping windows (0:
      all of the document).
    methods: from `core.METHODS`.
    targets: sparsities in (0, 1) or 'N:M' (`oneshot.parse_target`).
    blocksize, percdamp: SparseGPT's column block and damping.
    batch: windows per forward pass. Out of the run folder's hash: it
      trades memory for speed, but sums in another order, so the losses
      may differ in their last bits (resume with the same batch for
      byte-identical records).
    save_masks: save each mask as a checkpoint.
  """
  model: str = 'smollm2'
  calibration: str = 'austen:emma'
  evaluation: str = 'austen:prideprejudice'
  context: int = 512
  calibration_windows: int = 64
  evaluation_windows: int = 16
  methods: tuple[str, ...] = core.METHODS
  targets: tuple[Any, ...] = (0.5, '2:4')
  blocksize: int = 128
  percdamp: float = 0.01
  batch: int = 4
  save_masks: bool = False

  def validate(self) -> None:
    for name in ('context', 'calibration_windows', 'batch', 'blocksize'):
      if int(getattr(self, name)) < 1:
        raise ValueError(f'oneshot.{name} must be >= 1, got '
                         f'{getattr(self, name)}')
    if int(self.evaluation_windows) < 0:
      raise ValueError('oneshot.evaluation_windows must be >= 0 (0: all), '
                       f'got {self.evaluation_windows}')
    if not self.methods or not self.targets:
      raise ValueError('oneshot.methods and oneshot.targets must not be '
                       'empty')
    for m in self.methods:
      core.check_method(m)
    parsed = [oneshot_lib.parse_target(t) for t in self.targets]
    if any(not t.is_nm and t.sparsity == 0 for t in parsed):
      raise ValueError('oneshot.targets: sparsity 0 prunes nothing (every '
                       "run's table has the dense model's row); give "
                       'sparsities in (0, 1) or N:M')
    for name, values in (('methods', self.methods), ('targets', parsed)):
      if len(set(values)) != len(values):
        raise ValueError(f'oneshot.{name} {list(getattr(self, name))}: one '
                         'is given twice (each would be pruned again); give '
                         'each once')
    if not 0.0 <= float(self.percdamp):
      raise ValueError(f'oneshot.percdamp must be >= 0, got {self.percdamp}')
    for spec in (self.calibration, self.evaluation):
      if ':' not in str(spec):
        raise ValueError(f'document {spec!r}: write corpus:document, e.g. '
                         "'austen:prideprejudice'")


def oneshot_config(config) -> OneshotConfig:
  cfg = setup_lib.method_section(config, 'oneshot', OneshotConfig,
                                 tuples=('methods', 'targets'))
  cfg = dataclasses.replace(cfg, targets=tuple(
      _target(t) for t in cfg.targets))
  cfg.validate()
  return cfg


def _target(t):
  """0.5 and '0.5' are the sparsity 0.5; '2:4' stays a string."""
  if isinstance(t, str) and ':' not in t:
    try:
      return float(t)
    except ValueError:
      pass
  return t


def check(config) -> None:
  """Checks config.oneshot (ValueError) without loading anything."""
  oneshot_config(config)
  if int(config.num_seeds) != 1:
    raise ValueError('a oneshot job is deterministic: set num_seeds=1, got '
                     f'{config.num_seeds}')


def checkpoint_state(config: dict, name: str, saved) -> dict:
  """The network mask checkpoint `name` stands for: the run's pretrained
  weights (`oneshot.model`, as config.json has it) and the mask, one
  member. Refused for SparseGPT, whose pruned network also updates the
  weights it keeps (not saved), and for a model that no longer fits."""
  method = name[len('mask_'):].partition('_')[0]
  if not name.startswith('mask_') or method not in core.METHODS:
    raise ValueError(f'checkpoint {name!r} of a one-shot run is not a mask '
                     f'(mask_<method>_<target>, method one of {core.METHODS})')
  if method == 'sparsegpt':
    raise ValueError(
        f'checkpoint {name!r}: SparseGPT also updates the weights it keeps, '
        'and the run saved only its mask, so the pruned network is not in '
        'it; magnitude and Wanda masks read as their pruned networks')
  model = config['oneshot']['model']
  params = setup_lib.pretrained_params(model)
  if jax.tree.structure(params) != jax.tree.structure(saved) or any(
      np.shape(p) != np.shape(m) for p, m in zip(jax.tree.leaves(params),
                                                 jax.tree.leaves(saved))):
    raise ValueError(f'checkpoint {name!r} does not fit the model {model!r} '
                     'as it is now (did its files change since the run?)')
  first = lambda tree: jax.tree.map(lambda v: np.asarray(v)[None], tree)
  return {'params': first(params), 'model_state': {}, 'mask': first(saved)}


def tag(method: str, target) -> str:
  """'wanda_50' or 'sparsegpt_2of4': a file-name-safe stage name."""
  t = oneshot_lib.parse_target(target)
  what = f'{t.n}of{t.m}' if t.is_nm else f'{100 * t.sparsity:g}'
  return f'{method}_{what}'


def windows(ids: np.ndarray, context: int, count: int, rng=None):
  """(x, y) int32 windows of `context` tokens: the first `count`
  non-overlapping ones (0: all), or with `rng` `count` at random offsets."""
  n = len(ids) - 1
  if n < context:
    raise ValueError(f'the text has {len(ids)} tokens, fewer than one window '
                     f'of {context} + 1')
  if rng is None:
    total = n // context
    count = total if not count else min(count, total)
    starts = np.arange(count) * context
  else:
    starts = rng.integers(0, n - context + 1, size=count)
  x = np.stack([ids[s:s + context] for s in starts]).astype(np.int32)
  y = np.stack([ids[s + 1:s + context + 1] for s in starts]).astype(np.int32)
  return x, y


def canonical(config):
  """A copy of `config` whose `oneshot.targets` are written as the config
  file writes them (strings: '0.5', '2:4'), so that 0.5 and '0.5', the same
  target, make the same run folder. (A run made with numbers before this,
  2026-12-07, is in a folder of its own, which no longer matches.)"""
  tree = config.to_dict()
  targets = tree['oneshot']['targets']
  tree['oneshot']['targets'] = tuple(
      t.strip() if isinstance(t, str) and ':' in t else repr(float(t))
      for t in (targets if isinstance(targets, (list, tuple)) else [targets]))
  return ml_collections.ConfigDict(tree)


def run(config: Any, workdir: str) -> dict:
  """The `oneshot` job: see the module docstring."""
  check(config)
  config = canonical(config)
  cfg = oneshot_config(config)
  folder = lifecycle.Run(config, workdir)
  folder.check_seeds('one-shot pruning run')
  stages = ['dense'] + [tag(m, t) for m in cfg.methods for t in cfg.targets]
  done = folder.done(lambda summary: all(  # a damaged record: pruned again
      folder.has_records(name) for name in stages))
  if done is not None:
    return done
  # load and tokenize everything before the first file is written
  model_cfg, params, tokenizer = setup_lib.pretrained(cfg.model)
  if cfg.context > model_cfg.context:
    raise ValueError(f'oneshot.context {cfg.context} exceeds the model\'s '
                     f'context {model_cfg.context}')
  data_dir = config.data.get('data_dir') or None
  encode = lambda spec: np.asarray(tokenizer.encode(
      setup_lib.document(spec, data_dir)).ids, np.int32)
  calib_x, _ = windows(encode(cfg.calibration), cfg.context,
                       cfg.calibration_windows,
                       rng=np.random.default_rng(int(config.seed)))
  eval_x, eval_y = windows(encode(cfg.evaluation), cfg.context,
                           cfg.evaluation_windows)
  core.check_fits(model_cfg, params, cfg.methods, cfg.targets, cfg.blocksize)
  folder.begin()
  show = folder.show_progress

  def evaluate(p):
    start = time.perf_counter()
    out = core.perplexity(model_cfg, p, eval_x, eval_y, batch=cfg.batch)
    return {**out, 'eval_seconds': time.perf_counter() - start}

  if not folder.has_records('dense'):
    folder.write_records('dense', {'method': 'dense', 'target': 'dense',
                                   'density': 1.0, **evaluate(params)})
  todo = [(m, t) for m in cfg.methods for t in cfg.targets]
  recorded = {tag(m, t) for m, t in todo if folder.has_records(tag(m, t)) and (
      not cfg.save_masks or folder.store.usable('mask_' + tag(m, t)))}
  if recorded:
    print(f'resuming: {len(recorded)} of the {len(todo)} prunings are '
          'recorded', file=sys.stderr)
  for i, (method, target) in enumerate(todo):
    name = tag(method, target)
    if name in recorded:
      continue
    # one bar per pruning: the blocks of one method cost alike, so its
    # ETA holds (magnitude's blocks take far less than SparseGPT's)
    bar = progress_lib.Progress(
        model_cfg.num_layers, f'oneshot {cfg.model} {method} '
        f'{_target_name(str(target))} ({i + 1}/{len(todo)})', enabled=show,
        max_lines=2, unit='blocks')
    start = time.perf_counter()
    pruned, mask = core.prune(
        model_cfg, params, calib_x, method, target, batch=cfg.batch,
        blocksize=cfg.blocksize, percdamp=cfg.percdamp,
        on_block=lambda b: bar.update(b + 1))
    seconds = time.perf_counter() - start
    prunable = masks_lib.is_kernel
    density = masks_lib.summary(mask, prunable)
    folder.write_records(name, {
        'method': method, 'target': str(target),
        'density': float(density['density/total']),
        'prune_seconds': seconds,
        **evaluate(pruned)})
    if cfg.save_masks:
      folder.store.save('mask_' + name, mask)
  lines = [folder.read_records('dense')] + [
      folder.read_records(tag(m, t)) for m, t in todo]
  return folder.finish(summarize(folder, cfg, model_cfg, lines, len(eval_x),
                                 len(calib_x)), lines)


def summarize(folder, cfg: OneshotConfig, model_cfg, lines, num_eval,
              num_calib) -> dict:
  dense = lines[0]
  results = [{**r, 'increase': r['perplexity'] / dense['perplexity'] - 1.0}
             for r in lines[1:]]
  return {'job': 'oneshot', 'run_dir': folder.dir, 'model': cfg.model,
          'dataset': cfg.evaluation, 'metric': 'perplexity', 'num_seeds': 1,
          'num_layers': model_cfg.num_layers,
          'calibration': cfg.calibration, 'evaluation': cfg.evaluation,
          'context': cfg.context, 'calibration_windows': num_calib,
          'evaluation_windows': num_eval, 'tokens': dense['tokens'],
          'dense': dense, 'results': results}


def title(summary: dict) -> str:
  """What was pruned, on which calibration windows (none when magnitude,
  which reads no data, is the only method) and evaluated how."""
  calibrated = any(r['method'] != 'magnitude' for r in summary['results'])
  calibration = (f"calibrated on {summary['calibration_windows']} windows of "
                 f"{summary['context']} tokens of {summary['calibration']}, "
                 if calibrated else 'magnitude only (no calibration), ')
  return (f"One-shot pruning of {summary['model']} "
          f"({summary['num_layers']} "
          f"block{'s' * (summary['num_layers'] != 1)}, every projection): "
          f"{calibration}perplexity on {summary['evaluation_windows']} "
          f"windows of {summary['context']} tokens of {summary['evaluation']} "
          f"({summary['tokens']:,} tokens)")


def table(summary: dict) -> str:
  dense = summary['dense']
  rows = [['dense', '', '100.0', f"{dense['perplexity']:.2f}", '', '',
           f"{dense['eval_seconds']:.1f}"]]
  for r in summary['results']:
    rows.append([r['method'], _target_name(r['target']),
                 f"{100 * r['density']:.1f}", f"{r['perplexity']:.2f}",
                 f"{100 * r['increase']:+.1f}", f"{r['prune_seconds']:.1f}",
                 f"{r['eval_seconds']:.1f}"])
  return (title(summary) + ' (one deterministic run)\n\n'
          + stats.markdown_table(
              ['method', 'target', 'projections kept (%)', 'perplexity',
               'vs dense (%)', 'prune wall time (s)', 'eval wall time (s)'],
              rows))


def _target_name(target: str) -> str:
  return target if ':' in target else f'{100 * float(target):g}% sparse'


def report(summary: dict, lines: list, config=None) -> lifecycle.Report:
  del lines, config

  def draw(path):
    plt = plots_lib.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    targets = list(dict.fromkeys(r['target'] for r in summary['results']))
    methods = list(dict.fromkeys(r['method'] for r in summary['results']))
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
      values = [next((r['perplexity'] for r in summary['results']
                      if r['method'] == method and r['target'] == t),
                     math.nan) for t in targets]
      ax.bar(np.arange(len(targets)) + (j - (len(methods) - 1) / 2) * width,
             values, width, label=method)
    ax.axhline(summary['dense']['perplexity'], color='k', ls='--', lw=1,
               label='dense')
    ax.set_xticks(np.arange(len(targets)),
                  [_target_name(t) for t in targets])
    ax.set_yscale('log')
    plots_lib.plain_log_ticks(ax.yaxis)
    plots_lib.save(fig, ax, path, title(summary), 'perplexity',
                   note='one deterministic run per bar')

  return lifecycle.Report(title(summary), table(summary),
                          {'perplexity.png': draw})


def series(summary: dict) -> list[dict]:
  """For the cross-run report's perplexity plot: one series per method and
  kind of target (unstructured sparsities; N:M), each target a point of
  one deterministic run, and the dense model as the reference line. A
  summary from before it said its metric gives none."""
  if summary.get('metric') != 'perplexity':
    return []
  member = lambda r: {'density': r['density'], 'final_test_loss': r['loss']}
  out = {}
  for r in summary['results']:
    nm = ':' in r['target']
    label = f"{r['method']} {'N:M' if nm else 'unstructured'}"
    out.setdefault(label, {})[r['target']] = [member(r)]
  return [{'label': label, 'points': points}
          for label, points in out.items()] + [
              {'label': 'dense', 'points': {1.0: [member(summary['dense'])]},
               'reference': True}]
