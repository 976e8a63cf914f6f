"""Bad input, as a user types it: one `error:` line, exit 2, nothing changed.

Each case launches one of the launchers (`launch.main`, `launch.sweep`,
`launch.probe`, `launch.report`, ...) as `python -m launch.NAME` would
(`launch_pool`: a forked process per case, the imports paid once), in a
folder that holds finished smoke runs (dense, IMP, PaI) and a plain file,
and asserts: exit code 2; stderr is one line, `error: ...`, naming the
culprit; no traceback; every file under the folder byte-identical before
and after (the `.lock` files aside: they hold the last holder's name).
Damage a rerun can recompute is tested in `integrity_test.py` (the same
bytes as an undamaged run).
"""
import glob
import gzip
import json
import os
import shutil

import numpy as np
import pytest

from configs import dense_mnist1d
from configs import imp_mlp_mnist1d
from configs import pai_mnist1d
from ticketjax.run import jobs
from ticketjax.run import lock

import launch_pool
import testlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DENSE = 'configs/dense_mnist1d.py:smoke'
IMP = 'configs/imp_mlp_mnist1d.py:smoke'
CS = 'configs/cs_mnist1d.py:smoke'
EP = 'configs/edgepopup_mnist1d.py:smoke'
LMC = 'configs/lmc_mnist1d.py:smoke'
PAI = 'configs/pai_mnist1d.py:smoke'


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  """A workdir with finished dense, IMP and PaI smoke runs."""
  root = str(tmp_path_factory.mktemp('finished'))
  for module in (dense_mnist1d, imp_mlp_mnist1d, pai_mnist1d):
    config = module.get_config('smoke')
    config.progress = False
    jobs.run(config, root)
  lock.release_all()
  return root


def _run(root, job):
  (path,) = glob.glob(os.path.join(root, 'runs', f'{job}-*'))
  return path


def _damage_checkpoint(root, job, name):
  folder = os.path.join(_run(root, job), 'checkpoints', name)
  testlib.flip_a_bit(testlib.largest_file(folder))


def _edit_config(root, job, edit):
  path = os.path.join(_run(root, job), 'config.json')
  with open(path) as f:
    config = json.load(f)
  edit(config)
  with open(path, 'w') as f:
    json.dump(config, f)


def _imp_levels_damaged(root):
  _damage_checkpoint(root, 'imp', 'rewind_init')
  _damage_checkpoint(root, 'imp', 'level_001')


def _other_config(root):
  _edit_config(root, 'dense', lambda c: c['train'].update(eval_every=7))


def _idx_gz(path, shape, count=None):
  """A gzipped IDX file whose header says `shape` and holding `count`
  items (all, if None)."""
  count = shape[0] if count is None else count
  body = np.zeros((count,) + tuple(shape[1:]), np.uint8).tobytes()
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(bytes([0, 0, 8, len(shape)]) + np.asarray(shape, '>u4').tobytes()
            + body)


def _fashion_files(images_count=None, labels=60000):
  """A folder `fm` of the four Fashion-MNIST files, train images cut to
  `images_count` and `labels` train labels."""
  def write(root):
    folder = os.path.join(root, 'fm')
    os.makedirs(folder)
    _idx_gz(os.path.join(folder, 'train-images-idx3-ubyte.gz'),
            (60000, 28, 28), images_count)
    _idx_gz(os.path.join(folder, 'train-labels-idx1-ubyte.gz'), (labels,))
    _idx_gz(os.path.join(folder, 't10k-images-idx3-ubyte.gz'),
            (10000, 28, 28))
    _idx_gz(os.path.join(folder, 't10k-labels-idx1-ubyte.gz'), (10000,))
  return write


def _cut_csv(root):
  with gzip.open(os.path.join(root, 'mnist_5k.csv.gz'), 'wt') as f:
    f.write('0,' * 784 + '3\n' + '0,0,')


def _sweep_file(text):
  def write(root):
    with open(os.path.join(root, 'sweep.py'), 'w') as f:
      f.write(text)
  return write


