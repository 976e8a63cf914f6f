"""Reference decoder LM forwards in plain numpy, for checking the JAX model.

Written apart from `ticketjax/models/transformer.py` and over the raw tensors
as checkpoints store them, one sequence at a time, one head at a time:

* `gpt2_logits`: HF GPT-2 names (`wte.weight`, `h.0.attn.c_attn.weight`,
  ...), Conv1D weights (in, out) used as `x @ W + b`, fused QKV.
* `llama_logits`: GGUF names (`token_embd.weight`, `blk.0.attn_q.weight`,
  ...), weights (out, in) used as `x @ W.T`, and the Q/K rows in llama.cpp's
  permuted order, so RoPE rotates adjacent pairs (2i, 2i+1).
"""
import numpy as np


def _layer_norm(x, gamma, beta, eps):
  mu = x.mean(axis=-1, keepdims=True)
  var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _rms_norm(x, gamma, eps):
  return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * gamma


def _softmax(s):
  e = np.exp(s - s.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _causal_attend(q, k, v):
  """One head: q, k, v are (T, Dh)."""
  n = q.shape[0]
  s = q @ k.T / np.sqrt(q.shape[1])
  s[np.triu_indices(n, 1)] = -np.inf
  return _softmax(s) @ v


def _gelu_tanh(x):
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _rope_pairs(x, theta):
  """Rotates pairs (2i, 2i+1) of every head of x (T, heads, Dh)."""
  n, _, dh = x.shape
  freq = theta ** (-np.arange(0, dh, 2) / dh)
  ang = np.arange(n)[:, None, None] * freq[None, None, :]
  c, s = np.cos(ang).astype(x.dtype), np.sin(ang).astype(x.dtype)
  even, odd = x[..., 0::2], x[..., 1::2]
  out = np.empty_like(x)
  out[..., 0::2] = even * c - odd * s
  out[..., 1::2] = even * s + odd * c
  return out


def _num_blocks(w, fmt):
  i = 0
  while fmt.format(i) in w:
    i += 1
  return i


def gpt2_logits(w, tokens, n_head, eps=1e-5, dtype=np.float64):
  """GPT-2 logits (T, V) for one token sequence.

  Args:
    w: HF GPT-2 tensors without the `transformer.` prefix.
    tokens: 1-D int sequence.
    n_head: attention heads.
    eps: LayerNorm epsilon.
    dtype: the float type of the computation.
  """
  w = {k: np.asarray(v, dtype) for k, v in w.items()}
  tokens = np.asarray(tokens)
  x = w['wte.weight'][tokens] + w['wpe.weight'][:len(tokens)]
  for i in range(_num_blocks(w, 'h.{}.ln_1.weight')):
    p = f'h.{i}.'
    a = _layer_norm(x, w[p + 'ln_1.weight'], w[p + 'ln_1.bias'], eps)
    qkv = a @ w[p + 'attn.c_attn.weight'] + w[p + 'attn.c_attn.bias']
    q, k, v = np.split(qkv, 3, axis=-1)
    heads = [_causal_attend(*hs) for hs in zip(
        np.split(q, n_head, axis=-1), np.split(k, n_head, axis=-1),
        np.split(v, n_head, axis=-1))]
    x = x + (np.concatenate(heads, axis=-1) @ w[p + 'attn.c_proj.weight']
             + w[p + 'attn.c_proj.bias'])
    m = _layer_norm(x, w[p + 'ln_2.weight'], w[p + 'ln_2.bias'], eps)
    m = _gelu_tanh(m @ w[p + 'mlp.c_fc.weight'] + w[p + 'mlp.c_fc.bias'])
    x = x + m @ w[p + 'mlp.c_proj.weight'] + w[p + 'mlp.c_proj.bias']
  x = _layer_norm(x, w['ln_f.weight'], w['ln_f.bias'], eps)
  return x @ w.get('lm_head.weight', w['wte.weight']).T


def llama_logits(w, tokens, n_head, n_head_kv, eps, theta, dtype=np.float64):
  """Llama logits (T, V) for one token sequence, from GGUF-layout tensors.

  Args:
    w: GGUF tensor names to float arrays in GGUF's (out, in) layout, Q and K
      rows permuted as llama.cpp's converter writes them.
    tokens: 1-D int sequence.
    n_head: query heads.
    n_head_kv: key/value heads (a divisor of n_head).
    eps: RMSNorm epsilon.
    theta: RoPE base.
    dtype: the float type of the computation.
  """
  w = {k: np.asarray(v, dtype) for k, v in w.items()}
  tokens = np.asarray(tokens)
  x = w['token_embd.weight'][tokens]
  n = len(tokens)
  dh = x.shape[1] // n_head
  group = n_head // n_head_kv
  for i in range(_num_blocks(w, 'blk.{}.attn_norm.weight')):
    p = f'blk.{i}.'
    a = _rms_norm(x, w[p + 'attn_norm.weight'], eps)
    q = _rope_pairs((a @ w[p + 'attn_q.weight'].T).reshape(n, n_head, dh),
                    theta)
    k = _rope_pairs((a @ w[p + 'attn_k.weight'].T).reshape(n, n_head_kv, dh),
                    theta)
    v = (a @ w[p + 'attn_v.weight'].T).reshape(n, n_head_kv, dh)
    heads = [_causal_attend(q[:, j], k[:, j // group], v[:, j // group])
             for j in range(n_head)]
    x = x + np.concatenate(heads, axis=-1) @ w[p + 'attn_output.weight'].T
    m = _rms_norm(x, w[p + 'ffn_norm.weight'], eps)
    g = m @ w[p + 'ffn_gate.weight'].T
    u = m @ w[p + 'ffn_up.weight'].T
    x = x + (g / (1 + np.exp(-g)) * u) @ w[p + 'ffn_down.weight'].T
  x = _rms_norm(x, w['output_norm.weight'], eps)
  return x @ w.get('output.weight', w['token_embd.weight']).T
