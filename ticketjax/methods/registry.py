"""The registry of methods: the one place that names them all.

The launcher, the sweep and the cross-run report find a method here by its
`config.job` name. A method is a module (`methods/<name>.py`, or the
`job` module of a package `methods/<name>/`) that defines:

  run(config, workdir) -> dict    the job: validate, compute, write; the
                                  summary (also written as summary.json)
  check(config) -> None           checks the method's own config section
                                  (ValueError); `setup.build` checks the rest
  check_built(config, pieces)     (optional) checks the section against
                                  `setup.build`'s model and data (ValueError):
                                  what `run` checks before its first write,
                                  but for other run folders (in a sweep, an
                                  earlier entry may still have to write them)
  series(summary) -> list[dict]   its points for the cross-run report:
                                  [{'label', 'points': {key: [member]}}],
                                  each member with 'density' and
                                  'final_test_accuracy'; 'reference': True
                                  draws a group as a horizontal line
  report(summary, lines, config)  a `lifecycle.Report`: title, table and
                                  {file: draw(path)} of its plots
  cross_run_section(runs, out_dir) (optional)  its own markdown parts of
                                  the cross-run report, given every
                                  finished run (`reports/run_folders.py`:
                                  summaries with 'run_dir', named); it may
                                  draw figures into out_dir
  SEEDS, NON_SEMANTIC             its seed policy (`lifecycle`) and the
                                  config fields out of its run folder's hash
  BUILDS (optional, True)         False: the run does not build the config's
                                  data set and model (`setup.build`); the
                                  method loads what it needs itself
  IGNORED (optional)              config fields (dotted prefixes) it never
                                  reads; the launcher refuses overrides of
                                  them (`jobs.check_overrides`)
  WRAPPED_CHECKPOINTS (optional)  {checkpoint name prefix: what its
                                  params hold} for checkpoints that hold
                                  other params than the network's weights;
                                  `launch.weights` and `launch.probe`
                                  refuse them
  plain_model_state(state) (optional)  the model's own state inside the
                                  one its checkpoints save (DST keeps its
                                  variant beside it); `launch.probe` uses it
  member_label(config, checkpoint, i) (optional)  who member i of a
                                  checkpoint is ('seed 1'; config as in
                                  config.json), for `launch.probe`
  checkpoint_state(config, name, saved) (optional)  the train state
                                  {'params', 'model_state', 'mask'} (a
                                  leading member axis) that checkpoint
                                  `name` stands for, when it saves none
                                  (one-shot masks); `launch.weights` reads it

Modules are imported when first asked for, so a launch pays only for the
method it runs. Adding a method is one line here.
"""
import importlib
import types

METHODS = {
    'dense': 'ticketjax.methods.dense',
    'imp': 'ticketjax.methods.imp.job',
    'cs': 'ticketjax.methods.cs.job',
    'edgepopup': 'ticketjax.methods.edgepopup.job',
    'lmc': 'ticketjax.methods.lmc.job',
    'pai': 'ticketjax.methods.pai.job',
    'transfer': 'ticketjax.methods.transfer.job',
    'dst': 'ticketjax.methods.dst.job',
    'early_bird': 'ticketjax.methods.early_bird.job',
    'oneshot': 'ticketjax.methods.oneshot.job',
}


def get(name: str) -> types.ModuleType:
  """The method module of `name`; ValueError naming the valid ones."""
  if name not in METHODS:
    raise ValueError(f'unknown job {name!r}; valid jobs are '
                     f'{sorted(METHODS)}')
  return importlib.import_module(METHODS[name])
