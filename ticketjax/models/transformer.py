"""A decoder-only transformer language model in pure JAX (GPT-2 and Llama).

No Flax: parameters are a nested dict and every piece is a function of
`(cfg, params, ...)`, so a sequential pruner can run the blocks one at a time
(`embed`, `block` / `block_with_inputs`, `head`) and the framework's
`Model` pair comes from `as_model`.

Two styles share the layout:

* 'gpt2': learned positions, pre-LN LayerNorm (scale and bias), tanh GELU
  MLP `fc`/`proj`, biases on every projection; HF GPT-2's numerics.
* 'llama': RMSNorm (scale only), rotary positions in HF's `rotate_half`
  layout, SwiGLU MLP `gate`/`up`/`down`, grouped-query attention
  (`num_kv_heads` key/value heads shared by `num_heads / num_kv_heads` query
  heads each), no biases.

Parameter names (every kernel is (in, out); only projections are named
`kernel`, which is what the pruning code prunes):

  embed/embedding (V, D)        pos/embedding (P, D)            gpt2 only
  block_NN/ln_1/scale (D,)      block_NN/ln_1/bias              gpt2 only
  block_NN/attn/query/kernel (D, H*Dh)   .../key/kernel, .../value/kernel
      (D, KV*Dh)                .../out/kernel (H*Dh, D)  (+ bias, gpt2)
  block_NN/ln_2/...
  block_NN/mlp/fc/kernel (D, F), mlp/proj/kernel (F, D)  (+ bias)  gpt2
  block_NN/mlp/gate/kernel, mlp/up/kernel (D, F), mlp/down/kernel (F, D)
  ln_f/scale (+ bias, gpt2)     lm_head/kernel (D, V)    when not tied

`block_NN` has two digits, so sorted order is model order.
"""
import dataclasses
import inspect
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import types

STYLES = ('gpt2', 'llama')

# The kernels of one block, in model order, per style.
BLOCK_KERNELS = {
    'gpt2': ('attn/query', 'attn/key', 'attn/value', 'attn/out', 'mlp/fc',
             'mlp/proj'),
    'llama': ('attn/query', 'attn/key', 'attn/value', 'attn/out', 'mlp/gate',
              'mlp/up', 'mlp/down'),
}
# Projections that write into the residual stream (GPT-2's scaled init).
RESIDUAL_KERNELS = ('attn/out', 'mlp/proj', 'mlp/down')

INIT_STD = 0.02


def _positive_int(name: str, value: Any) -> int:
  """Returns `value` if it is a positive int, else raises ValueError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f'{name} must be a positive int, got {value!r}.')
  return value


def _positive_float(name: str, value: Any) -> float:
  """Returns `value` as a float if it is a positive number, else ValueError."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f'{name} must be a positive number, got {value!r}.')
  if not math.isfinite(value) or value <= 0:
    raise ValueError(f'{name} must be a positive number, got {value!r}.')
  return float(value)


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """Hyperparameters of a decoder-only transformer.

  Attributes:
    vocab_size: number of tokens V.
    context: the most positions a sequence may have (GPT-2's learned
      position table has this many rows).
    d_model: residual width D; a multiple of `num_heads`.
    num_layers: number of blocks.
    num_heads: query heads H; the head size is `d_model // num_heads`.
    num_kv_heads: key/value heads KV, dividing `num_heads` (= `num_heads`
      for GPT-2).
    d_ff: hidden width F of the MLP.
    style: 'gpt2' or 'llama' (see the module docstring).
    norm_eps: epsilon of LayerNorm (gpt2) or RMSNorm (llama).
    rope_theta: RoPE base frequency (llama only).
    tie_embeddings: logits use `embed/embedding` transposed; otherwise
      the params hold `lm_head/kernel`.
  """
  vocab_size: int
  context: int
  d_model: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  d_ff: int
  style: str = 'gpt2'
  norm_eps: float = 1e-5
  rope_theta: float = 1e4
  tie_embeddings: bool = True

  @property
  def head_dim(self) -> int:
    """Size of one attention head."""
    return self.d_model // self.num_heads

  def validate(self) -> 'DecoderConfig':
    """Returns `self` if every field is valid.

    Raises:
      ValueError: naming the field, its value and what is valid.
    """
    for name in ('vocab_size', 'context', 'd_model', 'num_layers',
                 'num_heads', 'num_kv_heads', 'd_ff'):
      _positive_int(name, getattr(self, name))
    if self.style not in STYLES:
      raise ValueError(
          f'style must be one of {", ".join(STYLES)}, got {self.style!r}.')
    _positive_float('norm_eps', self.norm_eps)
    _positive_float('rope_theta', self.rope_theta)
    if not isinstance(self.tie_embeddings, bool):
      raise ValueError(
          f'tie_embeddings must be a bool, got {self.tie_embeddings!r}.')
    if self.d_model % self.num_heads:
      raise ValueError(
          f'd_model ({self.d_model}) must be a multiple of num_heads '
          f'({self.num_heads}).')
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f'num_kv_heads ({self.num_kv_heads}) must divide num_heads '
          f'({self.num_heads}).')
    if self.style == 'gpt2' and self.num_kv_heads != self.num_heads:
      raise ValueError(
          f"style 'gpt2' has no grouped-query attention: num_kv_heads "
          f'({self.num_kv_heads}) must equal num_heads ({self.num_heads}).')
    if self.style == 'llama' and self.head_dim % 2:
      raise ValueError(
          f'RoPE needs an even head size; d_model / num_heads = '
          f'{self.head_dim}.')
    return self


