"""End to end: configs, the dense job, the launcher, bad configs, run dirs."""
import glob
import io
import json
import os
import types

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import golden_lib
import testlib

from configs import cs_mnist1d
from configs import dense_mnist1d
from configs import imp_mlp_mnist1d
from configs import pai_mnist1d
from ticketjax.methods import registry
from ticketjax.run import jobs
from ticketjax.run import loop
from ticketjax.run import progress
from ticketjax.run import records as records_lib
from ticketjax.run import workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
    p for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
    if os.path.basename(p) != '__init__.py'
    and not os.path.basename(p).endswith('common.py')
    and not os.path.basename(p).startswith('sweep_'))  # sweeps: sweep_test


def _load(path, arg):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_dense_smoke_end_to_end_and_idempotent(tmp_path, capsys):
  config = dense_mnist1d.get_config('smoke')
  summary = jobs.run(config, str(tmp_path))
  run_dir = summary['run_dir']
  assert os.path.dirname(run_dir) == str(tmp_path)
  assert summary['num_seeds'] == 2
  acc = summary['test_accuracy']
  assert len(acc['values']) == 2 and 0.0 <= acc['mean'] <= 1.0
  assert acc['mean'] > 0.2  # 60 steps of Adam beat chance (10%)
  records = records_lib.read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
  assert len(records) == 2 * 2  # 2 evaluations x 2 seeds
  assert {r['seed'] for r in records} == {0, 1}
  assert {'step', 'train_loss', 'test_accuracy', 'test_loss'} <= set(
      records[0])
  with open(os.path.join(run_dir, 'config.json')) as f:
    assert json.load(f)['train']['steps'] == 60
  assert 'mean ± std' in capsys.readouterr().out
  # a second run finds the summary and does no work
  mtime = os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl'))
  again = jobs.run(config, str(tmp_path))
  assert again == json.load(open(os.path.join(run_dir, 'summary.json')))
  assert os.path.getmtime(os.path.join(run_dir, 'metrics.jsonl')) == mtime


def _runs_offline(path) -> bool:
  """Whether the smoke variant's data needs no install and no mock: the
  generated MNIST-1D, or CPython's own pydoc text."""
  return 'mnist1d' in path or _load(path, 'smoke').data.name == 'pydoc'


OFFLINE_CONFIGS = [p for p in CONFIG_FILES if _runs_offline(p)]
OTHER_CONFIGS = [p for p in CONFIG_FILES if not _runs_offline(p)]


@pytest.mark.parametrize('path', OFFLINE_CONFIGS, ids=os.path.basename)
def test_offline_config_smoke_variants_run(path, tmp_path):
  config = _load(path, 'smoke')
  config.progress = False
  summary = jobs.run(config, str(tmp_path))
  if config.job == 'dense':
    assert summary['test_accuracy']['n'] == config.num_seeds
  elif config.job == 'cs':
    assert len(summary['members']) == config.num_seeds * len(
        config.cs.lambdas)
  elif config.job != 'imp':
    assert summary['num_seeds'] == config.num_seeds
  else:
    assert summary['levels_done'] == config.imp.levels + 1
    assert len(summary['members']) == config.num_seeds * (
        1 + config.imp.levels * (1 + len(config.imp.controls)))
  golden_lib.check(os.path.basename(path)[:-3] + '.smoke', summary['run_dir'])


