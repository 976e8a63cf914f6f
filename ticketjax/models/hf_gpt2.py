"""A local Hugging Face GPT-2 directory as `transformer` params, and back.

`load(path)` reads `config.json` and the weights from `model.safetensors`,
or from shards listed in `model.safetensors.index.json` (its "weight_map");
torch pickles (`pytorch_model.bin`) are refused: convert them once,
elsewhere, to safetensors. Tensor names may carry the `transformer.` prefix
(checkpoints saved from `GPT2LMHeadModel`); the causal-mask buffers
`h.N.attn.bias` / `h.N.attn.masked_bias` of old exports are skipped.

HF's Conv1D keeps its weight as (in, out) and computes `x @ W + b`, which is
the layout of a `transformer` kernel: the weights are copied unchanged; only
the fused `c_attn` is split into query, key and value. `lm_head.weight` is
read only when present and `tie_word_embeddings` is false.

`save(cfg, params, path)` writes the same layout (for round trips and
tests), with safetensors metadata {'format': 'pt'} so that transformers
reads it too.
"""
import json
import os
from typing import Any

import numpy as np
from safetensors import numpy as st_numpy
import safetensors

from ticketjax.models import transformer

CONFIG = 'config.json'
WEIGHTS = 'model.safetensors'
_UMASK = os.umask(0o022)  # read once, at import: the umask is process-wide
os.umask(_UMASK)
INDEX = 'model.safetensors.index.json'
TORCH_FILES = ('pytorch_model.bin', 'pytorch_model.bin.index.json')
PREFIX = 'transformer.'
# Activations that are HF's tanh-approximated GELU.
TANH_GELUS = ('gelu_new', 'gelu_pytorch_tanh', 'gelu_fast')


def config_from_hf(hf: dict[str, Any]) -> transformer.DecoderConfig:
  """A `DecoderConfig` from the dict of a GPT-2 `config.json`.

  Raises:
    ValueError: a required key is missing, or the config asks for numerics
      this model does not implement (another activation, unscaled or
      layer-scaled attention).
  """
  missing = [k for k in ('vocab_size', 'n_positions', 'n_embd', 'n_layer',
                         'n_head') if k not in hf]
  if missing:
    raise ValueError(f'{CONFIG} lacks {", ".join(missing)}.')
  activation = hf.get('activation_function', 'gelu_new')
  if activation not in TANH_GELUS:
    raise ValueError(
        f'{CONFIG}: activation_function {activation!r} is not supported; '
        f'valid: {", ".join(TANH_GELUS)} (tanh GELU).')
  if not hf.get('scale_attn_weights', True):
    raise ValueError(f'{CONFIG}: scale_attn_weights=false is not supported.')
  if hf.get('scale_attn_by_inverse_layer_idx', False):
    raise ValueError(
        f'{CONFIG}: scale_attn_by_inverse_layer_idx=true is not supported.')
  d_model = hf['n_embd']
  d_ff = hf.get('n_inner') or 4 * d_model
  return transformer.DecoderConfig(
      vocab_size=hf['vocab_size'], context=hf['n_positions'],
      d_model=d_model, num_layers=hf['n_layer'], num_heads=hf['n_head'],
      num_kv_heads=hf['n_head'], d_ff=d_ff, style='gpt2',
      norm_eps=float(hf.get('layer_norm_epsilon', 1e-5)),
      tie_embeddings=bool(hf.get('tie_word_embeddings', True)),
  ).validate()


def config_to_hf(cfg: transformer.DecoderConfig) -> dict[str, Any]:
  """The `config.json` dict of a GPT-2 `cfg`."""
  _check_gpt2(cfg)
  return {
      'architectures': ['GPT2LMHeadModel'],
      'model_type': 'gpt2',
      'vocab_size': cfg.vocab_size,
      'n_positions': cfg.context,
      'n_ctx': cfg.context,
      'n_embd': cfg.d_model,
      'n_layer': cfg.num_layers,
      'n_head': cfg.num_heads,
      'n_inner': cfg.d_ff,
      'activation_function': 'gelu_new',
      'layer_norm_epsilon': cfg.norm_eps,
      'tie_word_embeddings': cfg.tie_embeddings,
      'scale_attn_weights': True,
      'torch_dtype': 'float32',
  }


def _check_gpt2(cfg: transformer.DecoderConfig) -> None:
  """ValueError unless `cfg` is a valid 'gpt2' config."""
  cfg.validate()
  if cfg.style != 'gpt2':
    raise ValueError(
        f"HF GPT-2 checkpoints hold style 'gpt2', got {cfg.style!r}.")


def _linear_names(hf: str, ours: str) -> dict[str, str]:
  """{HF name: our flat path} of one Conv1D's weight and bias."""
  return {f'{hf}.weight': f'{ours}/kernel', f'{hf}.bias': f'{ours}/bias'}


def _norm_names(hf: str, ours: str) -> dict[str, str]:
  """{HF name: our flat path} of one LayerNorm."""
  return {f'{hf}.weight': f'{ours}/scale', f'{hf}.bias': f'{ours}/bias'}