def block_name(i: int) -> str:
  """The params key of block `i` ('block_00', 'block_01', ...)."""
  return f'block_{i:02d}'


def _linear_shapes(cfg: DecoderConfig, d_in: int, d_out: int) -> dict:
  """Shapes of one projection: a kernel, and a bias for gpt2."""
  shapes = {'kernel': (d_in, d_out)}
  if cfg.style == 'gpt2':
    shapes['bias'] = (d_out,)
  return shapes


def _norm_shapes(cfg: DecoderConfig) -> dict:
  """Shapes of one norm: a scale, and a bias for gpt2."""
  shapes = {'scale': (cfg.d_model,)}
  if cfg.style == 'gpt2':
    shapes['bias'] = (cfg.d_model,)
  return shapes


def _block_shapes(cfg: DecoderConfig) -> dict:
  """Shapes of one block's params."""
  d, f = cfg.d_model, cfg.d_ff
  q_dim = cfg.num_heads * cfg.head_dim
  kv_dim = cfg.num_kv_heads * cfg.head_dim
  attn = {
      'query': _linear_shapes(cfg, d, q_dim),
      'key': _linear_shapes(cfg, d, kv_dim),
      'value': _linear_shapes(cfg, d, kv_dim),
      'out': _linear_shapes(cfg, q_dim, d),
  }
  if cfg.style == 'gpt2':
    mlp = {'fc': _linear_shapes(cfg, d, f), 'proj': _linear_shapes(cfg, f, d)}
  else:
    mlp = {'gate': _linear_shapes(cfg, d, f), 'up': _linear_shapes(cfg, d, f),
           'down': _linear_shapes(cfg, f, d)}
  return {'ln_1': _norm_shapes(cfg), 'attn': attn, 'ln_2': _norm_shapes(cfg),
          'mlp': mlp}


def param_shapes(cfg: DecoderConfig) -> dict:
  """The params' nested dict with a shape tuple at every leaf.

  Loaders check the tensors they read against it; `init` fills it.
  """
  cfg.validate()
  shapes = {'embed': {'embedding': (cfg.vocab_size, cfg.d_model)}}
  if cfg.style == 'gpt2':
    shapes['pos'] = {'embedding': (cfg.context, cfg.d_model)}
  for i in range(cfg.num_layers):
    shapes[block_name(i)] = _block_shapes(cfg)
  shapes['ln_f'] = _norm_shapes(cfg)
  if not cfg.tie_embeddings:
    shapes['lm_head'] = {'kernel': (cfg.d_model, cfg.vocab_size)}
  return shapes


def flatten(tree: dict, prefix: str = '') -> dict[str, Any]:
  """A nested dict as {'a/b/c': leaf}, in sorted key order."""
  flat = {}
  for k in sorted(tree):
    path = f'{prefix}{k}'
    if isinstance(tree[k], dict):
      flat.update(flatten(tree[k], path + '/'))
    else:
      flat[path] = tree[k]
  return flat


def unflatten(flat: dict[str, Any]) -> dict:
  """The inverse of `flatten`."""
  tree = {}
  for path, leaf in flat.items():
    *parents, last = path.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = leaf
  return tree