@pytest.mark.parametrize('path', OTHER_CONFIGS, ids=os.path.basename)
def test_other_configs_build_and_validate_on_mock_data(path):
  """MNIST/CIFAR configs: every check before work passes on TFDS mock data.

  The IMP ones also train (below); the CS, Edge-Popup and LMC ones on
  MNIST/CIFAR are checked here only (their MNIST-1D twins train).
  """
  from ticketjax.methods.imp import job as imp_run  # pylint: disable=g-import-not-at-top
  from ticketjax.run import setup as setup_lib
  config = _load(path, 'smoke')
  method = registry.get(config.job)
  if not getattr(method, 'BUILDS', True):  # loads its own model and text
    method.check(config)
    return
  with tfds.testing.mock_data(num_examples=64):
    built = setup_lib.build(config)
  assert built.model.name == config.model.name
  if config.job == 'cs':
    from ticketjax.methods.cs import job as cs_run  # pylint: disable=g-import-not-at-top
    cs_run.cs_config(config)
  if config.job == 'lmc':
    from ticketjax.methods.lmc import job as lmc_run  # pylint: disable=g-import-not-at-top
    lmc_run.lmc_config(config).validate(built.train.steps)
  if config.job == 'imp':
    shapes = jax.eval_shape(built.model.init, jax.random.PRNGKey(0))[0]
    imp_run.imp_config(config).validate(  # zeros, as the job gives it
        built.train.steps,
        jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes))


def test_lenet_mnist_imp_smoke_trains_on_mock_data(tmp_path):
  """The LeNet-300-100 protocol end to end on TFDS mock MNIST (64 examples)."""
  config = _load(os.path.join(REPO, 'configs', 'imp_lenet300_mnist.py'),
                 'smoke')
  config.progress = False
  with tfds.testing.mock_data(num_examples=64):
    summary = jobs.run(config, str(tmp_path))
  assert summary['levels_done'] == 2
  ticket = [m for m in summary['members']
            if m['level'] == 1 and m['branch'] == 'ticket']
  assert len(ticket) == config.num_seeds
  # F&C's rates: 20% of the hidden kernels, 10% of the output layer
  assert ticket[0]['density_per_layer']['output/kernel'] == pytest.approx(
      0.9, abs=1e-3)
  golden_lib.check('imp_lenet300_mnist.smoke', summary['run_dir'])


# config: densities of some layers after one level (40-70 s each, 2
# cores). Conv-4 and Conv-6 share Conv-2's model code and protocol (their
# configs build and validate above); training them too cost 2 more minutes.
CIFAR_IMP = {
    'imp_conv2_cifar10.py': {'conv_0/kernel': 0.9, 'fc_0/kernel': 0.8},
    'imp_resnet20_cifar10.py': {},
}


@pytest.mark.parametrize('name', sorted(CIFAR_IMP))
def test_cifar10_imp_smoke_variants_train_on_mock_data(name, tmp_path):
  """Conv-2 (F&C, layerwise) and ResNet-20 (BatchNorm, global
  pruning, rewind to step k) run their smoke variants unchanged on TFDS
  mock CIFAR-10: 2 seeds, the ticket and all three controls, 4 steps."""
  config = _load(os.path.join(REPO, 'configs', name), 'smoke')
  config.progress = False
  with tfds.testing.mock_data(num_examples=16):
    summary = jobs.run(config, str(tmp_path))
  assert summary['levels_done'] == 2 and summary['dataset'] == 'cifar10'
  level1 = [m for m in summary['members'] if m['level'] == 1]
  assert sorted({m['branch'] for m in level1}) == [
      'random', 'reinit', 'shuffle', 'ticket']
  assert len(level1) == 4 * config.num_seeds
  ticket = [m for m in level1 if m['branch'] == 'ticket']
  layers = ticket[0]['density_per_layer']
  # every control keeps the ticket's per-layer counts
  for m in level1:
    if m['seed'] == ticket[0]['seed']:
      assert m['density_per_layer'] == pytest.approx(layers, abs=1e-6)
  for layer, density in CIFAR_IMP[name].items():
    assert layers[layer] == pytest.approx(density, abs=1e-3), layer
  if name.startswith('imp_resnet20'):
    # global 20% of the prunable kernels; the output layer is not one
    assert ticket[0]['density'] == pytest.approx(0.8, abs=1e-3)
    # 19 3x3 convolutions and 2 projection shortcuts
    assert 'output/kernel' not in layers and len(layers) == 21
    assert os.path.exists(os.path.join(summary['run_dir'], 'checkpoints',
                                       'rewind_step'))
  else:  # F&C: conv 10-15%, dense 20%, output 10%
    assert layers['output/kernel'] == pytest.approx(0.9, abs=1e-3)
  golden_lib.check(name[:-3] + '.smoke', summary['run_dir'])