def hf_names(cfg: transformer.DecoderConfig) -> dict[str, str]:
  """Every unfused HF tensor name (no prefix) -> our flat param path.

  The fused `h.N.attn.c_attn.{weight,bias}` are not in it (see `from_hf`).
  """
  names = {'wte.weight': 'embed/embedding', 'wpe.weight': 'pos/embedding'}
  for i in range(cfg.num_layers):
    h, b = f'h.{i}', transformer.block_name(i)
    names.update(_norm_names(f'{h}.ln_1', f'{b}/ln_1'))
    names.update(_norm_names(f'{h}.ln_2', f'{b}/ln_2'))
    names.update(_linear_names(f'{h}.attn.c_proj', f'{b}/attn/out'))
    names.update(_linear_names(f'{h}.mlp.c_fc', f'{b}/mlp/fc'))
    names.update(_linear_names(f'{h}.mlp.c_proj', f'{b}/mlp/proj'))
  names.update(_norm_names('ln_f', 'ln_f'))
  return names


def _expected_shapes(cfg: transformer.DecoderConfig) -> dict[str, tuple]:
  """HF name (no prefix) -> shape, for every tensor `cfg` needs."""
  ours = transformer.flatten(transformer.param_shapes(cfg))
  shapes = {hf: ours[path] for hf, path in hf_names(cfg).items()}
  d = cfg.d_model
  for i in range(cfg.num_layers):
    shapes[f'h.{i}.attn.c_attn.weight'] = (d, 3 * d)
    shapes[f'h.{i}.attn.c_attn.bias'] = (3 * d,)
  if not cfg.tie_embeddings:
    shapes['lm_head.weight'] = (cfg.vocab_size, d)
  return shapes


def _is_buffer(name: str) -> bool:
  """The causal-mask buffers old exports store: `h.N.attn.(masked_)bias`."""
  return name.endswith('.attn.bias') or name.endswith('.attn.masked_bias')