def init(cfg: DecoderConfig, key: jax.Array) -> dict:
  """GPT-2-style random params for `cfg` (float32).

  Kernels and embeddings are N(0, 0.02^2), except the projections into the
  residual stream (`attn/out`, `mlp/proj`, `mlp/down`), which are
  N(0, (0.02 / sqrt(2 * num_layers))^2); biases are zero, norm scales one.
  Leaf i of the sorted paths draws from `fold_in(key, i)`.
  """
  flat = flatten(param_shapes(cfg))
  residual_std = INIT_STD / math.sqrt(2 * cfg.num_layers)
  params = {}
  for i, (path, shape) in enumerate(flat.items()):
    leaf = path.rsplit('/', 1)[-1]
    if leaf == 'scale':
      params[path] = jnp.ones(shape, jnp.float32)
    elif leaf == 'bias':
      params[path] = jnp.zeros(shape, jnp.float32)
    else:
      residual = path.endswith(tuple(f'{k}/kernel' for k in RESIDUAL_KERNELS))
      std = residual_std if residual else INIT_STD
      params[path] = std * jax.random.normal(
          jax.random.fold_in(key, i), shape, jnp.float32)
  return unflatten(params)


def _last_axis(v: jax.Array, ndim: int) -> jax.Array:
  """A 1-D `v` reshaped to broadcast along the last axis of rank `ndim`."""
  return v.reshape((1,) * (ndim - 1) + (-1,))


def _linear(p: dict, x: jax.Array) -> jax.Array:
  """`x @ kernel (+ bias)` over the last axis of `x`."""
  y = x @ p['kernel']
  if 'bias' in p:
    y = y + _last_axis(p['bias'], y.ndim)
  return y


def _norm(cfg: DecoderConfig, p: dict, x: jax.Array) -> jax.Array:
  """LayerNorm (gpt2) or RMSNorm (llama) over the last axis, in float32."""
  x32 = x.astype(jnp.float32)
  if cfg.style == 'gpt2':
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    centred = x32 - mean
    var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
    y = centred * jax.lax.rsqrt(var + cfg.norm_eps)
    y = y * _last_axis(p['scale'], y.ndim) + _last_axis(p['bias'], y.ndim)
  else:
    ms = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(ms + cfg.norm_eps)
    y = y * _last_axis(p['scale'], y.ndim)
  return y.astype(x.dtype)


def _rope(cfg: DecoderConfig, x_BxTxNxK: jax.Array) -> jax.Array:
  """Rotary positions 0..T-1 in HF's `rotate_half` layout.

  Dimension i of a head pairs with dimension i + K/2, both rotated by angle
  `t * theta^(-2i/K)`.
  """
  t, k = x_BxTxNxK.shape[1], x_BxTxNxK.shape[3]
  inv_freq = 1.0 / (cfg.rope_theta ** (
      np.arange(0, k, 2, dtype=np.float32) / np.float32(k)))
  angles = np.arange(t, dtype=np.float32)[:, None] * inv_freq[None, :]
  angles = np.concatenate([angles, angles], axis=-1)  # (T, K)
  cos = jnp.asarray(np.cos(angles)).reshape(1, t, 1, k)
  sin = jnp.asarray(np.sin(angles)).reshape(1, t, 1, k)
  x = x_BxTxNxK.astype(jnp.float32)
  first, second = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([-second, first], axis=-1)
  return (x * cos + rotated * sin).astype(x_BxTxNxK.dtype)


