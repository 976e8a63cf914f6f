"""Tests for the decoder-only LM (`ticketjax.models.transformer`).

Names and shapes of the params, the init, causal masking, grouped-query
attention against plain multi-head attention, the activations
`block_with_inputs` reports, jit/vmap, and the registry constructors. The
agreement with an independent numpy forward is in `lm_loaders_test.py`.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax import models
from ticketjax.models import transformer as tf

GPT = tf.DecoderConfig(vocab_size=37, context=12, d_model=16, num_layers=2,
                       num_heads=4, num_kv_heads=4, d_ff=24, style='gpt2')
LLAMA = tf.DecoderConfig(vocab_size=37, context=12, d_model=16, num_layers=2,
                         num_heads=4, num_kv_heads=2, d_ff=24, style='llama',
                         rope_theta=100.0)
# One compiled forward per config (eager dispatch is the slow part here).
APPLY = jax.jit(tf.apply, static_argnums=0)


def _tokens(cfg, batch=2, length=9, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, cfg.vocab_size, (batch, length)),
                     jnp.int32)


def _random_params(cfg, seed=0):
  """Params with every leaf random (non-trivial norms and biases too)."""
  flat = tf.flatten(tf.param_shapes(cfg))
  rng = np.random.default_rng(seed)
  out = {}
  for path, shape in flat.items():
    base = 1.0 if path.endswith('scale') else 0.0
    out[path] = jnp.asarray(base + 0.3 * rng.standard_normal(shape),
                            jnp.float32)
  return tf.unflatten(out)


# ------------------------------------------------------------------ config


@pytest.mark.parametrize('changes, pattern', [
    ({'vocab_size': 0}, 'vocab_size must be a positive int'),
    ({'d_model': 18}, r'd_model \(18\) must be a multiple of num_heads'),
    ({'num_kv_heads': 3}, r'num_kv_heads \(3\) must divide num_heads'),
    ({'num_kv_heads': 2}, 'gpt2.*must equal num_heads'),
    ({'style': 'bert'}, "style must be one of gpt2, llama, got 'bert'"),
    ({'norm_eps': 0.0}, 'norm_eps must be a positive number'),
    ({'tie_embeddings': 1}, 'tie_embeddings must be a bool'),
    ({'style': 'llama', 'd_model': 12, 'num_heads': 4}, 'even head size'),
])
def test_validate_names_the_problem(changes, pattern):
  fields = dict(GPT.__dict__) | changes
  with pytest.raises(ValueError, match=pattern):
    tf.DecoderConfig(**fields).validate()


# ------------------------------------------------------------------ params


def test_gpt2_param_names_and_shapes():
  cfg = tf.DecoderConfig(vocab_size=11, context=7, d_model=8, num_layers=1,
                         num_heads=2, num_kv_heads=2, d_ff=20)
  got = {k: v.shape for k, v in tf.flatten(tf.init(cfg, jax.random.key(0)))
         .items()}
  block = {'ln_1/scale': (8,), 'ln_1/bias': (8,), 'ln_2/scale': (8,),
           'ln_2/bias': (8,)}
  for name, shape in [('attn/query', (8, 8)), ('attn/key', (8, 8)),
                      ('attn/value', (8, 8)), ('attn/out', (8, 8)),
                      ('mlp/fc', (8, 20)), ('mlp/proj', (20, 8))]:
    block[f'{name}/kernel'] = shape
    block[f'{name}/bias'] = (shape[1],)
  want = {'embed/embedding': (11, 8), 'pos/embedding': (7, 8),
          'ln_f/scale': (8,), 'ln_f/bias': (8,)}
  want |= {f'block_00/{k}': v for k, v in block.items()}
  assert got == want


def test_llama_param_names_and_shapes_untied():
  cfg = tf.DecoderConfig(vocab_size=11, context=7, d_model=8, num_layers=1,
                         num_heads=4, num_kv_heads=2, d_ff=20, style='llama',
                         tie_embeddings=False)
  got = {k: v.shape for k, v in tf.flatten(tf.init(cfg, jax.random.key(0)))
         .items()}
  want = {
      'embed/embedding': (11, 8), 'ln_f/scale': (8,),
      'lm_head/kernel': (8, 11), 'block_00/ln_1/scale': (8,),
      'block_00/ln_2/scale': (8,),
      'block_00/attn/query/kernel': (8, 8),
      'block_00/attn/key/kernel': (8, 4),
      'block_00/attn/value/kernel': (8, 4),
      'block_00/attn/out/kernel': (8, 8),
      'block_00/mlp/gate/kernel': (8, 20), 'block_00/mlp/up/kernel': (8, 20),
      'block_00/mlp/down/kernel': (20, 8),
  }
  assert got == want


def test_block_names_sort_in_model_order():
  cfg = tf.DecoderConfig(vocab_size=5, context=4, d_model=4, num_layers=11,
                         num_heads=1, num_kv_heads=1, d_ff=4)
  names = [k for k in tf.param_shapes(cfg) if k.startswith('block_')]
  assert sorted(names) == [f'block_{i:02d}' for i in range(11)]


def test_init_follows_gpt2():
  cfg = tf.DecoderConfig(vocab_size=300, context=16, d_model=64,
                         num_layers=8, num_heads=4, num_kv_heads=4, d_ff=256)
  flat = tf.flatten(tf.init(cfg, jax.random.key(1)))
  for path, value in flat.items():
    value = np.asarray(value)
    assert value.dtype == np.float32, path
    if path.endswith('bias'):
      assert not value.any(), path
    elif path.endswith('scale'):
      assert (value == 1).all(), path
    else:
      residual = path.endswith(('attn/out/kernel', 'mlp/proj/kernel'))
      want = 0.02 / 4 if residual else 0.02  # sqrt(2 * 8) = 4
      assert abs(value.std() / want - 1) < 0.1, (path, value.std())
      assert abs(value.mean()) < 0.1 * want, path
  # Leaves draw different numbers; another key gives other params.
  assert not np.allclose(flat['block_00/attn/query/kernel'],
                         flat['block_00/attn/key/kernel'])
  other = tf.flatten(tf.init(cfg, jax.random.key(2)))
  assert not np.allclose(flat['embed/embedding'], other['embed/embedding'])


# ----------------------------------------------------------------- forward


@pytest.mark.parametrize('cfg', [GPT, LLAMA], ids=['gpt2', 'llama'])
def test_causal_earlier_logits_ignore_later_tokens(cfg):
  params = _random_params(cfg)
  tokens = _tokens(cfg, batch=1, length=10)
  changed = tokens.at[0, 6].set((tokens[0, 6] + 1) % cfg.vocab_size)
  a = APPLY(cfg, params, tokens)
  b = APPLY(cfg, params, changed)
  assert a.shape == (1, 10, cfg.vocab_size) and a.dtype == jnp.float32
  np.testing.assert_array_equal(a[:, :6], b[:, :6])
  assert np.abs(np.asarray(a[:, 6:] - b[:, 6:])).min(axis=-1).max() > 0


def test_pieces_compose_to_apply():
  for cfg in (GPT, LLAMA):
    params = _random_params(cfg)
    tokens = _tokens(cfg)
    block = jax.jit(tf.block, static_argnums=0)  # compiled once, 2 blocks
    h = tf.embed(cfg, params, tokens)
    for i in range(cfg.num_layers):
      h = block(cfg, params[tf.block_name(i)], h)
    np.testing.assert_allclose(tf.head(cfg, params, h),
                               APPLY(cfg, params, tokens), rtol=1e-5,
                               atol=1e-5)


def test_grouped_query_attention_equals_repeated_heads():
  # KV head j serves query heads 2j, 2j+1 (HF's repeat_kv): an MHA model
  # whose key/value kernels repeat each KV head twice gives the same logits.
  params = _random_params(LLAMA)
  mha = tf.DecoderConfig(**(dict(LLAMA.__dict__) | {'num_kv_heads': 4}))
  dh = LLAMA.head_dim
  repeated = jax.tree.map(lambda x: x, params)
  for i in range(LLAMA.num_layers):
    attn = repeated[tf.block_name(i)]['attn']
    for part in ('key', 'value'):
      k = attn[part]['kernel'].reshape(LLAMA.d_model, 2, 1, dh)
      attn[part]['kernel'] = jnp.broadcast_to(
          k, (LLAMA.d_model, 2, 2, dh)).reshape(LLAMA.d_model, 4 * dh)
  tokens = _tokens(LLAMA)
  np.testing.assert_allclose(APPLY(LLAMA, params, tokens),
                             APPLY(mha, repeated, tokens),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('cfg', [GPT, LLAMA], ids=['gpt2', 'llama'])
def test_block_inputs_are_what_each_kernel_multiplies(cfg):
  # Zeroing a kernel removes exactly `inputs[path] @ kernel` from the output
  # of the projections that feed the residual stream; for every kernel the
  # input has shape (B, T, in).
  bp = _random_params(cfg)['block_00']
  h = jax.random.normal(jax.random.key(3), (2, 5, cfg.d_model))
  out, inputs = tf.block_with_inputs(cfg, bp, h)
  assert sorted(inputs) == sorted(tf.BLOCK_KERNELS[cfg.style])
  for path, x in inputs.items():
    layer, name = path.split('/')
    kernel = bp[layer][name]['kernel']
    assert x.shape == (2, 5, kernel.shape[0]), path
  residual = [p for p in inputs if p in tf.RESIDUAL_KERNELS]
  assert len(residual) == 2
  for path in residual:
    layer, name = path.split('/')
    zeroed = jax.tree.map(lambda x: x, bp)
    kernel = zeroed[layer][name]['kernel']
    zeroed[layer][name]['kernel'] = jnp.zeros_like(kernel)
    if path == 'attn/out':  # the MLP sees the changed stream: stop there
      zeroed['mlp'] = jax.tree.map(jnp.zeros_like, zeroed['mlp'])
      full = tf.block(cfg, dict(bp, mlp=zeroed['mlp']), h)
    else:
      full = out
    cut = tf.block(cfg, zeroed, h)
    np.testing.assert_allclose(full - cut, inputs[path] @ kernel,
                               rtol=1e-4, atol=1e-5)
  # The query/key/value input is the block's normalised input.
  x = np.asarray(inputs['attn/query'])
  if cfg.style == 'llama':
    np.testing.assert_allclose(
        np.sqrt(np.mean((x / np.asarray(bp['ln_1']['scale'])) ** 2, -1)),
        1.0, rtol=1e-4)


def test_context_is_enforced():
  params = _random_params(GPT)
  with pytest.raises(ValueError, match=r'sequence length 13 exceeds the '
                     r'context \(12\)'):
    APPLY(GPT, params, _tokens(GPT, length=13))
  with pytest.raises(ValueError, match='shape \\(batch, time\\)'):
    APPLY(GPT, params, jnp.zeros((4,), jnp.int32))


def test_jit_and_vmap_over_members():
  # The framework vmaps init and apply over a member axis of seeds.
  for cfg in (GPT, LLAMA):
    model = tf.as_model(cfg, 'lm')
    keys = jax.random.split(jax.random.key(0), 2)
    params, state = jax.jit(jax.vmap(model.init))(keys)
    assert state == {}
    tokens = _tokens(cfg).astype(jnp.float32)  # data sets hold floats
    run = jax.jit(jax.vmap(
        lambda p: model.apply(p, {}, tokens, train=True)[0]))
    logits = run(params)
    assert logits.shape == (2, 2, 9, cfg.vocab_size)
    for m in range(2):
      one = jax.tree.map(lambda x, m=m: x[m], params)
      np.testing.assert_allclose(
          logits[m], APPLY(cfg, one, tokens.astype(jnp.int32)),
          rtol=1e-5, atol=1e-6)
    assert not np.allclose(logits[0], logits[1])


def test_gradients_are_finite_and_reach_every_leaf():
  for cfg in (GPT, LLAMA):
    params = _random_params(cfg)
    tokens = _tokens(cfg)

    def loss(p, tokens=tokens, cfg=cfg):
      logp = jax.nn.log_softmax(tf.apply(cfg, p, tokens)[:, :-1], axis=-1)
      return -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1).mean()

    grads = tf.flatten(jax.jit(jax.grad(loss))(params))
    for path, g in grads.items():
      assert np.isfinite(g).all() and np.abs(g).max() > 0, path


# ---------------------------------------------------------------- registry


def test_registry_constructors():
  model = models.get_model('gpt', num_classes=50, context=16, d_model=32,
                           num_layers=2, num_heads=4)
  params, _ = jax.jit(model.init)(jax.random.key(0))
  assert model.name == 'gpt'
  assert params['block_01']['mlp']['fc']['kernel'].shape == (32, 128)
  assert params['pos']['embedding'].shape == (16, 32)
  logits, _ = jax.jit(functools.partial(model.apply, train=False))(
      params, {}, jnp.zeros((3, 16)))
  assert logits.shape == (3, 16, 50)

  model = models.get_model('llama', num_classes=50, d_model=32, num_heads=4,
                           num_kv_heads=1, d_ff=48, tie_embeddings=False)
  params, _ = jax.eval_shape(model.init, jax.random.key(0))
  assert model.name == 'llama'
  assert params['block_03']['attn']['key']['kernel'].shape == (32, 8)
  assert params['block_00']['mlp']['down']['kernel'].shape == (48, 32)
  assert params['lm_head']['kernel'].shape == (32, 50)


@pytest.mark.parametrize('name, kwargs, pattern', [
    ('gpt', {'num_classes': 0}, r'num_classes \(the vocabulary size\)'),
    ('gpt', {'num_classes': 10, 'd_model': 30}, 'multiple of num_heads'),
    ('gpt', {'num_classes': 10, 'd_ff': -1}, r'd_ff \(0 for 4 \* d_model\)'),
    ('gpt', {'num_classes': 10, 'num_kv_heads': 2}, 'num_kv_heads'),
    ('llama', {'num_classes': 10, 'num_kv_heads': 3}, 'must divide'),
    ('llama', {'num_classes': 10, 'rope_theta': -1.0}, 'rope_theta'),
    ('llama', {'num_classes': 10, 'context': 1.5}, 'context'),
])
def test_constructor_errors(name, kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    models.get_model(name, **kwargs)