def _strip(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Drops the `transformer.` prefix and the mask buffers."""
  out = {}
  for name, value in tensors.items():
    short = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if _is_buffer(short):
      continue
    if short in out:
      raise ValueError(
          f'tensor {short!r} appears both with and without the '
          f'{PREFIX!r} prefix.')
    out[short] = value
  return out


def from_hf(
    cfg: transformer.DecoderConfig, tensors: dict[str, np.ndarray]
) -> dict:
  """Our nested params (float32 numpy) from HF GPT-2 tensors.

  Args:
    cfg: the 'gpt2' config the tensors belong to.
    tensors: HF name -> array, with or without the `transformer.` prefix;
      mask buffers are ignored; `lm_head.weight` is ignored when `cfg` ties
      the embeddings.

  Raises:
    ValueError: a tensor is missing, unexpected or misshaped (named).
  """
  _check_gpt2(cfg)
  tensors = _strip(tensors)
  if cfg.tie_embeddings:
    tensors.pop('lm_head.weight', None)
  expected = _expected_shapes(cfg)
  missing = sorted(set(expected) - set(tensors))
  if missing:
    raise ValueError(f'checkpoint lacks tensor(s): {", ".join(missing)}.')
  extra = sorted(set(tensors) - set(expected))
  if extra:
    raise ValueError(f'checkpoint has unexpected tensor(s): '
                     f'{", ".join(extra)}.')
  for name, shape in expected.items():
    if tuple(tensors[name].shape) != shape:
      raise ValueError(
          f'tensor {name!r} has shape {tuple(tensors[name].shape)}; the '
          f'config needs {shape}.')
  as_f32 = lambda a: np.asarray(a, dtype=np.float32)
  flat = {path: as_f32(tensors[hf]) for hf, path in hf_names(cfg).items()}
  d = cfg.d_model
  for i in range(cfg.num_layers):
    w = as_f32(tensors[f'h.{i}.attn.c_attn.weight'])
    b = as_f32(tensors[f'h.{i}.attn.c_attn.bias'])
    for j, part in enumerate(('query', 'key', 'value')):
      path = f'{transformer.block_name(i)}/attn/{part}'
      flat[f'{path}/kernel'] = w[:, j * d:(j + 1) * d]
      flat[f'{path}/bias'] = b[j * d:(j + 1) * d]
  if not cfg.tie_embeddings:
    flat['lm_head/kernel'] = as_f32(tensors['lm_head.weight']).T
  return transformer.unflatten(flat)


def to_hf(
    cfg: transformer.DecoderConfig, params: dict, prefix: bool = False
) -> dict[str, np.ndarray]:
  """HF GPT-2 tensors (float32 numpy, contiguous) from our params."""
  _check_gpt2(cfg)
  flat = {k: np.asarray(v, np.float32)
          for k, v in transformer.flatten(params).items()}
  tensors = {hf: flat[path] for hf, path in hf_names(cfg).items()}
  for i in range(cfg.num_layers):
    path = f'{transformer.block_name(i)}/attn'
    parts = ('query', 'key', 'value')
    tensors[f'h.{i}.attn.c_attn.weight'] = np.concatenate(
        [flat[f'{path}/{p}/kernel'] for p in parts], axis=1)
    tensors[f'h.{i}.attn.c_attn.bias'] = np.concatenate(
        [flat[f'{path}/{p}/bias'] for p in parts])
  head = {}
  if not cfg.tie_embeddings:
    head['lm_head.weight'] = flat['lm_head/kernel'].T
  lead = PREFIX if prefix else ''
  tensors = {lead + k: v for k, v in tensors.items()} | head
  return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of one safetensors file as numpy arrays."""
  with safetensors.safe_open(path, framework='np') as f:
    return {k: f.get_tensor(k) for k in f.keys()}


def read_tensors(path: str) -> dict[str, np.ndarray]:
  """Every tensor of the HF directory `path` (single file or shards).

  Raises:
    ValueError: only a torch pickle is there, no weights at all, or the
      index names a missing shard.
  """
  index = os.path.join(path, INDEX)
  single = os.path.join(path, WEIGHTS)
  if os.path.exists(index):
    with open(index) as f:
      weight_map = json.load(f).get('weight_map')
    if not isinstance(weight_map, dict) or not weight_map:
      raise ValueError(f'{index} has no "weight_map".')
    tensors = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(path, shard)
      if not os.path.exists(shard_path):
        raise ValueError(f'{index} names shard {shard!r}, not in {path}.')
      tensors.update(_read_safetensors(shard_path))
    unlisted = sorted(set(weight_map) - set(tensors))
    if unlisted:
      raise ValueError(f'{index} maps tensor(s) that no shard holds: '
                       f'{", ".join(unlisted)}.')
    return tensors
  if os.path.exists(single):
    return _read_safetensors(single)
  torch = [n for n in TORCH_FILES if os.path.exists(os.path.join(path, n))]
  if torch:
    raise ValueError(
        f'{path} holds only {torch[0]}, a torch pickle, which ticketjax does '
        f'not read. Convert it once, elsewhere, to {WEIGHTS} (e.g. '
        'transformers: from_pretrained(path).save_pretrained(path, '
        'safe_serialization=True)).')
  raise ValueError(f'{path} has neither {WEIGHTS} nor {INDEX}.')


def read_config(path: str) -> transformer.DecoderConfig:
  """The config of the HF GPT-2 directory `path` (its weights unread);
  ValueError if it has no `config.json`."""
  config_path = os.path.join(path, CONFIG)
  if not os.path.isfile(config_path):
    raise ValueError(f'{path} is not a HF model directory: no {CONFIG}.')
  with open(config_path) as f:
    return config_from_hf(json.load(f))


def load(path: str) -> tuple[transformer.DecoderConfig, dict]:
  """Config and params (float32 numpy) of the HF GPT-2 directory `path`.

  Raises:
    ValueError: `path` is not a directory with `config.json`, its weights
      are a torch pickle or absent, or a tensor is missing, unexpected or
      misshaped (the message names it).
  """
  cfg = read_config(path)
  return cfg, from_hf(cfg, read_tensors(path))


def _save_file(tensors, path: str, metadata) -> None:
  """safetensors' `save_file`, then the permissions of any new file (the
  umask's: safetensors creates it readable by its owner only)."""
  st_numpy.save_file(tensors, path, metadata)
  os.chmod(path, 0o666 & ~_UMASK)


def save(
    cfg: transformer.DecoderConfig,
    params: dict,
    path: str,
    prefix: bool = False,
    shards: int = 1,
) -> None:
  """Writes `params` as a HF GPT-2 directory (`config.json` and weights).

  Args:
    cfg: a 'gpt2' config.
    params: our params for `cfg`.
    path: the directory (created if needed).
    prefix: name the tensors `transformer.*` (as `GPT2LMHeadModel` saves).
    shards: 1 writes `model.safetensors`; more split the tensors in order
      over `model-0000k-of-0000n.safetensors` plus the index.

  Raises:
    ValueError: a non-gpt2 config, or `shards` not a positive int at most
      the number of tensors.
  """
  if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
    raise ValueError(f'shards must be a positive int, got {shards!r}.')
  tensors = to_hf(cfg, params, prefix=prefix)
  if shards > len(tensors):
    raise ValueError(f'shards ({shards}) exceeds the {len(tensors)} tensors.')
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, CONFIG), 'w') as f:
    json.dump(config_to_hf(cfg), f, indent=2)
  metadata = {'format': 'pt'}
  if shards == 1:
    _save_file(tensors, os.path.join(path, WEIGHTS), metadata)
    return
  names = list(tensors)
  weight_map = {}
  for k, part in enumerate(np.array_split(np.arange(len(names)), shards)):
    shard = f'model-{k + 1:05d}-of-{shards:05d}.safetensors'
    chunk = {names[j]: tensors[names[j]] for j in part}
    _save_file(chunk, os.path.join(path, shard), metadata)
    weight_map.update({name: shard for name in chunk})
  total = sum(int(v.nbytes) for v in tensors.values())
  with open(os.path.join(path, INDEX), 'w') as f:
    json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map},
              f, indent=2)