# (id, launcher, arguments, culprit in the error line, prepare(root))
# {w}: a fresh workdir; {runs}: the finished runs; {dense}, {imp}, {pai}:
# their run folders; {file}: a plain file; {root}: the test's folder.
CASES = [
    # the config file, its variant and overrides
    ('no-config-flag', 'main', [], 'config', None),
    ('config-missing', 'main', ['--config=configs/nope.py'],
     'configs/nope.py', None),
    ('config-is-a-dir', 'main', ['--config=configs'], 'Is a directory', None),
    ('config-no-get_config', 'main', ['--config=configs/common.py'],
     'get_config', None),
    ('config-syntax-error', 'main', ['--config={root}/broken.py'],
     'broken.py', _sweep_file('def get_config(arg):\n  return [\n')),
    ('variant-seeds-abc', 'main', ['--config=configs/dense_mnist1d.py:'
                                   'seeds=abc'],
     'config variant seeds=abc must be an integer', None),
    ('variant-seeds-float', 'main', ['--config=configs/dense_mnist1d.py:'
                                     'seeds=2.5'],
     'config variant seeds=2.5 must be an integer', None),
    ('variant-flag-given-a-value', 'main',
     ['--config=configs/dense_mnist1d.py:cnn=1'], "write 'cnn' alone", None),
    ('variant-rewind-not-ints', 'main',
     [f'--config={LMC},rewind=0/ten'], "'0/ten' is not integers", None),
    ('variant-smoke-rewind-past-its-end', 'main',
     [f'--config={LMC},rewind=0/100'], 'lie in [0, train.steps = 60)', None),
    ('main-extra-argument', 'main', [f'--config={DENSE}', 'extra'],
     "unexpected arguments ['extra']: this program takes flags only", None),
    ('variant-seeds-0', 'main', ['--config=configs/dense_mnist1d.py:seeds=0'],
     'num_seeds', None),
    ('variant-unknown', 'main', ['--config=configs/dense_mnist1d.py:smok'],
     'smok', None),
    ('variant-imp-rule', 'main', [f'--config={IMP},rule=bogus'], 'bogus',
     None),
    ('override-unknown-leaf', 'main', [f'--config={DENSE}',
                                       '--config.train.stepz=3'],
     "--config.train.stepz: the config has no field 'train.stepz' (Did you "
     'mean "steps"', None),
    ('override-unknown-section', 'main', [f'--config={DENSE}',
                                          '--config.foo.bar=1'],
     "--config.foo.bar: the config has no field 'foo';", None),
    ('override-wrong-type', 'main', [f'--config={DENSE}',
                                     '--config.train.steps=many'], 'many',
     None),
    ('workdir-flag-missing', 'main', [f'--config={DENSE}', '--workdir'],
     'workdir', None),
    ('workdir-empty', 'main', [f'--config={DENSE}', '--workdir='], 'workdir',
     None),
    ('workdir-is-a-file', 'main', [f'--config={DENSE}', '--workdir={file}'],
     'file', None),
    ('workdir-below-a-file', 'main', [f'--config={DENSE}',
                                      '--workdir={file}/w'],
     'lies below the file', None),
    ('num-processes-no-coordinator', 'main', [f'--config={DENSE}',
                                              '--num_processes=2'],
     'coordinator_address', None),
    ('platform-unavailable', 'main', [f'--config={DENSE}',
                                      '--jax_platforms=cuda'],
     'no JAX backend could start for --jax_platforms=cuda', None),
    ('job-unknown', 'main', [f'--config={DENSE}', '--config.job=nope'],
     "unknown job 'nope'", None),
    # a field the job never reads (one-shot pruning trains nothing)
    ('oneshot-override-unread', 'main',
     ['--config=configs/oneshot_smollm2_austen.py:smoke',
      '--config.oneshot.batch=2', '--config.train.steps=5'],
     "the 'oneshot' job never reads --config.train.steps", None),
    # shared sections
    ('train-steps-0', 'main', [f'--config={DENSE}', '--config.train.steps=0'],
     'steps', None),
    ('train-batch-0', 'main', [f'--config={DENSE}',
                               '--config.train.batch_size=0'], 'batch_size',
     None),
    ('train-eval-every-0', 'main', [f'--config={DENSE}',
                                    '--config.train.eval_every=0'],
     'eval_every', None),
    ('optimizer-unknown', 'main', [f'--config={DENSE}',
                                   '--config.optimizer.name=sgdx'], 'sgdx',
     None),
    ('optimizer-lr-negative', 'main', [f'--config={DENSE}',
                                       '--config.optimizer.learning_rate=-1'],
     'learning_rate', None),
    ('model-unknown', 'main', [f'--config={DENSE}', '--config.model.name=nope'],
     'unknown model', None),
    ('data-unknown', 'main', [f'--config={DENSE}', '--config.data.name=imnet'],
     'imnet', None),
    ('val-size-negative', 'main', [f'--config={DENSE}',
                                   '--config.data.val_size=-1'], 'val_size',
     None),
    ('val-size-too-large', 'main', [f'--config={DENSE}',
                                    '--config.data.val_size=9999999'],
     'val_size', None),
    ('first-seed-negative', 'main', [f'--config={DENSE}',
                                     '--config.first_seed=-1'], 'first_seed',
     None),
    ('num-seeds-0', 'main', [f'--config={DENSE}', '--config.num_seeds=0'],
     'num_seeds', None),
    ('data-dir-is-a-file', 'main', [f'--config={DENSE}',
                                    '--config.data.data_dir={file}'],
     'data.data_dir', None),
    ('data-dir-below-a-file', 'main', [f'--config={DENSE}',
                                       '--config.data.data_dir={file}/d'],
     'lies below the file', None),
    # IMP
    ('imp-rewind-unknown', 'main', [f'--config={IMP}',
                                    '--config.imp.rewind=warm'], 'warm', None),
    ('imp-rule-unknown', 'main', [f'--config={IMP}', '--config.imp.rule=snip'],
     'snip', None),
    ('imp-rate-1', 'main', [f'--config={IMP}', '--config.imp.rates.dense=1.0'],
     '[0, 1)', None),
    ('imp-rewind-step-past-end', 'main', [f'--config={IMP}',
                                          '--config.imp.rewind=step',
                                          '--config.imp.rewind_step=10000'],
     'past the end of training', None),
    ('imp-unknown-field', 'main', [f'--config={IMP}',
                                   '--config.imp.levelz=3'], 'levelz', None),
    ('imp-levels-negative', 'main', [f'--config={IMP}',
                                     '--config.imp.levels=-1'], 'levels',
     None),
    # CS
    ('cs-lambda-negative', 'main', [f'--config={CS}',
                                    '--config.cs.lambdas=-1'], 'cs.lambdas',
     None),
    ('cs-rounds-0', 'main', [f'--config={CS}', '--config.cs.rounds=0'],
     'cs.rounds', None),
    ('cs-epochs-1', 'main', [f'--config={CS}',
                             '--config.cs.epochs_per_round=1'],
     'cs.epochs_per_round', None),
    ('cs-rewind-epoch-late', 'main', [f'--config={CS}',
                                      '--config.cs.rewind_epoch=99'],
     'rewind_epoch', None),
    ('cs-beta-below-1', 'main', [f'--config={CS}', '--config.cs.beta_max=0.5'],
     'cs.beta_max', None),
    ('cs-mask-optimizer', 'main', [f'--config={CS}',
                                   '--config.cs.mask_optimizer=adamx'],
     'adamx', None),
    # Edge-Popup
    ('edgepopup-k-0', 'main', [f'--config={EP}', '--config.edgepopup.k=0.0'],
     'k', None),
    ('edgepopup-k-above-1', 'main', [f'--config={EP}',
                                     '--config.edgepopup.k=1.5'], 'k', None),
    ('edgepopup-init', 'main', [f'--config={EP}',
                                '--config.edgepopup.init=bogus'], 'bogus',
     None),
    ('edgepopup-unknown-field', 'main', [f'--config={EP}',
                                         '--config.edgepopup.kk=1'], 'kk',
     None),
    # LMC
    ('lmc-one-copy', 'main', [f'--config={LMC}', '--config.lmc.copies=1'],
     'copies', None),
    ('lmc-rewind-past-end', 'main', [f'--config={LMC}',
                                     '--config.lmc.rewind_steps=(0, 9999)'],
     'rewind', None),
    ('lmc-one-alpha', 'main', [f'--config={LMC}', '--config.lmc.num_alphas=1'],
     'num_alphas', None),
    ('lmc-split-unknown', 'main', [f'--config={LMC}',
                                   "--config.lmc.splits=('val',)"], 'val',
     None),
    ('lmc-imp-run-missing', 'main', [f'--config={LMC}',
                                     '--config.lmc.imp_run={root}/nope',
                                     '--config.lmc.imp_levels=(1,)'],
     'not an IMP run folder', None),
    ('lmc-imp-run-is-dense', 'main', [f'--config={LMC}',
                                      '--config.lmc.imp_run={dense}',
                                      '--config.lmc.imp_levels=(1,)'],
     "holds a 'dense' run", None),
    ('lmc-imp-run-other-protocol', 'main', [f'--config={LMC}',
                                            '--config.lmc.imp_run={imp}',
                                            '--config.lmc.imp_levels=(1,)'],
     'differs from this config', None),
    ('lm-source-missing', 'main',
     ['--config=configs/imp_gpt_austen.py:smoke,source={root}/nope'],
     "model.kwargs.source: pretrained model '{root}/nope' is neither a file "
     'nor a folder', None),
    # PaI
    ('pai-score-unknown', 'main', [f'--config={PAI}',
                                   '--config.pai.score=bogus'], 'bogus', None),
    ('pai-scope-unknown', 'main', [f'--config={PAI}',
                                   '--config.pai.scope=bogus'], 'bogus', None),
    ('pai-density-above-1', 'main', [f'--config={PAI}',
                                     '--config.pai.densities=1.5'],
     'densities', None),
    ('pai-density-0', 'main', [f'--config={PAI}',
                               '--config.pai.densities=0.0'], 'densities',
     None),
    ('pai-variant-score', 'main', [f'--config={PAI},score=bogus'], 'bogus',
     None),
    ('pai-bn-scale-without-batchnorm', 'main',
     [f'--config={PAI},score=bn_scale'],
     'no prunable kernel of this model has one', None),
    ('pai-density-above-nm', 'main',
     [f'--config={PAI},structure=2:4,densities=0.7/0.5'],
     "pai.densities [0.7] exceed what 2:4 keeps (at most 2 of every 4 "
     'weights: density <= 0.5)', None),
    ('pai-densities-not-numbers', 'main',
     [f'--config={PAI}', '--config.pai.densities=abc'],
     "config.pai.densities = ('abc',) is not a number", None),
    ('early-bird-density-0', 'main',
     ['--config=configs/early_bird_mnist1d.py:smoke,densities=0'],
     'early_bird.densities [0.0] lie outside (0, 1)', None),
    ('early-bird-levels-and-densities', 'main',  # (no 'ValueError:' prefix)
     ['--config=configs/early_bird_mnist1d.py:smoke,levels=3,densities=0.5'],
     'error: config variants levels=3 and densities=0.5 conflict', None),
    ('pai-structure-unknown', 'main', [f'--config={PAI},structure=3:2'],
     'valid structures', None),
    ('pai-structure-does-not-divide', 'main',
     [f'--config={PAI},structure=1:3,densities=0.3'], 'does not divide by 3',
     None),
    ('pai-control-unknown', 'main', [f'--config={PAI},controls=flip'],
     'flip', None),
    ('pai-prune-at-unknown', 'main', [f'--config={PAI},at=later'], 'later',
     None),
    ('imp-rewind-step-negative', 'main',
     [f'--config={IMP}', '--config.imp.rewind=step',
      '--config.imp.rewind_step=-5'],
     'imp.rewind_step -5 is negative: it must lie in [0, 40)', None),
    ('imp-invert-random-rule', 'main',
     [f'--config={IMP}', '--config.imp.rule=random',
      '--config.imp.controls=("invert",)'], "'invert' control inverts",
     None),
    # run folders that hold something else
    ('fewer-seeds-dense', 'main', [f'--config={DENSE},seeds=1',
                                   '--workdir={runs}'],
     'holds a dense run with 2 seeds', None),
    ('fewer-seeds-imp', 'main', [f'--config={IMP},seeds=1', '--workdir={runs}'],
     'with 2 seeds', None),
    ('more-seeds-pai', 'main', [f'--config={PAI},seeds=3', '--workdir={runs}'],
     'cannot grow to more seeds', None),
    ('workdir-is-a-run-folder', 'main', [f'--config={DENSE}',
                                         '--workdir={dense}'],
     'is a run folder', None),
    ('config-json-of-another-run', 'main', [f'--config={DENSE}',
                                            '--workdir={runs}'],
     'is the config of another run', _other_config),
    ('config-json-damaged', 'main', [f'--config={DENSE}', '--workdir={runs}'],
     'config.json is damaged',
     lambda root: testlib.truncate_half(os.path.join(_run(root, 'dense'), 'config.json'))),
    ('imp-rewind-point-damaged', 'main', [f'--config={IMP}',
                                          '--workdir={runs}'],
     'rewind_init cannot be used', _imp_levels_damaged),
    # the sweep launcher
    ('sweep-missing', 'sweep', ['--sweep={root}/nope.py'], 'nope.py', None),
    ('sweep-syntax', 'sweep', ['--sweep={root}/sweep.py'],
     "sweep.py' does not load: Syntax",
     _sweep_file('def get_sweep(arg):\n  return [1\n')),
    ('sweep-missing-import', 'sweep', ['--sweep={root}/sweep.py'],
     'No module named', _sweep_file(
         'import no_such_module\ndef get_sweep(arg):\n  return []\n')),
    ('sweep-not-configs', 'sweep', ['--sweep={root}/sweep.py'],
     'sweep entry 1 of 2 is a int', _sweep_file(
         'def get_sweep(arg):\n  return [1, 2]\n')),
    ('sweep-no-get_sweep', 'sweep', ['--sweep={root}/sweep.py'], 'get_sweep',
     _sweep_file('X = 1\n')),
    ('sweep-bad-entry', 'sweep', ['--sweep={root}/sweep.py'], 'cs.lambdas',
     _sweep_file('from configs import cs_mnist1d\n'
                 'def get_sweep(arg):\n'
                 "  c = cs_mnist1d.get_config('smoke')\n"
                 '  c.cs.lambdas = (-1.0,)\n'
                 '  return [c]\n')),
    ('sweep-workdir-file', 'sweep', ['--sweep=configs/sweep_mnist1d.py:smoke',
                                     '--workdir={file}'], 'file', None),
    ('sweep-variant-unknown', 'sweep', ['--sweep=configs/sweep_mnist1d.py:'
                                        'bogus'], 'bogus', None),
    # the probe launcher
    ('probe-no-such-folder', 'probe', ['--a={root}/nope:0', '--b={imp}/'
                                       'checkpoints/level_000:1'],
     'no checkpoint folder', None),
    ('probe-member-out-of-range', 'probe', [
        '--a={imp}/checkpoints/level_000:9',
        '--b={imp}/checkpoints/level_000:1'], 'members 0..1', None),
    ('probe-member-not-a-number', 'probe', [
        '--a={imp}/checkpoints/level_000:x',
        '--b={imp}/checkpoints/level_000:1'],
     "level_000:x': member 'x' is not a member index", None),
    ('probe-a-run-folder', 'probe', ['--a={imp}',
                                     '--b={imp}/checkpoints/level_000:1'],
     'is a run folder or its checkpoints/, not a checkpoint folder', None),
    ('probe-a-file', 'probe', ['--a={file}:0',
                               '--b={imp}/checkpoints/level_000:1'], 'file',
     None),
    ('probe-outside-run', 'probe', ['--a={root}/loose:0',
                                    '--b={imp}/checkpoints/level_000:1'],
     'not inside a run folder',
     lambda root: shutil.copytree(
         os.path.join(_run(root, 'imp'), 'checkpoints', 'level_000'),
         os.path.join(root, 'loose'))),
    ('probe-damaged', 'probe', ['--a={imp}/checkpoints/level_001:0',
                                '--b={imp}/checkpoints/level_001:1'],
     'level_001 cannot be used',
     lambda root: _damage_checkpoint(root, 'imp', 'level_001')),
    ('probe-out-below-file', 'probe', ['--a={imp}/checkpoints/level_000:0',
                                       '--b={imp}/checkpoints/level_000:1',
                                       '--out={file}/probe'],
     'lies below the file', None),
    ('probe-split-unknown', 'probe', ['--a={imp}/checkpoints/level_000:0',
                                      '--b={imp}/checkpoints/level_000:1',
                                      '--split=val'], 'split', None),
    # the report launcher
    ('report-no-flags', 'report', [],
     'valid: flags --only, --out, --workdir', None),
    ('report-workdir-is-a-file', 'report', ['--workdir={file}'],
     'workdir {file} is a file', None),
    ('probe-extra-argument', 'probe', ['--a={imp}/checkpoints/level_001',
                                       '--b={imp}/checkpoints/level_001',
                                       'extra'],
     "unexpected arguments ['extra']", None),
    ('workdir-name-too-long', 'main', [f'--config={DENSE}',
                                       '--workdir={root}/' + 'x' * 300],
     'a name in it is 300 bytes', None),
    ('report-no-such-workdir', 'report', ['--workdir={root}/nope',
                                          '--out={root}/r'], 'no such workdir',
     None),
    ('report-no-runs', 'report', ['--workdir={root}/empty', '--out={root}/r'],
     'no finished runs', lambda root: os.makedirs(os.path.join(root,
                                                               'empty'))),
    ('report-out-below-file', 'report', ['--workdir={runs}',
                                         '--out={file}/r'],
     'lies below the file', None),
    ('report-only-matches-nothing', 'report', ['--workdir={runs}',
                                               '--out={root}/r',
                                               '--only=no-such-method'],
     'matches no series', None),
    ('report-only-not-a-regex', 'report', ['--workdir={runs}',
                                           '--out={root}/r', '--only=(x'],
     'not a regular expression', None),
    # the prepare launcher (real data)
    ('prepare-no-package', 'prepare', ['--dataset=fashion_mnist',
                                       '--source={root}/nope'],
     'install the Debian package', None),
    ('prepare-wrong-folder', 'prepare', ['--dataset=fashion_mnist',
                                         '--source={root}'],
     'no IDX file', None),
    ('prepare-truncated-idx', 'prepare', ['--dataset=fashion_mnist',
                                          '--source={root}/fm'],
     'train-images-idx3-ubyte.gz is truncated', _fashion_files(
         images_count=100)),
    ('prepare-labels-do-not-match', 'prepare', ['--dataset=fashion_mnist',
                                                '--source={root}/fm'],
     'has 59000 labels but', _fashion_files(labels=59000)),
    ('prepare-mnist5k-missing', 'prepare', ['--dataset=mnist_5k',
                                            '--source={root}/nope.csv.gz'],
     'no file', None),
    ('prepare-mnist5k-damaged', 'prepare', ['--dataset=mnist_5k',
                                            '--source={root}/mnist_5k.csv.gz'],
     'mnist_5k.csv.gz is damaged', _cut_csv),
    ('prepare-unknown-dataset', 'prepare', ['--dataset=cifar'], 'cifar',
     None),
    ('prepare-mnist1d-source', 'prepare', ['--dataset=mnist1d',
                                           '--source={file}'],
     'takes no --source', None),
    ('prepare-data-dir-file', 'prepare', ['--dataset=mnist1d',
                                          '--data_dir={file}'],
     'data dir', None),
    ('tokenizer-vocab-too-small', 'tokenizer',
     ['--corpus=pydoc', '--vocab_size=100', '--out={root}/bpe.json'],
     'vocab_size must be an int > 256', None),
    ('tokenizer-out-exists', 'tokenizer',
     ['--corpus=pydoc', '--vocab_size=300', '--out={file}'], 'exists', None),
    ('export-no-checkpoint', 'export',
     ['--network={root}/nothing', '--out={root}/hf'], 'no checkpoint folder',
     None),
    ('export-not-a-decoder', 'export',
     ['--network={imp}/checkpoints/level_001', '--out={root}/hf'],
     "model 'mnist1d_mlp' has no Hugging Face GPT-2 form", None),
    ('export-out-not-empty', 'export',
     ['--network={imp}/checkpoints/level_001', '--out={runs}'],
     'not an empty folder', None),
    ('report-damaged-summary', 'report', ['--workdir={runs}',
                                          '--out={root}/r'],
     'summary.json is damaged',
     lambda root: testlib.truncate_half(os.path.join(_run(root, 'pai'), 'summary.json'))),
]


