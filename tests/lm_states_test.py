"""The seed paper's starting states: a byte-level BPE learned offline, a
GPT pretrained on one corpus, exported as a Hugging Face GPT-2 folder and
pruned by IMP from it on another (configs/imp_gpt_austen.py on pydoc)."""
import json
import os

import jax
import numpy as np
import pytest
import testlib

from configs import imp_gpt_austen
from ticketjax.data import loaders
from ticketjax.data import text
from ticketjax.models import pretrained as pretrained_lib
from ticketjax.reports import cross_run
from ticketjax.reports import path_probe
from ticketjax.run import export
from ticketjax.run import jobs


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_byte_level_bpe_gives_every_text_ids_and_refuses_bad_input(tmp_path):
  data_dir = loaders.resolve_data_dir(None)
  path = str(tmp_path / 'bpe.json')
  tokenizer = text.train_bpe('pydoc', 300, data_dir, path)
  assert (tokenizer.size, tokenizer.label) == (300, 'bpe300')
  # characters pydoc never has (Austen's pound sign, an em dash) still
  # encode, byte by byte, and decode back
  sample = 'Emma — £5 [sic] _it_\n\tnaïve'
  assert tokenizer.decode(tokenizer.encode(sample)) == sample
  # deterministic: the same corpus and size give the same file
  again = text.train_bpe('pydoc', 300, data_dir, str(tmp_path / 'b2.json'))
  with open(path) as f, open(again.path) as g:
    assert f.read() == g.read()
  before = os.path.getmtime(path)
  with pytest.raises(ValueError, match='exists'):
    text.train_bpe('pydoc', 300, data_dir, path)
  assert os.path.getmtime(path) == before
  for size in (256, 12.5, True):
    with pytest.raises(ValueError, match='vocab_size must be an int > 256'):
      text.train_bpe('pydoc', size, data_dir, str(tmp_path / 'x.json'))
  with pytest.raises(ValueError, match='unknown text data set'):
    text.train_bpe('wiki', 300, data_dir, str(tmp_path / 'x.json'))


def test_pretrain_export_and_imp_from_the_exported_weights(tmp_path):
  tokenizer = text.train_bpe('pydoc', 300, loaders.resolve_data_dir(None),
                             str(tmp_path / 'bpe.json'))
  config = imp_gpt_austen.get_config(
      f'smoke,stage=pretrain,tokenizer={tokenizer.path}')
  config.progress = False
  pretrain = jobs.run(config, str(tmp_path / 'w'))
  assert pretrain['levels_done'] == 1 and len(pretrain['members']) == 1
  network = os.path.join(pretrain['run_dir'], 'checkpoints', 'level_000')
  saved, _, _, _ = path_probe.load_endpoint(network, 0)

  out = str(tmp_path / 'pretrained')
  manifest = export.export_network(network, out)
  assert manifest['vocab_size'] == 300 and not manifest['masked']
  assert sorted(os.listdir(out)) == ['config.json', 'model.safetensors',
                                     'ticketjax_export.json',
                                     'tokenizer.json']
  mode = lambda name: os.stat(os.path.join(out, name)).st_mode & 0o777
  assert mode('model.safetensors') == mode('config.json')  # not owner-only
  cfg, loaded, _ = pretrained_lib.load_pretrained(out)
  assert (cfg.vocab_size, cfg.d_model, cfg.num_layers) == (300, 32, 1)
  _assert_trees_equal(loaded, saved)  # float32 round trip: bit for bit
  with pytest.raises(ValueError, match='not an empty folder'):
    export.export_network(network, out)

  # IMP from the exported weights: every seed rewinds to them, and the
  # pruned ticket exports with its zeros
  config = imp_gpt_austen.get_config(f'smoke,source={out}')
  config.progress = False
  assert config.data.tokenizer == os.path.join(out, 'tokenizer.json')
  imp = jobs.run(config, str(tmp_path / 'w'))
  assert imp['levels_done'] == 2
  ckpt = os.path.join(imp['run_dir'], 'checkpoints')
  for seed in range(config.num_seeds):
    rewind, _, _, _ = path_probe.load_endpoint(
        os.path.join(ckpt, 'rewind_init'), seed)
    _assert_trees_equal(rewind, saved)
  ticket = str(tmp_path / 'ticket')
  assert export.export_network(os.path.join(ckpt, 'level_001') + ':1',
                               ticket)['masked']
  params, _, mask, _ = path_probe.load_endpoint(
      os.path.join(ckpt, 'level_001'), 1)
  _, loaded, _ = pretrained_lib.load_pretrained(ticket)
  _assert_trees_equal(loaded, jax.tree.map(lambda w, m: np.where(m, w, 0),
                                           params, mask))
  with open(os.path.join(ticket, 'ticketjax_export.json')) as f:
    assert json.load(f)['network'].endswith('level_001:1')
  # launch.weights reads the exported ticket as its checkpoint: kept are
  # its nonzero weights, not all of them
  from ticketjax.reports import weights  # pylint: disable=g-import-not-at-top
  exported = weights.layer_stats(*weights.load_state(ticket))
  assert exported == weights.layer_stats(*weights.load_state(
      os.path.join(ckpt, 'level_001') + ':1'))
  assert max(r['kept'] for r in exported) < 1.0

  # the run folder's hash holds the source's path: other weights exported
  # there later make the finished run refuse, before any write, rather than
  # be 'already done' (or extended with seeds from the new weights)
  with open(os.path.join(imp['run_dir'], 'inputs.json')) as f:
    assert sorted(json.load(f)) == ['data.tokenizer', 'model.kwargs.source']
  testlib.flip_a_bit(os.path.join(out, 'model.safetensors'))
  before = testlib.file_hashes(imp['run_dir'])
  for seeds in (config.num_seeds, config.num_seeds + 1):
    config.num_seeds = seeds
    with pytest.raises(ValueError, match='the contents of model.kwargs.source '
                       'changed since .* was run from them'):
      jobs.run(config, str(tmp_path / 'w'))
  assert testlib.file_hashes(imp['run_dir']) == before

  # the cross-run report plots and tabulates perplexity for LM runs
  report = cross_run.write([imp['run_dir']], str(tmp_path / 'report'))
  assert os.path.exists(tmp_path / 'report' / 'perplexity.png')
  assert not os.path.exists(tmp_path / 'report' / 'accuracy.png')
  ppl = [imp['levels'][i]['ticket']['final_test_perplexity'] for i in (0, 1)]
  row = [line for line in report.splitlines()
         if line.startswith('| imp pretrained(pretrained) ticket |')
         and '| 80.00 |' in line]
  assert row and (f"| {ppl[1]['mean']:.2f} ± {ppl[1]['std']:.2f} | "
                  f"{100 * (ppl[1]['mean'] / ppl[0]['mean'] - 1):+.1f} |"
                  in row[0]), (row, ppl)


