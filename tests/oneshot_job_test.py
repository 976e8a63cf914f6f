"""The `oneshot` job end to end on a tiny pretrained GPT-2 folder.

The folder is written in the Hugging Face layout (`hf_gpt2.save`) with a
byte-level BPE tokenizer trained here on CPython's pydoc topics, so the
job loads, tokenizes, prunes and evaluates exactly as for a real model.
"""
import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest
import tokenizers

from configs import common
from configs import oneshot_smollm2_austen
from ticketjax.methods.oneshot import core
from ticketjax.methods.oneshot import job
from ticketjax.models import hf_gpt2
from ticketjax.models import transformer
from ticketjax.run import jobs
from ticketjax.run import setup as setup_lib


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('gpt2'))
  tok = tokenizers.ByteLevelBPETokenizer()
  tok.train_from_iterator([topics.topics[k] for k in sorted(topics.topics)],
                          vocab_size=300, min_frequency=2,
                          show_progress=False)
  tok.save(os.path.join(path, 'tokenizer.json'))
  cfg = transformer.DecoderConfig(
      vocab_size=tok.get_vocab_size(), context=32, d_model=32, num_layers=2,
      num_heads=4, num_kv_heads=4, d_ff=64, style='gpt2')
  hf_gpt2.save(cfg, transformer.init(cfg, jax.random.PRNGKey(0)), path)
  return path


def _config(model_dir, **fields):
  c = common.base_config()
  c.job = 'oneshot'
  c.num_seeds = 1
  c.progress = False
  c.oneshot = ml_collections.ConfigDict({
      'model': model_dir, 'calibration': 'pydoc:assignment',
      'evaluation': 'pydoc:binary', 'context': 16,
      'calibration_windows': 6, 'evaluation_windows': 5,
      'methods': ('magnitude', 'wanda', 'sparsegpt'),
      'targets': ('0.5', '2:4'), 'blocksize': 16, 'percdamp': 0.01,
      'batch': 4, 'save_masks': False})
  for k, v in fields.items():
    setattr(c.oneshot, k, v)
  return c


def test_prunes_evaluates_and_resumes(model_dir, tmp_path, capsys):
  summary = jobs.run(_config(model_dir), str(tmp_path))
  run_dir = summary['run_dir']
  assert [(r['method'], r['target']) for r in summary['results']] == [
      (m, t) for m in ('magnitude', 'wanda', 'sparsegpt')
      for t in ('0.5', '2:4')]
  for r in summary['results']:
    assert r['density'] == pytest.approx(0.5)
    assert r['tokens'] == 5 * 16 and r['prune_seconds'] > 0
  # the job's numbers are the library's on the same windows
  cfg, params, tok = setup_lib.pretrained(model_dir)
  ids = lambda spec: np.asarray(tok.encode(setup_lib.document(spec)).ids)
  calib, _ = job.windows(ids('pydoc:assignment'), 16, 6,
                         rng=np.random.default_rng(0))
  x, y = job.windows(ids('pydoc:binary'), 16, 5)
  assert summary['dense']['perplexity'] == pytest.approx(
      core.perplexity(cfg, params, x, y)['perplexity'], rel=1e-6)
  pruned, _ = core.prune(cfg, params, calib, 'wanda', '2:4', blocksize=16)
  (wanda,) = [r for r in summary['results']
              if (r['method'], r['target']) == ('wanda', '2:4')]
  assert wanda['perplexity'] == pytest.approx(
      core.perplexity(cfg, pruned, x, y)['perplexity'], rel=1e-6)
  # a lost record is recomputed to the same numbers; the rest is kept
  record = os.path.join(run_dir, 'records', 'sparsegpt_50.json')
  before = json.load(open(record))
  os.remove(record)
  os.remove(os.path.join(run_dir, 'summary.json'))
  capsys.readouterr()
  again = jobs.run(_config(model_dir), str(tmp_path))
  assert 'resuming: 5 of the 6 prunings are recorded' in capsys.readouterr().err
  after = json.load(open(record))
  for key in ('perplexity', 'loss', 'density', 'tokens'):
    assert after[key] == before[key]
  assert again['dense'] == summary['dense']
  assert os.path.exists(os.path.join(run_dir, 'perplexity.png'))
  # the cross-run report: perplexity per method and kind of target against
  # the dense model, and no training steps
  from ticketjax.reports import cross_run  # pylint: disable=g-import-not-at-top
  text = cross_run.write([run_dir], str(tmp_path / 'report'))
  name = f'oneshot {model_dir}'
  assert f'| {name} | {os.path.basename(run_dir)} | One-shot' in text
  assert '| none | 1 |' in text
  (row,) = [line for line in text.splitlines()
            if line.startswith(f'| {name} sparsegpt N:M |')]
  (sparsegpt,) = [r for r in summary['results']
                  if (r['method'], r['target']) == ('sparsegpt', '2:4')]
  assert f"| 50.00 | {sparsegpt['perplexity']:.2f} | " \
      f"{100 * sparsegpt['increase']:+.1f} | 1 |" in row
  assert 'Per-layer density' not in text  # (none to show)
  # a series kept by --only is still against its run's dense model
  only = cross_run.write([run_dir], str(tmp_path / 'only'),
                         only='sparsegpt N:M')
  assert row in only.splitlines()
  # a target written as a number is the same target: the same run
  capsys.readouterr()
  assert jobs.run(_config(model_dir, targets=(0.5, '2:4')),
                  str(tmp_path))['run_dir'] == run_dir
  assert 'already done' in capsys.readouterr().err
  # a record damaged in a finished run: not 'already done', pruned again
  with open(record, 'r+') as f:
    f.truncate(50)
  capsys.readouterr()
  jobs.run(_config(model_dir), str(tmp_path))
  assert 'already done' not in capsys.readouterr().err
  repaired = json.load(open(record))
  for key in ('perplexity', 'loss', 'density', 'tokens'):
    assert repaired[key] == before[key]