def test_the_battery_has_80_distinct_cases():
  ids = [c[0] for c in CASES]
  assert len(set(ids)) == len(ids) >= 80, len(ids)


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_error_line_exit_2_and_changes_nothing(
    finished, tmp_path, case):
  name, launcher, args, culprit, prepare = case
  if name == 'platform-unavailable' and shutil.which('nvidia-smi'):
    pytest.skip('this machine may have a GPU')
  root = str(tmp_path)
  shutil.copytree(finished, os.path.join(root, 'runs'))
  with open(os.path.join(root, 'file'), 'w') as f:
    f.write('not a folder\n')
  if prepare is not None:
    prepare(root)
  names = {'root': root, 'runs': os.path.join(root, 'runs'),
           'w': os.path.join(root, 'w'), 'file': os.path.join(root, 'file')}
  for job in ('dense', 'imp', 'pai'):
    names[job] = _run(root, job)
  argv = [a.format(**names) for a in args]
  if launcher in ('main', 'sweep') and not any(
      a.startswith('--workdir') for a in argv):
    argv.append(f"--workdir={names['w']}")
  if launcher == 'prepare' and not any(a.startswith('--data_dir')
                                       for a in argv):
    argv.append(f"--data_dir={os.path.join(root, 'data')}")
  before = testlib.file_hashes(root)
  proc = launch_pool.run(launcher, argv, cwd=REPO)
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
  assert culprit.format(**names) in lines[0], lines[0]
  assert 'Traceback' not in proc.stderr
  assert testlib.file_hashes(root) == before
