"""The run lifecycle every method shares: `Run`.

A method (a module under `ticketjax/methods/`, see `methods/registry.py`)
holds what is its own: its config section, its stages (what it trains and
in which order) and its summary, table and plots. Everything around them is
here, written once:

  1. `Run(config, workdir, ...)` checks the workdir (a writable folder,
     or one it can create), validates the whole config and loads the data
     (`setup.build`), then finds the content-addressed run folder
     (`workdir.run_dir`, with the method's non-semantic fields) and checks
     that a `config.json` already there is this config's (never another's,
     and never a run folder inside a run folder). Nothing is written yet: a
     bad input fails with a ValueError and an untouched workdir.
  2. `check_seeds(...)` applies the one seed policy (below) against the
     folder's `config.json` (`start(what)` does it, returns the summary of
     a finished run, `done()`, and otherwise goes on to step 3).
  3. `begin()` creates the folder, takes its lock (`run/lock.py`, `.lock`:
     one writer per run folder; a second process is refused with a message
     naming the holder; the kernel drops the lock of a killed process, so a
     stale lock never blocks a rerun) and writes `config.json` (and, the
     first time, the sha256 of the files the config names: a pretrained
     source, a tokenizer; `workdir.check_inputs` refuses the folder in
     step 1 once they have changed).
  4. The method runs its stages; each stage ends by writing its records
     (`write_records`, atomic) and then its checkpoint (`store`), so a
     killed run resumes at the first stage whose checkpoint is missing
     (`stage_done`), from its newest save inside the stage if it has one
     (`steps.MidStage`). `train_stage` is the common one: members trained
     from their start states to the end, with per-member summaries.
  5. `finish(summary, lines)` writes `metrics.jsonl`, `summary.json`,
     `report.md` and the method's plots (its `report(summary, lines,
     config) -> Report`) and, when all are written, the sha256 sums of the
     first two (`records/outputs.json`: a file emptied or cut at a line end
     still parses), all atomically, and prints the table and where the
     results went. A method may also call it mid-run (`final=False`, after
     an IMP level, say): the records, summary and report are rewritten,
     and the plots redrawn at most once every `REDRAW_S` seconds (a level
     of seconds would spend most of its time drawing); the finished run's
     files are the same either way. A rerun of a finished run (`done()`)
     prints the table again, first redrawing a report or plot that is
     missing, empty, or drawn under other non-semantic fields.

Seed policy. `num_seeds` is out of the hash, so a folder may hold a run with
another seed count. The same count resumes (or finds the run done). More
seeds extend the run where the method can (`seeds='extend'`: the new seeds
run as a search of their own and are merged in), rerun it from scratch
where that is cheap (`'rerun'`, the dense job: `begin` removes the old
count's checkpoints and records), and are refused otherwise
(`'refuse'`) with a message naming the valid counts; fewer seeds are always
refused. Extending and rerunning each say so in one stderr line. A folder
whose earlier attempt did no work yet (no checkpoint, no record) takes any
count.

Health: `run/health.py` flags diverged members in their records;
summaries leave them out of their means and count them.
"""
import functools
import os
import sys
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from ticketjax.core import masks as masks_lib
from ticketjax.core import train as train_lib
from ticketjax.methods import registry
from ticketjax.run import health
from ticketjax.run import hosts
from ticketjax.run import lock as lock_lib
from ticketjax.run import loop
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import steps as steps_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib

SEED_POLICIES = ('extend', 'rerun', 'refuse')
# written by `finish`, with their sha256 sums in `SUMS`
OUTPUTS = ('metrics.jsonl', 'summary.json')
SUMS = 'records/outputs.json'
REDRAW_S = 60.0  # mid-run outputs redraw the plots at most this often


class Report(NamedTuple):
  """What a method's `report(summary, lines, config)` gives: the title,
  the printed table (markdown) and {file name: draw(path)} of its plots."""
  title: str
  table: str
  plots: Mapping[str, Callable[[str], None]]