def _attention(
    cfg: DecoderConfig, p: dict, x_BxTxD: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Causal (grouped-query) self-attention.

  Returns:
    The output `(B, T, D)` and the heads' concatenated values `(B, T, H*Dh)`
    that `out/kernel` multiplies.
  """
  b, t, _ = x_BxTxD.shape
  h, kv, dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  q = _linear(p['query'], x_BxTxD).reshape(b, t, h, dh)
  k = _linear(p['key'], x_BxTxD).reshape(b, t, kv, dh)
  v = _linear(p['value'], x_BxTxD).reshape(b, t, kv, dh)
  if cfg.style == 'llama':
    q, k = _rope(cfg, q), _rope(cfg, k)
  # Query head n uses key/value head n // (H / KV), as HF's repeat_kv.
  q = q.reshape(b, t, kv, h // kv, dh)
  scores = jnp.einsum('btkgd,bskd->bkgts', q, k,
                      preferred_element_type=jnp.float32)
  scores = scores.astype(jnp.float32) / np.float32(math.sqrt(dh))
  causal = np.tril(np.ones((t, t), dtype=bool)).reshape(1, 1, 1, t, t)
  scores = jnp.where(causal, scores, -jnp.inf)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  heads = jnp.einsum('bkgts,bskd->btkgd', probs, v).reshape(b, t, h * dh)
  return _linear(p['out'], heads), heads


def _mlp(
    cfg: DecoderConfig, p: dict, x_BxTxD: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The MLP and the inputs of its kernels ({'fc': ..., 'proj': ...} etc.)."""
  if cfg.style == 'gpt2':
    hidden = jax.nn.gelu(_linear(p['fc'], x_BxTxD), approximate=True)
    return _linear(p['proj'], hidden), {'fc': x_BxTxD, 'proj': hidden}
  hidden = jax.nn.silu(_linear(p['gate'], x_BxTxD)) * _linear(p['up'], x_BxTxD)
  return _linear(p['down'], hidden), {
      'gate': x_BxTxD, 'up': x_BxTxD, 'down': hidden}


def _check_tokens(cfg: DecoderConfig, tokens: jax.Array) -> None:
  """ValueError unless `tokens` is an integer (B, T) array, T <= context."""
  if tokens.ndim != 2:
    raise ValueError(
        f'tokens must have shape (batch, time), got shape {tokens.shape}.')
  if not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f'tokens must be integers, got dtype {tokens.dtype}.')
  if tokens.shape[1] > cfg.context:
    raise ValueError(
        f'sequence length {tokens.shape[1]} exceeds the context '
        f'({cfg.context}).')


def embed(cfg: DecoderConfig, params: dict, tokens_BxT: jax.Array
          ) -> jax.Array:
  """Token (plus, for gpt2, learned position) embeddings, (B, T, D)."""
  _check_tokens(cfg, tokens_BxT)
  h = jnp.take(params['embed']['embedding'], tokens_BxT, axis=0)
  if cfg.style == 'gpt2':
    t = tokens_BxT.shape[1]
    h = h + params['pos']['embedding'][None, :t, :]
  return h