def test_export_refuses_what_has_no_gpt2_form(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match='no checkpoint folder'):
    export.export_network(str(tmp_path / 'run/checkpoints/x'),
                          str(tmp_path / 'out'))
  config = {'model': {'name': 'llama', 'kwargs': {}}}
  with pytest.raises(ValueError, match="no Hugging Face GPT-2 form"):
    export.decoder_config(config, 10)
  # a character vocabulary has no file to ship with the weights
  (tmp_path / 'run/checkpoints/x').mkdir(parents=True)
  config = {'job': 'imp', 'model': {'name': 'gpt'},
            'data': {'tokenizer': 'char'}}
  (tmp_path / 'run/config.json').write_text(json.dumps(config))
  params = {'embed': {'embedding': np.zeros((5, 4), np.float32)}}
  monkeypatch.setattr(path_probe, 'load_endpoint',
                      lambda path, member: (params, {}, None, config))
  with pytest.raises(ValueError, match='export needs a tokenizer file'):
    export.export_network(str(tmp_path / 'run/checkpoints/x'),
                          str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists()


def test_config_stages_refuse_inconsistent_variants():
  with pytest.raises(ValueError, match='stage must be one of'):
    imp_gpt_austen.get_config('stage=train')
  with pytest.raises(ValueError, match='needs source=DIR'):
    imp_gpt_austen.get_config('stage=finetune')
  with pytest.raises(ValueError, match='not both'):
    imp_gpt_austen.get_config('source=/x,tokenizer=/y.json')
  with pytest.raises(ValueError, match='source=smollm2: this config starts '
                     'from a GPT-2 folder exported'):
    imp_gpt_austen.get_config('source=smollm2')
  pre = imp_gpt_austen.get_config('stage=pretrain,tokenizer=/t.json')
  assert (pre.data.name, pre.num_seeds, pre.imp.levels,
          pre.train.steps) == ('shakespeare', 1, 0, 3000)
  imp = imp_gpt_austen.get_config('source=/x')
  assert (imp.data.name, imp.model.name, imp.model.kwargs.source,
          imp.optimizer.learning_rate) == ('austen', 'pretrained', '/x',
                                           1e-3)