def test_cnn_variant_smoke(tmp_path):
  config = dense_mnist1d.get_config('smoke,cnn')
  assert config.model.name == 'mnist1d_cnn'
  summary = jobs.run(config, str(tmp_path))
  assert summary['model'] == 'mnist1d_cnn'


@pytest.mark.parametrize('field,value,match', [
    ('model.name', 'resnet50', 'unknown model'),
    ('data.name', 'imagenet', 'unknown data set'),
    ('optimizer.name', 'lion', 'unknown optimizer'),
    ('optimizer.schedule', 'poly', 'unknown schedule'),
    ('train.steps', 0, 'train.steps'),
    ('num_seeds', 0, 'num_seeds'),
    ('data.val_size', 4000, 'val_size'),
    ('train.batch_size', 5000, 'exceeds'),
    ('job', 'imp2', 'unknown job'),
])
def test_bad_config_fails_before_any_work(tmp_path, field, value, match):
  config = dense_mnist1d.get_config('smoke')
  section, _, name = field.rpartition('.')
  setattr(config.get(section) if section else config, name, value)
  work = tmp_path / 'work'
  with pytest.raises(ValueError, match=match):
    jobs.run(config, str(work))
  assert not work.exists()


def test_unprepared_dataset_fails_before_any_work(tmp_path):
  config = dense_mnist1d.get_config('smoke')
  config.data.name = 'mnist'
  config.model.name = 'lenet_300_100'
  config.data.data_dir = str(tmp_path / 'empty_data')
  with pytest.raises(ValueError, match='tfds build mnist'):
    jobs.run(config, str(tmp_path / 'work'))
  assert not (tmp_path / 'work').exists()


def test_model_data_mismatch_fails_early(tmp_path):
  config = dense_mnist1d.get_config('smoke')
  config.model.name = 'conv2'
  with pytest.raises(ValueError, match="cannot run on 'mnist1d'"):
    jobs.run(config, str(tmp_path / 'work'))


def _launch(*args):
  return testlib.launch('main', args, REPO)


def test_launcher_runs_with_overrides(tmp_path):
  proc = _launch('--config=configs/dense_mnist1d.py:smoke',
                 f'--workdir={tmp_path}', '--config.train.steps=40',
                 '--config.train.eval_every=20', '--jax_platforms=cpu')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'mean ± std' in proc.stdout
  (run_dir,) = glob.glob(str(tmp_path / 'dense-*'))
  with open(os.path.join(run_dir, 'config.json')) as f:
    assert json.load(f)['train']['steps'] == 40


def test_a_run_read_by_a_run_is_hashed_by_its_absolute_path(tmp_path,
                                                            monkeypatch):
  from configs import lmc_mnist1d  # pylint: disable=g-import-not-at-top
  config = lmc_mnist1d.get_config('smoke,mlp,levels=1')
  hashes = set()
  monkeypatch.chdir(tmp_path)
  for spelling in (f'{tmp_path}/imp-x', f'{tmp_path}/imp-x/', 'imp-x',
                   f'{tmp_path}/w/../imp-x'):
    config.lmc.imp_run = spelling
    hashes.add(workdir.config_hash(config))
  assert len(hashes) == 1
  config.lmc.imp_run = f'{tmp_path}/imp-y'
  assert workdir.config_hash(config) not in hashes
  # a config.json from before run paths were stored absolute: its
  # relative path is taken as this config's (the folder's hash matched)
  stored = config.to_dict()
  stored['lmc']['imp_run'] = 'imp-y'
  monkeypatch.chdir('/')
  assert workdir.relative_runs_as(stored, config)['lmc']['imp_run'] == (
      f'{tmp_path}/imp-y')