class Run:
  """One job's run folder and the lifecycle around the method's stages.

  Attributes:
    config: the ConfigDict as given.
    method: the method's module (`methods/registry.py`, by `config.job`):
      its SEEDS policy, NON_SEMANTIC fields and `report`.
    setup: the validated pieces (data, model, optimizer config, trainer);
      None for a method with BUILDS = False.
    dir: the run folder, `<workdir>/<job>-<hash>`.
    store: the run's named checkpoints (`run/store.py`).
    num_seeds: the seed count asked for.
    show_progress: whether progress lines are printed (`config.progress`).
  """

  def __init__(self, config: Any, workdir: str):
    self.config = config
    self.method = registry.get(config.job)
    workdir_lib.check_folder(workdir, 'workdir')
    # a method that trains nothing from the config's data and model (a
    # pretrained model pruned once) sets BUILDS = False and checks its own
    self.setup = (setup_lib.build(config)
                  if getattr(self.method, 'BUILDS', True) else None)
    self.non_semantic = tuple(self.method.NON_SEMANTIC)
    self.dir = workdir_lib.run_dir(workdir, config, self.non_semantic)
    self.store = store.Checkpoints(self.dir)
    self.num_seeds = int(config.num_seeds)
    self.show_progress = bool(config.get('progress', True))
    self.rerun = False  # set by `check_seeds` under the 'rerun' policy
    self.inputs = workdir_lib.input_sums(config)
    self.check_folder()
    self._drawn_at = time.monotonic()  # the last plots, or the start

  # -- paths and files -----------------------------------------------------

  def path(self, *names: str) -> str:
    return os.path.join(self.dir, *names)

  def records_path(self, name: str) -> str:
    return self.path('records', name + '.json')

  def has_records(self, name: str) -> bool:
    """Whether `records/<name>.json` is there and intact (a damaged one is
    reported, and recomputed by the caller)."""
    return records_lib.intact(self.records_path(name))

  def stage_done(self, name: str) -> bool:
    """Whether stage `name` is complete: its records and its checkpoint
    are on disk and intact. A damaged one is reported and the stage is
    recomputed (the same bytes: training is deterministic)."""
    return self.has_records(name) and self.store.usable(name)

  @functools.cached_property
  def data(self) -> train_lib.DeviceData:
    """The data set on the device(s), copied once."""
    return train_lib.to_device(self.setup.dataset)

  def train_stage(self, name: str, trainer, start_M, who: Sequence[Mapping],
                  prunable, *, desc: str, checkpoint: str | None = None,
                  train_accuracy: bool = True, extras=None, **base):
    """Trains members `start_M` (member i is `who[i]`) to `train.steps`
    in one program; returns their final states.

    Records every evaluation (`base`, who, step, metrics), flags diverged
    members, and writes `records/<name>.json` ({'evals', 'members'}: per
    member `member_stats` and, unless `prunable` is None, the densities of
    its mask over `prunable`), then the checkpoint `checkpoint` (default
    `name`) of the final states. Every `train.checkpoint_every_s` seconds
    it saves where it is (`steps.MidStage`), so a killed stage resumes from
    there.
    `extras(final_M)`, if given, returns more per-member summary fields (a
    dict per member), written with the rest.
    """
    indexed = [{**w, 'member': i} for i, w in enumerate(who)]
    total = self.setup.train.steps
    with steps_lib.MidStage(self, name,
                            self.setup.train.checkpoint_every_s) as saves:
      state_M, evals = saves.start(start_M)
      final_M = loop.train_chunks(
          trainer, state_M, self.data, total, self.setup.train.eval_every,
          on_eval=lambda step, per_member: evals.extend(
              records_lib.member_records(indexed, per_member, step=step,
                                         **base)),
          on_chunk=saves.on_chunk(evals, total), desc=desc,
          show_progress=self.show_progress)
    health.flag_diverged(evals, key=lambda r: r['member'])
    dens = (masks_lib.member_densities(final_M.mask, prunable)
            if prunable is not None else [{}] * len(who))
    members = [{**w, **health.member_stats(
        [r for r in evals if r['member'] == i], train=train_accuracy),
                **dens[i]} for i, w in enumerate(who)]
    if extras is not None:
      for m, more in zip(members, extras(final_M)):
        m.update(more)
    for r in evals:
      del r['member']
    self.write_records(name, {'evals': evals, 'members': members})
    self.store.save(checkpoint or name, final_M)
    saves.end()
    return final_M

  def start(self, what: str = 'run') -> dict | None:
    """The seed check (`what` names the run in its errors), then the
    summary of a finished run (`done()`), or None once `begin()` has
    taken the folder: the method runs its stages next."""
    self.check_seeds(what)
    done = self.done()
    if done is None:
      self.begin()
    return done

  def one_stage(self, what: str, train: Callable[[], Any],
                outputs: Callable[[dict], tuple[dict, list]]) -> dict:
    """The whole life of a job with one training stage ('train', saved as
    `checkpoints/final`): the seed check, `done()`, `begin()`, `train()`
    unless its records and checkpoint are there and intact, then
    `finish(*outputs(records))`. `what` names the run in seed errors."""
    done = self.start(what)
    if done is not None:
      return done
    if not (self.has_records('train') and self.store.usable('final')):
      train()
    summary, lines = outputs(self.read_records('train'))
    return self.finish(summary, lines)

  def write_records(self, name: str, obj, exact: bool = False) -> None:
    """`records/<name>.json`, atomically (temp file + rename); `exact`
    keeps non-finite floats for `read_records(name, exact=True)`."""
    os.makedirs(self.path('records'), exist_ok=True)
    records_lib.write_json(self.records_path(name), obj, exact)

  def read_records(self, name: str, exact: bool = False):
    obj = records_lib.read_json(self.records_path(name))
    return records_lib.from_exact(obj) if exact else obj

  def stored_config(self) -> dict | None:
    """The folder's `config.json`, or None before the first `begin`."""
    path = self.path('config.json')
    return records_lib.read_json(path) if os.path.exists(path) else None

  def read_summary(self) -> dict | None:
    path = self.path('summary.json')
    return records_lib.read_json(path) if os.path.exists(path) else None

  def has_work(self) -> bool:
    """Whether an earlier attempt left a checkpoint, a record or results
    (a file anywhere under checkpoints/ or records/; empty folders don't
    count)."""
    return any(files for root in (self.store.root, self.path('records'))
               for _, _, files in os.walk(root)) or any(
                   os.path.exists(self.path(name))
                   for name in ('metrics.jsonl', 'summary.json'))

  # -- seeds ---------------------------------------------------------------

  def stored_seeds(self) -> int | None:
    """The seed count of the run already in the folder (None: none)."""
    stored = self.stored_config()
    if stored is None or not self.has_work():
      return None
    return int(stored.get('num_seeds', self.num_seeds))

  def check_seeds(self, what: str = 'run', extendable: bool = True,
                  policy: str | None = None) -> int | None:
    """Applies the seed policy (by default the method's `SEEDS`); returns
    the stored count to extend from.

    Returns None when there is nothing to extend (a new folder, the same
    count, or `'rerun'`). Raises ValueError for a count the policy refuses.
    `extendable=False` refuses growth for this run although the method
    could grow (a hyperparameter grid).
    """
    policy = policy or self.method.SEEDS
    self.rerun = False
    if policy not in SEED_POLICIES:
      raise ValueError(f'unknown seed policy {policy!r}; valid policies are '
                       f'{list(SEED_POLICIES)}')
    old = self.stored_seeds()
    if old is None or old == self.num_seeds:
      return None
    if old > self.num_seeds:
      more = ' (more seeds extend it)' if policy == 'extend' else ''
      raise ValueError(
          f'{self.dir} holds a {what} with {old} seeds and this config asks '
          f'for {self.num_seeds}; ask for num_seeds={old}{more}')
    if policy == 'rerun':
      self.rerun = True  # `begin` removes the other count's work
      return None
    if policy == 'extend' and extendable:
      return old
    raise ValueError(
        f'{self.dir} holds a {what} with {old} seeds and this config asks '
        f'for {self.num_seeds}; it cannot grow to more seeds: ask for '
        f'num_seeds={old} or use a new workdir')

  # -- the folder ----------------------------------------------------------

  def check_folder(self) -> None:
    """The folder holds this config's run (or none yet): ValueError if its
    `config.json` belongs to another config, the files the config names
    changed since (`workdir.check_inputs`), or the workdir is itself a run
    folder."""
    parent = os.path.dirname(self.dir)
    if os.path.exists(os.path.join(parent, 'config.json')):
      raise ValueError(
          f'workdir {parent} is a run folder (it holds config.json); give '
          'the folder that holds run folders, e.g. its parent')
    self.inputs_stored = False
    stored = self.stored_config()
    if stored is None:
      return
    mine = workdir_lib.semantic_config(self.config, self.non_semantic)
    theirs = workdir_lib.semantic_config(
        workdir_lib.relative_runs_as(stored, self.config), self.non_semantic)
    if mine != theirs:
      fields = sorted(k for k in set(mine) | set(theirs)
                      if mine.get(k) != theirs.get(k))
      raise ValueError(
          f'{self.dir}/config.json is the config of another run (it differs '
          f'in {fields}); this folder is not reused for another config: '
          'move it away, or use a new workdir')
    self.inputs_stored = workdir_lib.check_inputs(self.dir, self.inputs)

  def begin(self) -> None:
    """Creates the folder, takes its lock, writes `config.json` (and
    `inputs.json`, `workdir.input_sums`, if not there yet).

    When the 'rerun' policy reruns a run of fewer seeds, it first checks
    the count again under the lock (another process may have run since:
    more seeds now are refused) and removes that run's checkpoints and
    records; its results stay until the new ones replace them (`done`
    ignores a summary of another count).
    """
    try:
      os.makedirs(self.dir, exist_ok=True)
    except OSError as e:  # what `check_folder` cannot see: /proc, say
      raise ValueError(f'cannot create the run folder {self.dir} '
                       f'({e.strerror}); give a workdir this process can '
                       'write') from None
    self.lock()
    if self.method.SEEDS == 'rerun':  # (every process, or none, gets here)
      if self.rerun:
        self.check_seeds()  # again, under the lock
      if hosts.agree(self.rerun):  # process 0's reading of the folder
        if hosts.is_main():
          print(f'{self.dir} holds a run of {self.stored_seeds()} seeds: '
                f'training all {self.num_seeds} again', file=sys.stderr)
        hosts.on_main('removed the run of another seed count',
                      steps_lib.remove, self.store.root, self.path('records'))
      self.rerun = False
    records_lib.write_json(self.path('config.json'),
                           workdir_lib.absolute_runs(self.config.to_dict()))
    if self.inputs and not self.inputs_stored:  # (workdir.check_inputs)
      if self.has_work() and hosts.is_main():
        print(f'{self.dir}: recording the sha256 of {", ".join(self.inputs)} '
              'now; the results already there were not checked against '
              'them', file=sys.stderr)
      records_lib.write_json(self.path(workdir_lib.INPUTS), self.inputs)
      self.inputs_stored = True

  def lock(self) -> None:
    """Takes the folder's `.lock` (`run/lock.py`: one writer per run
    folder, ValueError if another process holds it) until `jobs.run`
    releases it."""
    lock_lib.take(self.dir)

  # -- outputs -------------------------------------------------------------

  def finish(self, summary: dict, lines: Sequence[Mapping], *,
             final: bool = True, show: bool = True) -> dict:
    """`metrics.jsonl` (one JSON object per line), `summary.json`,
    `report.md` and the plots, each atomically; returns `summary`.

    Mid-run (`final=False`) the plots are redrawn only when `REDRAW_S`
    seconds have passed since the last drawing (or the start). With `final`
    and `show`, prints the table to stdout and where the results are to
    stderr; `final` also removes saves inside stages that a kill left
    (`steps.leftovers`), and, once every file is written, seals the
    outputs (`SUMS`; until then they are unsealed, so `done()` never takes
    a mid-run summary or a write cut short).
    """
    records_lib.seal(self.dir, (), SUMS)  # unsealed while they change
    if final:  # (a kill may leave them after a stage is complete)
      hosts.on_main('removed leftover saves', steps_lib.remove,
                    *steps_lib.leftovers(self))
    records_lib.write_jsonl(self.path('metrics.jsonl'), lines)
    records_lib.write_json(self.path('summary.json'), summary)
    report = self.write_report(summary, lines, plots=final or (
        time.monotonic() - self._drawn_at >= REDRAW_S))
    if final:
      records_lib.seal(self.dir, OUTPUTS, SUMS)
    if final and show:
      self.announce(report.table)
    return summary

  def write_report(self, summary: dict, lines: Sequence[Mapping],
                   plots: bool = True) -> Report:
    """`report.md` (title, table, plots) and every plot, atomically.

    With `plots=False` no plot is drawn, and the report shows only those
    drawn before."""
    report = self.method.report(summary, lines, self.config)
    shown = [name for name in report.plots
             if plots or os.path.exists(self.path(name))]
    images = ''.join(f'\n\n![{os.path.splitext(name)[0]}]({name})'
                     for name in shown)
    # a table that opens with the title makes that line the heading
    text = (f'# {report.table}' if report.table.startswith(report.title)
            else f'# {report.title}\n\n{report.table}')
    records_lib.write_text(self.path('report.md'), f'{text}{images}\n')
    if plots:
      for name, draw in report.plots.items():
        records_lib.write_atomic(self.path(name), draw)
      self._drawn_at = time.monotonic()
    return report

  def done(self, finished: Callable[[dict], bool] | None = None
           ) -> dict | None:
    """The stored summary of a finished run of this seed count, else None.

    Finished: `finished(summary)`, by default its 'finished' field (True
    when absent). A finished run is announced as done; a report or plot
    that is missing or empty, or a non-semantic field (what only the
    report reads) changed since, is redrawn first (and `config.json` takes
    the new field).
    """
    if not records_lib.sealed(self.dir, OUTPUTS, SUMS):
      return None  # not finished, or derived files to recompute
    summary = self.read_summary()
    finished = finished or (lambda s: s.get('finished', True))
    if not finished(summary) or summary.get('num_seeds') != self.num_seeds:
      return None
    changed = workdir_lib.semantic_config(  # the method's NON_SEMANTIC
        self.stored_config() or {}) != workdir_lib.semantic_config(
            self.config)
    report = self.method.report(summary, [], self.config)
    missing = any(not os.path.exists(self.path(name))
                  or os.path.getsize(self.path(name)) == 0
                  for name in ('report.md', *report.plots))
    if changed or missing:
      self.begin()
      lines = records_lib.read_jsonl(self.path('metrics.jsonl'))
      report = self.write_report(summary, lines)
    table = report.table
    self.announce(table, done_before=True)
    return summary

  def announce(self, table: str, done_before: bool = False) -> None:
    if done_before:
      print(f'already done: {self.dir}', file=sys.stderr)
    print(table)
    print(f'results: {self.dir}', file=sys.stderr)

