"""A saved network of a run as a Hugging Face GPT-2 folder.

`export_network('RUN/checkpoints/NAME[:MEMBER]', out_dir)` writes the
network (its mask applied: pruned weights are 0) as `config.json` +
`model.safetensors` (`models.hf_gpt2.save`), the run's tokenizer JSON as
`tokenizer.json`, and `ticketjax_export.json` (where it came from). The
folder is a `source` of the 'pretrained' model and of `launch.weights`,
and loads in any GPT-2 reader: that is how a network trained here becomes
the pretrained starting point of another run (pretrain, fine-tune, prune).

Only GPT-2-style decoders trained with a tokenizer file export: the 'gpt'
model, or 'pretrained' from a GPT-2 folder (a GGUF Llama has no GPT-2
form); a 'char' vocabulary has no file to ship with the weights.
"""
import json
import os
import shutil

import jax
import numpy as np

from ticketjax.models import hf_gpt2
from ticketjax.models import transformer
from ticketjax.reports import path_probe

MANIFEST = 'ticketjax_export.json'
TOKENIZER = 'tokenizer.json'


def decoder_config(config: dict, vocab_size: int
                   ) -> transformer.DecoderConfig:
  """The GPT-2 `DecoderConfig` of a run's model (its config dict);
  ValueError for a model that has no GPT-2 form."""
  model = config['model']
  name, kwargs = model['name'], dict(model.get('kwargs') or {})
  _check_model(name)
  if name == 'gpt':
    return transformer.gpt_config(vocab_size, **kwargs)
  source = kwargs.get('source', 'smollm2')
  if os.path.isdir(source):  # a GPT-2 folder; only its config is read
    return hf_gpt2.read_config(source)
  raise ValueError(f"model 'pretrained' from {source!r} is a Llama-style "
                   'GGUF: it has no Hugging Face GPT-2 form')


def _check_model(name: str) -> None:
  if name not in ('gpt', 'pretrained'):
    raise ValueError(
        f"model {name!r} has no Hugging Face GPT-2 form: export takes the "
        "'gpt' model or 'pretrained' from a GPT-2 folder")


def export_network(spec: str, out_dir: str) -> dict:
  """Writes the network `spec` ('RUN/checkpoints/NAME[:MEMBER]') to
  `out_dir` (module docstring) and returns the manifest.

  Raises:
    ValueError: a missing checkpoint or member, a model with no GPT-2
      form, a run without a tokenizer file, or an `out_dir` that exists
      and is not empty; all before anything is written.
  """
  out_dir = os.path.abspath(os.path.expanduser(out_dir))
  if os.path.exists(out_dir) and (not os.path.isdir(out_dir)
                                  or os.listdir(out_dir)):
    raise ValueError(f'{out_dir} exists and is not an empty folder; give a '
                     'new folder for the export')
  path, member = path_probe.parse_endpoint(spec)
  run_config = path_probe.run_config(path)
  path_probe.check_plain(run_config, path)
  path_probe.check_built(run_config, path, 'export')
  params, _, mask, config = path_probe.load_endpoint(path, member)
  _check_model(config['model']['name'])
  tokenizer = (config.get('data') or {}).get('tokenizer') or 'char'
  if tokenizer == 'char' or not os.path.isfile(tokenizer):
    raise ValueError(
        f'the run of {path} used data.tokenizer {tokenizer!r}: export needs '
        'a tokenizer file to ship with the weights (train one with '
        'python -m launch.tokenizer)')
  vocab_size = int(np.shape(params['embed']['embedding'])[0])
  cfg = decoder_config(config, vocab_size)
  if mask is not None:
    params = jax.tree.map(lambda w, m: np.where(m, w, 0).astype(w.dtype),
                          params, mask)
  hf_gpt2.save(cfg, params, out_dir)
  shutil.copyfile(tokenizer, os.path.join(out_dir, TOKENIZER))
  kept = [float(np.mean(m)) for m in jax.tree.leaves(mask)] if mask else []
  manifest = {
      'network': f'{path}:{member}', 'model': config['model']['name'],
      'dataset': config['data']['name'], 'tokenizer': tokenizer,
      'vocab_size': vocab_size,
      'masked': bool(mask is not None and min(kept, default=1.0) < 1.0)}
  with open(os.path.join(out_dir, MANIFEST), 'w') as f:
    json.dump(manifest, f, indent=1)
  return manifest