def test_masks_are_saved_when_asked(model_dir, tmp_path):
  from ticketjax.run import store  # pylint: disable=g-import-not-at-top
  summary = jobs.run(_config(model_dir, methods=('wanda',),
                             targets=('2:4',), save_masks=True),
                     str(tmp_path))
  mask = store.Checkpoints(summary['run_dir']).restore_raw('mask_wanda_2of4')
  keep = mask['block_01']['mlp']['proj']['kernel']
  groups = keep.reshape(keep.shape[0] // 4, 4, keep.shape[1])
  assert (groups.sum(1) == 2).all()
  assert mask['embed']['embedding'].all()
  # launch.weights reads a Wanda mask as the pretrained weights it keeps
  from ticketjax.reports import path_probe, weights  # pylint: disable=g-import-not-at-top
  saved = os.path.join(summary['run_dir'], 'checkpoints', 'mask_wanda_2of4')
  params, kept = weights.load_state(saved)
  _, pretrained, _ = setup_lib.pretrained(model_dir)
  jax.tree.map(np.testing.assert_array_equal, params, pretrained)
  jax.tree.map(np.testing.assert_array_equal, kept, mask)
  rows = {r['layer']: r for r in weights.layer_stats(params, kept)}
  assert rows['block_01/mlp/proj/kernel']['kept'] == 0.5
  # SparseGPT's mask is not its pruned network (it updates the weights it
  # keeps): refused, as is the probe of a run that trains no network
  shutil.copytree(saved, saved.replace('wanda', 'sparsegpt'))
  with pytest.raises(ValueError, match='SparseGPT also updates the weights'):
    weights.load_state(saved.replace('wanda', 'sparsegpt'))
  with pytest.raises(ValueError, match="comes from a 'oneshot' run"):
    path_probe.probe_checkpoints(saved, saved)


@pytest.mark.parametrize('fields,match', [
    ({'methods': ('obs',)}, 'valid methods'),
    ({'targets': ('1.5',)}, 'valid targets'),
    ({'evaluation': 'binary'}, 'corpus:document'),
    ({'evaluation': 'pydoc:nonesuch'}, 'no document'),
    ({'context': 64}, "exceeds the model's context"),
    ({'model': '/nonexistent'}, 'give "smollm2"'),
    ({'targets': ('0.5', '2:3')}, 'groups 3 inputs, but the kernel has 32'),
    ({'methods': ('sparsegpt',), 'blocksize': 6},
     'needs a blocksize that divides by 4'),
    ({'targets': ('0.5', 0.5)}, 'one is given twice'),
    ({'methods': ('wanda', 'wanda')}, 'one is given twice'),
    ({'targets': ('0.0',)}, 'sparsity 0 prunes nothing'),
    # (`--config.oneshot.methods=(wanda,magnitude)`, quotes lost)
    ({'methods': ('(wanda,magnitude)',)}, 'one string, not a tuple'),
])
def test_bad_input_fails_before_any_file_is_written(model_dir, tmp_path,
                                                    fields, match):
  with pytest.raises(ValueError, match=match):
    jobs.run(_config(model_dir, **fields), str(tmp_path / 'w'))
  assert not list((tmp_path / 'w').rglob('*.json'))


def test_seed_count_other_than_one_is_refused(model_dir, tmp_path):
  config = _config(model_dir)
  config.num_seeds = 2
  with pytest.raises(ValueError, match='num_seeds=1'):
    jobs.run(config, str(tmp_path))


def test_smollm2_config_checks():
  for arg in (None, 'smoke', 'calib=8,eval=0,context=256'):
    job.check(oneshot_smollm2_austen.get_config(arg))


def test_a_pretrained_model_fine_tunes_masked_through_imp(model_dir,
                                                          tmp_path):
  """The `pretrained` model starts every seed (and IMP's rewind) from the
  pretrained weights; the data is tokenized with its tokenizer.json."""
  from configs import imp_gpt_shakespeare  # pylint: disable=g-import-not-at-top
  config = imp_gpt_shakespeare.get_config('smoke')
  config.progress = False
  config.data.tokenizer = os.path.join(model_dir, 'tokenizer.json')
  config.data.context = 16
  config.model.name = 'pretrained'
  config.model.kwargs = ml_collections.ConfigDict({'source': model_dir})
  config.imp.controls = ()
  summary = jobs.run(config, str(tmp_path))
  _, params, _ = setup_lib.pretrained(model_dir)
  from ticketjax.run import store  # pylint: disable=g-import-not-at-top
  rewind = store.Checkpoints(summary['run_dir']).restore_raw('rewind_init')
  for s in range(config.num_seeds):  # every seed starts pretrained
    np.testing.assert_array_equal(
        rewind['params']['block_01']['mlp']['fc']['kernel'][s],
        params['block_01']['mlp']['fc']['kernel'])
  assert summary['metric'] == 'perplexity' and summary['levels_done'] == 2
  config.data.tokenizer = 'char'  # another vocabulary: one clear error
  with pytest.raises(ValueError, match="model's own vocabulary"):
    jobs.run(config, str(tmp_path / 'other'))