def test_run_dir_hashes_are_pinned():
  """A new config field must not silently rename existing runs.

  If this fails because a field was added on purpose, make its default a
  no-op for the hash (add it to workdir.NON_SEMANTIC if it only says how
  much or where) rather than updating the pinned values.
  """
  assert workdir.config_hash(dense_mnist1d.get_config()) == '686f552393e5'
  # a workdir spelled with '..' names the same folder, printed plainly
  assert workdir.run_dir('/w/runs/imp-x/..', dense_mnist1d.get_config()) == (
      '/w/runs/dense-686f552393e5')
  assert workdir.config_hash(dense_mnist1d.get_config('cnn')) == 'ed3a08c82981'
  assert workdir.config_hash(imp_mlp_mnist1d.get_config(),
                             ('imp.levels',)) == '203b350a7d83'
  more_levels = imp_mlp_mnist1d.get_config('levels=20,seeds=9')
  assert workdir.config_hash(more_levels, ('imp.levels',)) == '203b350a7d83'
  more_seeds = dense_mnist1d.get_config('seeds=8')
  assert workdir.config_hash(more_seeds) == workdir.config_hash(
      dense_mnist1d.get_config())
  cs_config = cs_mnist1d.get_config()
  assert workdir.config_hash(cs_config, ('cs.compare_imp',)) == '265cd9ec8e5a'
  cs_config.cs.compare_imp = '/elsewhere/imp-203b350a7d83'
  assert workdir.config_hash(cs_config, ('cs.compare_imp',)) == '265cd9ec8e5a'
  pai_config = pai_mnist1d.get_config()  # pai.rounds 0 (the score's own)
  assert workdir.config_hash(pai_config) == 'f04163551352'  # as without it
  pai_config.pai.rounds = 5
  assert workdir.config_hash(pai_config) != 'f04163551352'


def test_progress_line_has_rate_and_eta():
  out = io.StringIO()
  bar = progress.Progress(100, 'dense', stream=out, max_lines=4)
  for done in (25, 50, 75, 100):
    bar.update(done, loss=0.5)
  lines = out.getvalue().strip().splitlines()
  assert 'steps/s' in lines[0] and 'ETA' in lines[1]
  assert 'took' in lines[-1] and 'loss 0.5' in lines[-1]
  slow = progress.Progress(30, 'prune', stream=out, unit='blocks')
  slow.done, slow.rate = 3, 0.02  # 50 s a block: not '0.0 blocks/s'
  assert '| 50.0 s/block | ETA 22m30s' in slow.line()


class _FixedTrainer:
  """Two members with fixed numbers: train loss 1, test losses log 2 and
  log 4, test accuracy 0.5 (only what `loop.train_chunks` reads)."""

  def train(self, state, data, num_steps):
    del data
    return state, {'loss': np.ones((num_steps, 2), np.float32),
                   'accuracy': np.zeros((num_steps, 2), np.float32)}

  def evaluate(self, state, x, y):
    del state, x, y
    return {'loss': np.log(np.float32([2, 4])),
            'accuracy': np.float32([0.5, 0.5])}


@pytest.mark.parametrize('labels,shown', [
    ((6,), 'test_acc 0.5'),  # an image run: its test accuracy
    ((6, 4), 'test_ppl 3'),  # next-token labels: mean of exp(test loss)
])
def test_progress_line_shows_the_runs_metric(labels, shown, capsys):
  data = types.SimpleNamespace(
      y_train=np.zeros(labels, np.int32), x_test=None, y_test=None,
      x_val=np.zeros((0, 1), np.float32), y_val=None)
  state = types.SimpleNamespace(step=np.zeros(2, np.int32))
  loop.train_chunks(_FixedTrainer(), state, data, 4, 2, desc='level 0')
  last = capsys.readouterr().err.strip().splitlines()[-1]
  assert last.startswith('level 0 4/4') and 'loss 1 |' in last
  assert last.endswith(shown) and ('test_acc' in last) == (len(labels) == 1)