def block_with_inputs(
    cfg: DecoderConfig, block_params: dict, h_BxTxD: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """One pre-norm block, and the activation each of its kernels multiplies.

  Returns:
    `(h, inputs)`: the block's output (B, T, D), and `inputs` mapping each
    kernel's path in the block (`BLOCK_KERNELS[cfg.style]`, e.g.
    'attn/query', 'mlp/fc') to its input (B, T, in).
  """
  x = _norm(cfg, block_params['ln_1'], h_BxTxD)
  attn, heads = _attention(cfg, block_params['attn'], x)
  h = h_BxTxD + attn
  inputs = {'attn/query': x, 'attn/key': x, 'attn/value': x,
            'attn/out': heads}
  x = _norm(cfg, block_params['ln_2'], h)
  mlp, mlp_inputs = _mlp(cfg, block_params['mlp'], x)
  inputs.update({f'mlp/{k}': v for k, v in mlp_inputs.items()})
  return h + mlp, inputs


def block(cfg: DecoderConfig, block_params: dict, h_BxTxD: jax.Array
          ) -> jax.Array:
  """One pre-norm block: `h + attn(norm(h))`, then `h + mlp(norm(h))`."""
  return block_with_inputs(cfg, block_params, h_BxTxD)[0]


def head(cfg: DecoderConfig, params: dict, h_BxTxD: jax.Array) -> jax.Array:
  """Final norm and the vocabulary projection: float32 logits (B, T, V)."""
  x = _norm(cfg, params['ln_f'], h_BxTxD)
  if cfg.tie_embeddings:
    logits = x @ params['embed']['embedding'].T
  else:
    logits = x @ params['lm_head']['kernel']
  return logits.astype(jnp.float32)


def apply(cfg: DecoderConfig, params: dict, tokens_BxT: jax.Array
          ) -> jax.Array:
  """Next-token logits (B, T, V) for int tokens (B, T)."""
  h = embed(cfg, params, tokens_BxT)
  for i in range(cfg.num_layers):
    h = block(cfg, params[block_name(i)], h)
  return head(cfg, params, h)


def as_model(cfg: DecoderConfig, name: str) -> types.Model:
  """The framework's `Model` pair for `cfg`.

  `init(key)` returns `(params, {})`; `apply(params, state, x, *, train,
  key=None)` returns `(logits (B, T, V), state)`, where `x` holds the
  tokens (B, T), cast to int32 when it is a float array.
  """
  cfg.validate()

  def init_fn(key: jax.Array) -> tuple[dict, dict]:
    return init(cfg, key), {}

  def apply_fn(params, state, x, *, train, key=None):
    del train, key  # no dropout
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
      x = x.astype(jnp.int32)
    return apply(cfg, params, x), state

  return types.Model(init=init_fn, apply=apply_fn, name=name)


def _d_ff(d_ff: Any, d_model: int) -> int:
  """`d_ff`, with 0 meaning 4 * d_model."""
  if isinstance(d_ff, int) and not isinstance(d_ff, bool) and d_ff == 0:
    return 4 * d_model
  return _positive_int('d_ff (0 for 4 * d_model)', d_ff)


def gpt_config(
    num_classes: int,
    context: int = 128,
    d_model: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    d_ff: int = 0,
    tie_embeddings: bool = True,
) -> DecoderConfig:
  """The `DecoderConfig` of a GPT-2-style decoder LM (model 'gpt').

  Args:
    num_classes: the vocabulary size (the framework's class count).
    context: the most tokens per sequence (rows of the position table).
    d_model: residual width; a multiple of `num_heads`.
    num_layers: number of blocks.
    num_heads: attention heads.
    d_ff: MLP hidden width; 0 means 4 * d_model.
    tie_embeddings: logits through the transposed token embedding.

  Raises:
    ValueError: an invalid hyperparameter, named.
  """
  d_model = _positive_int('d_model', d_model)
  cfg = DecoderConfig(
      vocab_size=_positive_int('num_classes (the vocabulary size)',
                               num_classes),
      context=context, d_model=d_model, num_layers=num_layers,
      num_heads=num_heads, num_kv_heads=num_heads,
      d_ff=_d_ff(d_ff, d_model), style='gpt2',
      tie_embeddings=tie_embeddings)
  return cfg.validate()


def llama_config(
    num_classes: int,
    context: int = 128,
    d_model: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    d_ff: int = 0,
    rope_theta: float = 1e4,
    norm_eps: float = 1e-5,
    tie_embeddings: bool = True,
) -> DecoderConfig:
  """The `DecoderConfig` of a Llama-style decoder LM (RMSNorm, RoPE,
  SwiGLU, GQA; model 'llama').

  Args:
    num_classes: the vocabulary size (the framework's class count).
    context: the most tokens per sequence.
    d_model: residual width; a multiple of `num_heads` with an even quotient.
    num_layers: number of blocks.
    num_heads: query heads.
    num_kv_heads: key/value heads; must divide `num_heads`.
    d_ff: SwiGLU hidden width; 0 means 4 * d_model.
    rope_theta: RoPE base frequency.
    norm_eps: RMSNorm epsilon.
    tie_embeddings: logits through the transposed token embedding.

  Raises:
    ValueError: an invalid hyperparameter, named.
  """
  d_model = _positive_int('d_model', d_model)
  cfg = DecoderConfig(
      vocab_size=_positive_int('num_classes (the vocabulary size)',
                               num_classes),
      context=context, d_model=d_model, num_layers=num_layers,
      num_heads=num_heads, num_kv_heads=num_kv_heads,
      d_ff=_d_ff(d_ff, d_model), style='llama', norm_eps=norm_eps,
      rope_theta=rope_theta, tie_embeddings=tie_embeddings)
  return cfg.validate()


def _model_of(config_fn, name: str):
  """The zoo's constructor of `config_fn`'s decoder, named `name`, with
  `config_fn`'s signature (the registry lists its keywords)."""
  def build(num_classes: int, **kwargs) -> types.Model:
    return as_model(config_fn(num_classes, **kwargs), name)
  build.__name__ = build.__qualname__ = name
  build.__doc__ = (f"A {'GPT-2' if name == 'gpt' else 'Llama'}-style decoder "
                   f"LM, named {name!r}; the arguments are "
                   f'`{config_fn.__name__}`\'s.')
  build.__signature__ = inspect.signature(config_fn).replace(
      return_annotation=types.Model)
  return build


gpt = _model_of(gpt_config, 'gpt')
llama = _model_of(llama_config, 'llama')
