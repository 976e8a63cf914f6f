"""Tests for the model zoo (`ticketjax.models`) and its NNX adapter.

Every registered model is initialised for two seeds under `jax.jit(jax.vmap)`
and run forward the same way; exact parameter counts pin the architectures;
naming tests pin the conventions the pruning code relies on; BatchNorm,
error messages and agreement with the raw NNX modules (in both NNX graph and
tree mode) are checked once each. Batches are tiny and XLA optimisations are
off while this module runs, to keep it fast on a 2-core CPU.
"""
import functools
import math

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax import models
from ticketjax.core import types
from ticketjax.models import adapter
from ticketjax.models import convnets
from ticketjax.models import mlp as mlp_lib
from ticketjax.models import resnet

NUM_SEEDS = 2
BATCH = 2

# One example's shape for every registered model (no batch axis).
INPUT_SHAPES = {
    'mlp': (28, 28, 1),
    'lenet_300_100': (784,),
    'mnist1d_mlp': (40,),
    'mnist1d_cnn': (40,),
    'conv2': (32, 32, 3),
    'conv4': (32, 32, 3),
    'conv6': (32, 32, 3),
    'resnet20': (32, 32, 3),
}
BATCHNORM_MODELS = ('resnet20',)
# Language models over int tokens, tested in transformer_test.py.
TOKEN_MODELS = ('gpt', 'llama', 'pretrained')

# Trainable parameters (weights + biases + BatchNorm scale/bias), default
# hyperparameters, computed by hand:
#   LeNet  784*300+300 + 300*100+100 + 100*10+10
#   MNIST-1D MLP  40*100+100 + 100*100+100 + 100*10+10
#   MNIST-1D CNN  (5*1*25+25) + 2*(3*25*25+25) + (125*10+10)
#   Conv-N  convs + (flattened*256+256) + (256*256+256) + (256*10+10), with
#     convs = 38,720 / 260,160 / 1,145,408 and flattened = 16*16*64 / 8*8*128 /
#     4*4*256. F&C's Figure 2 says 4.3M / 2.4M / 1.7M; the last is off, the
#     architecture as described has 2.26M (its conv part, 1.1M, does match).
#   ResNet-20  conv kernels 270,256 (F&C's 270K) + BN scale/bias 1,568 +
#     output 650.
PARAM_COUNTS = {
    'mlp': 266_610,
    'lenet_300_100': 266_610,
    'mnist1d_mlp': 15_210,
    'mnist1d_cnn': 5_210,
    'conv2': 4_301_642,
    'conv4': 2_425_930,
    'conv6': 2_262_602,
    'resnet20': 272_474,
}
# Weights only (leaves named `kernel`), for comparison with F&C's "conv" column.
CONV_WEIGHT_COUNTS = {
    'conv2': 38_592,
    'conv4': 259_776,
    'conv6': 1_144_512,
    'resnet20': 270_256,
}


@pytest.fixture(scope='module', autouse=True)
def _fast_compiles():
  previous = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', previous)


def _paths(tree) -> dict[str, jax.Array]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {
      jax.tree_util.keystr(p, simple=True, separator='/'): v for p, v in flat
  }


def _count(tree) -> int:
  return sum(math.prod(v.shape) for v in jax.tree.leaves(tree))


def _batch(name: str, seed: int = 0) -> jax.Array:
  return jax.random.normal(
      jax.random.key(seed), (BATCH,) + INPUT_SHAPES[name], jnp.float32
  )


def _apply_fn(model: types.Model, train: bool):
  """jit(vmap(apply)) over the seed axis of params/state; x is shared."""
  return jax.jit(
      jax.vmap(
          functools.partial(model.apply, train=train), in_axes=(0, 0, None)
      )
  )


_CACHE = {}


def _built(name: str):
  """(model, params, state, logits, new_state) for 2 seeds, cached."""
  if name not in _CACHE:
    model = models.get_model(name)
    keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
    params, state = jax.jit(jax.vmap(model.init))(keys)
    logits, new_state = _apply_fn(model, train=True)(
        params, state, _batch(name)
    )
    _CACHE[name] = (model, params, state, logits, new_state)
  return _CACHE[name]


_EVAL_FNS = {}


def _evaluate(name: str):
  """jit(vmap(apply)) with train=False for model `name`, compiled once."""
  if name not in _EVAL_FNS:
    _EVAL_FNS[name] = _apply_fn(_built(name)[0], train=False)
  return _EVAL_FNS[name]


_ABSTRACT = {}


def _abstract(name: str):
  """(params, state) of ShapeDtypeStructs for the default model, cached."""
  if name not in _ABSTRACT:
    model = models.get_model(name)
    _ABSTRACT[name] = jax.eval_shape(model.init, jax.random.key(0))
  return _ABSTRACT[name]


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(
        np.asarray(x), np.asarray(y), rtol=rtol, atol=atol
    )


# ---------------------------------------------------------------- registry


def test_registry_holds_every_model():
  assert sorted(models.MODELS) == sorted([*INPUT_SHAPES, *TOKEN_MODELS])
  for name, fn in models.MODELS.items():
    assert callable(fn), name


def test_unknown_model_lists_known_names():
  with pytest.raises(ValueError) as e:
    models.get_model('resnet1000')
  message = str(e.value)
  assert 'resnet1000' in message
  assert ', '.join(sorted(models.MODELS)) in message


def test_unknown_keyword_is_a_value_error():
  with pytest.raises(ValueError, match=r"'lenet_300_100'.*widths"):
    models.get_model('lenet_300_100', widths=(10,))
  with pytest.raises(ValueError, match='Accepted keywords: num_classes'):
    models.get_model('lenet_300_100', hidden=3)


@pytest.mark.parametrize(
    'name, kwargs, pattern',
    [
        ('mlp', {'widths': (10, -1)}, 'width'),
        ('mlp', {'num_classes': 0}, 'num_classes'),
        ('mnist1d_cnn', {'channels': 2.5}, 'channels'),
        ('conv2', {'input_shape': (32, 32)}, 'input_shape'),
        ('conv6', {'input_shape': (4, 4, 3)}, 'too small'),
    ],
)
def test_invalid_values_are_value_errors(name, kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    models.get_model(name, **kwargs)


@pytest.mark.parametrize('name', sorted(INPUT_SHAPES))
def test_unknown_kernel_init_lists_valid_names(name):
  with pytest.raises(ValueError) as e:
    models.get_model(name, kernel_init='orthogonal')
  assert 'orthogonal' in str(e.value)
  for valid in adapter.KERNEL_INITS:
    assert valid in str(e.value)


def test_register_model():
  def tiny(num_classes=3):
    return models.MODELS['mlp'](widths=(4,), num_classes=num_classes,
                                input_shape=5)

  try:
    assert models.register_model('tiny_for_test', tiny) is tiny
    model = models.get_model('tiny_for_test', num_classes=2)
    params, _ = jax.eval_shape(model.init, jax.random.key(0))
    assert params['output']['kernel'].shape == (4, 2)
    with pytest.raises(ValueError, match='already registered'):
      models.register_model('tiny_for_test', tiny)
    models.register_model('tiny_for_test', tiny, overwrite=True)
  finally:
    models.MODELS.pop('tiny_for_test', None)


def test_public_api():
  assert models.Model is types.Model
  for name in ('MODELS', 'Model', 'from_nnx', 'get_model', 'register_model'):
    assert name in models.__all__
  # The submodules are not shadowed by same-named constructors.
  assert models.mlp is mlp_lib


# ------------------------------------------------------ every model, 2 seeds


@pytest.mark.parametrize('name', sorted(INPUT_SHAPES))
def test_init_and_apply_vmapped_over_seeds(name):
  model, params, state, logits, new_state = _built(name)
  assert model.name == name
  logits = np.asarray(logits)
  assert logits.shape == (NUM_SEEDS, BATCH, 10)
  assert np.all(np.isfinite(logits))
  for leaf in jax.tree.leaves((params, state, new_state)):
    assert leaf.shape[0] == NUM_SEEDS
    assert leaf.dtype == jnp.float32
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  if name in BATCHNORM_MODELS:
    assert state
  else:
    assert state == {} and new_state == {}
  # Different keys give different weights in every weight tensor...
  for path, leaf in _paths(params).items():
    if path.endswith('kernel'):
      leaf = np.asarray(leaf)
      assert not np.array_equal(leaf[0], leaf[1]), path
  # ... and different logits.
  assert not np.allclose(logits[0], logits[1])


@pytest.mark.parametrize('name', sorted(PARAM_COUNTS))
def test_param_counts(name):
  params, _ = _abstract(name)
  assert _count(params) == PARAM_COUNTS[name]
  if name in CONV_WEIGHT_COUNTS:
    kernels = [v for p, v in _paths(params).items() if p.endswith('/kernel')]
    weights = _count(kernels) - math.prod(_paths(params)['output/kernel'].shape)
    fc = sum(
        math.prod(v.shape)
        for p, v in _paths(params).items()
        if p.startswith('fc_') and p.endswith('/kernel')
    )
    assert weights - fc == CONV_WEIGHT_COUNTS[name]


@pytest.mark.parametrize(
    'kwargs, count',
    [
        ({'width': 500}, 276_010),  # the MNIST-1D lottery notebook's MLP
        ({'width': 100, 'num_classes': 4}, 14_604),
    ],
)
def test_mnist1d_mlp_widths(kwargs, count):
  model = models.get_model('mnist1d_mlp', **kwargs)
  params, _ = jax.eval_shape(model.init, jax.random.key(0))
  assert _count(params) == count


def test_mlp_counts_for_other_shapes():
  model = models.get_model('mlp', widths=(), input_shape=40)  # logistic
  params, _ = jax.eval_shape(model.init, jax.random.key(0))
  assert _count(params) == 410
  model = models.get_model('mlp', widths=(64,) * 12, input_shape=8)
  params, _ = jax.eval_shape(model.init, jax.random.key(0))
  hidden = [k for k in params if k != 'output']
  assert hidden == sorted(hidden) and hidden[:2] == ['dense_00', 'dense_01']
  assert len(hidden) == 12


@pytest.mark.parametrize('name', sorted(INPUT_SHAPES))
def test_naming_conventions(name):
  params, state = _abstract(name)
  paths = _paths(params)
  assert 'output/kernel' in paths
  assert 'output/bias' in paths
  for path, leaf in paths.items():
    leaf_name = path.rsplit('/', 1)[-1]
    if leaf.ndim >= 2:
      assert leaf_name == 'kernel', path
    else:
      assert leaf_name in ('bias', 'scale'), path
    if leaf_name == 'kernel':
      assert leaf.ndim >= 2, path
  for path in _paths(state):
    assert path.rsplit('/', 1)[-1] in ('mean', 'var'), path


def test_layer_names_sort_in_model_order():
  def kernel_order(name):
    params, _ = _abstract(name)
    return [p for p in _paths(params) if p.endswith('kernel')]

  assert kernel_order('lenet_300_100') == [
      'dense_0/kernel', 'dense_1/kernel', 'output/kernel'
  ]
  assert kernel_order('conv6') == [f'conv_{i}/kernel' for i in range(6)] + [
      'fc_0/kernel', 'fc_1/kernel', 'output/kernel'
  ]
  assert kernel_order('mnist1d_cnn') == [
      'conv_0/kernel', 'conv_1/kernel', 'conv_2/kernel', 'output/kernel'
  ]
  resnet_kernels = [
      p for p in kernel_order('resnet20') if not p.startswith('output')
  ]
  assert resnet_kernels[0] == 'stage_0_stem/conv/kernel'
  assert resnet_kernels[1:4] == [
      'stage_1_block_0/conv_0/kernel',
      'stage_1_block_0/conv_1/kernel',
      'stage_1_block_1/conv_0/kernel',
  ]
  assert 'stage_2_block_0/shortcut_conv/kernel' in resnet_kernels
  assert 'stage_1_block_0/shortcut_conv/kernel' not in resnet_kernels
  assert len(resnet_kernels) == 1 + 9 * 2 + 2


# ------------------------------------------------------------- init details


def test_legacy_uint32_keys_work():
  model = models.get_model('mnist1d_mlp')
  legacy = jax.eval_shape(model.init, jax.random.PRNGKey(0))
  typed = jax.eval_shape(model.init, jax.random.key(0))
  assert jax.tree.structure(legacy) == jax.tree.structure(typed)


def test_torch_default_init_bounds():
  _, params, _, _, _ = _built('mnist1d_cnn')
  for path, leaf in _paths(params).items():
    layer = path.split('/')[0]
    kernel = params[layer]['kernel']
    fan_in = math.prod(kernel.shape[1:-1])  # seed axis first, out last
    bound = 1 / math.sqrt(fan_in)
    assert float(jnp.max(jnp.abs(leaf))) <= bound, path
    assert float(jnp.max(jnp.abs(leaf))) > 0.5 * bound, path  # not zeros


def test_glorot_init_has_zero_bias_and_glorot_std():
  _, params, _, _, _ = _built('lenet_300_100')
  for layer in ('dense_0', 'dense_1', 'output'):
    assert not bool(jnp.any(params[layer]['bias']))
  kernel = params['dense_0']['kernel']
  expected_std = math.sqrt(2 / (784 + 300))
  assert abs(float(jnp.std(kernel)) / expected_std - 1) < 0.02


def test_kaiming_init_std():
  _, params, _, _, _ = _built('resnet20')
  kernel = params['stage_3_block_1']['conv_0']['kernel']
  expected_std = math.sqrt(2 / (3 * 3 * 64))
  assert abs(float(jnp.std(kernel)) / expected_std - 1) < 0.02
  np.testing.assert_array_equal(
      np.asarray(params['stage_0_stem']['bn']['scale']), 1.0
  )


# --------------------------------------------------------------- BatchNorm


def test_batchnorm_train_updates_state_eval_keeps_it():
  model, params, state, logits_train, new_state = _built('resnet20')
  x = _batch('resnet20')
  # Fresh running stats are mean 0, var 1; training moves every one of them.
  for path, before in _paths(state).items():
    after = _paths(new_state)[path]
    assert not bool(jnp.allclose(before, after)), path
  stem_mean = new_state['stage_0_stem']['bn']['mean']
  assert not bool(jnp.allclose(stem_mean[0], stem_mean[1]))  # per seed

  evaluate = _evaluate('resnet20')
  logits_a, state_a = evaluate(params, new_state, x)
  logits_b, state_b = evaluate(params, new_state, x)
  _assert_trees_equal(state_a, new_state)
  _assert_trees_equal(state_b, new_state)
  np.testing.assert_array_equal(np.asarray(logits_a), np.asarray(logits_b))
  assert bool(jnp.all(jnp.isfinite(logits_a)))
  # Running statistics are not batch statistics.
  assert not bool(jnp.allclose(logits_a, logits_train))


def test_batchnorm_momentum():
  model, params, state, _, new_state = _built('resnet20')
  # stem output statistics over (batch, height, width), per seed, by hand.
  x = _batch('resnet20')
  kernel = params['stage_0_stem']['conv']['kernel']
  h = jax.vmap(
      lambda k: jax.lax.conv_general_dilated(
          x, k, (1, 1), ((1, 1), (1, 1)),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      )
  )(kernel)
  batch_mean = jnp.mean(h, axis=(1, 2, 3))
  expected = 0.9 * state['stage_0_stem']['bn']['mean'] + 0.1 * batch_mean
  np.testing.assert_allclose(
      np.asarray(new_state['stage_0_stem']['bn']['mean']),
      np.asarray(expected),
      rtol=1e-4,
      atol=1e-5,
  )


# ----------------------------------------------------------------- adapter


def test_apply_rejects_mismatched_params():
  model, params, state, _, _ = _built('mnist1d_mlp')
  one = jax.tree.map(lambda a: a[0], params)
  del one['dense_1']['bias']
  with pytest.raises(ValueError, match='dense_1/bias'):
    model.apply(one, state, _batch('mnist1d_mlp'), train=False)
  with pytest.raises(TypeError, match='train'):
    model.apply(
        jax.tree.map(lambda a: a[0], params), state, _batch('mnist1d_mlp'),
        train=jnp.array(True),
    )


_MODULES = {
    # name: make_module(rngs) -> the same NNX module the registry wraps.
    'mnist1d_mlp': lambda rngs: mlp_lib.MLP(
        40, (100, 100), 10, residual=True, kernel_init='torch_default',
        rngs=rngs,
    ),
    'mnist1d_cnn': lambda rngs: convnets.MNIST1DCNN(
        40, 25, 10, kernel_init='torch_default', rngs=rngs
    ),
    'resnet20': lambda rngs: resnet.CifarResNet(
        3, (16, 32, 64), 3, 10, kernel_init='kaiming_normal', rngs=rngs
    ),
}


def _run_module(module: nnx.Module, x: jax.Array):
  """Calls an NNX module directly: train step, its stats, then eval.

  NNX modules are pytrees, so plain `jax.jit` takes one as an argument; the
  BatchNorm update made by the train call is read back with `nnx.state`.
  """

  def run(module, x):
    train_logits = module(x, train=True)
    stats = nnx.to_pure_dict(nnx.state(module, nnx.Not(nnx.Param)))
    eval_logits = module(x, train=False)
    return train_logits, stats, eval_logits

  return jax.jit(run)(module, x)


@pytest.mark.parametrize('name', sorted(_MODULES))
def test_adapter_matches_the_nnx_module(name):
  _, params, state, logits, new_state = _built(name)
  first = lambda tree: jax.tree.map(lambda a: a[0], tree)
  key = jax.random.split(jax.random.key(0), NUM_SEEDS)[0]
  make = _MODULES[name]
  if name == 'resnet20':
    # Building ResNet-20 eagerly costs seconds of per-op compiles; load the
    # adapter's seed-0 variables into an abstract module instead (the
    # checkpoint-restore route of the NNX docs) and check init on the
    # smaller models.
    module = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    variables = nnx.state(module)
    nnx.replace_by_pure_dict(variables, first(params))
    nnx.replace_by_pure_dict(variables, first(state))
    nnx.update(module, variables)
  else:
    module = make(nnx.Rngs(key))
  _assert_trees_equal(
      nnx.to_pure_dict(nnx.state(module, nnx.Param)), first(params)
  )
  _assert_trees_equal(
      nnx.to_pure_dict(nnx.state(module, nnx.Not(nnx.Param))), first(state)
  )

  x = _batch(name)
  module_train, module_stats, module_eval = _run_module(module, x)
  _assert_trees_close(module_train, logits[0])
  _assert_trees_close(module_stats, first(new_state))
  adapter_eval, adapter_state = _evaluate(name)(params, new_state, x)
  _assert_trees_close(module_eval, adapter_eval[0])
  _assert_trees_equal(adapter_state, new_state)


def test_adapter_agrees_in_graph_and_tree_mode():
  """STYLE.md section 7: NNX tree mode may become the default; same results."""
  _, params, state, logits, new_state = _built('resnet20')
  with nnx.set_graph_mode(False):
    tree_model = models.get_model('resnet20')
    tree_mlp = models.get_model('mnist1d_mlp')
  # The mode is pinned at construction, so calls outside the context use it.
  tree_logits, tree_new_state = _apply_fn(tree_model, train=True)(
      params, state, _batch('resnet20')
  )
  _assert_trees_equal(tree_logits, logits)
  _assert_trees_equal(tree_new_state, new_state)

  # Also: jit(init) of one key equals that key's slice of vmap(init).
  keys = jax.random.split(jax.random.key(0), NUM_SEEDS)
  mlp_params, mlp_state = jax.jit(tree_mlp.init)(keys[1])
  _, graph_params, _, _, _ = _built('mnist1d_mlp')
  _assert_trees_equal(mlp_params, jax.tree.map(lambda a: a[1], graph_params))
  assert mlp_state == {}


def test_apply_is_differentiable_and_key_is_accepted():
  model, params, state, _, _ = _built('mnist1d_cnn')
  x = _batch('mnist1d_cnn')
  one = jax.tree.map(lambda a: a[0], params)

  def loss(p):
    logits, _ = model.apply(p, state, x, train=True, key=jax.random.key(1))
    return jnp.mean(logits**2)

  grads = jax.jit(jax.grad(loss))(one)
  assert jax.tree.structure(grads) == jax.tree.structure(one)
  assert all(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))


def test_stochastic_module_is_reseeded_by_key():
  class Dropout(nnx.Module):

    def __init__(self, rngs):
      self.output = nnx.Linear(4, 8, rngs=rngs)
      self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x, *, train):
      return self.drop(self.output(x), deterministic=not train)

  model = adapter.from_nnx(Dropout, 'dropout')
  params, state = jax.jit(model.init)(jax.random.key(0))
  x = jnp.ones((3, 4))
  run = jax.jit(
      lambda k: model.apply(params, state, x, train=True, key=k)[0]
  )
  first, again, other = (
      np.asarray(run(jax.random.key(k))) for k in (1, 1, 2)
  )
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert np.any(first == 0) and np.any(first != 0)


@pytest.mark.parametrize('shape,window,strides,padding', [
    ((4, 9, 9, 3), (3, 3), (1, 1), 'SAME'),          # a first layer (im2col)
    ((2, 9, 9, 8), (3, 3), (2, 2), ((1, 1), (1, 1))),  # ResNet stride 2
    ((2, 8, 8, 5), (1, 1), (2, 2), 'SAME'),          # 1x1 shortcut
    ((2, 40, 1), (5,), (2,), 'VALID'),               # 1-D, MNIST-1D CNN
    ((2, 20, 16), (3,), (1,), 'SAME'),               # 1-D, shifted matmuls
])
def test_patch_conv_equals_lax_conv_values_and_gradients(
    shape, window, strides, padding):
  """The CPU convolution (`patch_conv`) is lax's, to float rounding."""
  from jax import lax  # pylint: disable=g-import-not-at-top
  from ticketjax.models.cpu import patch_conv  # pylint: disable=g-import-not-at-top
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, shape)
  w = jax.random.normal(jax.random.fold_in(key, 1),
                        window + (shape[-1], 16))
  spec = ('NHWC', 'HWIO', 'NHWC') if len(shape) == 4 else ('NWC', 'WIO',
                                                           'NWC')
  dn = lax.conv_dimension_numbers(x.shape, w.shape, spec)

  def loss(conv):
    return lambda x, w: jnp.sum(jnp.sin(conv(
        x, w, strides, padding, dimension_numbers=dn)))

  want = jax.jit(jax.value_and_grad(loss(lax.conv_general_dilated),
                                    argnums=(0, 1)))(x, w)
  got = jax.jit(jax.value_and_grad(loss(patch_conv.conv_general_dilated),
                                   argnums=(0, 1)))(x, w)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)
  # inside a scan and vmapped over seeds, as in training
  w_S = jnp.stack([w, 2 * w])
  scan = lambda conv: jax.vmap(lambda w: jax.lax.scan(
      lambda c, _: (c, jax.grad(loss(conv), argnums=1)(x, w)), 0, None,
      length=1)[1][0])
  np.testing.assert_allclose(jax.jit(scan(lax.conv_general_dilated))(w_S),
                             jax.jit(scan(patch_conv.conv_general_dilated))(
                                 w_S), rtol=2e-4, atol=2e-4)


def test_conv_layers_use_patch_conv_on_cpu_and_fall_back_for_the_rest():
  from jax import lax  # pylint: disable=g-import-not-at-top
  from ticketjax.models.cpu import patch_conv  # pylint: disable=g-import-not-at-top
  layer = adapter.conv(3, 4, (3, 3), kernel_init='glorot_normal',
                       rngs=nnx.Rngs(0))
  assert layer.conv_general_dilated is patch_conv.for_backend()
  if jax.default_backend() == 'cpu':
    assert patch_conv.for_backend() is patch_conv.conv_general_dilated
  # dilated or grouped convolutions go to lax unchanged
  x = jnp.ones((1, 8, 8, 4))
  w = jnp.ones((3, 3, 2, 4))
  dn = lax.conv_dimension_numbers(x.shape, w.shape, ('NHWC', 'HWIO', 'NHWC'))
  grouped = patch_conv.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=dn, feature_group_count=2)
  np.testing.assert_array_equal(grouped, lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=dn, feature_group_count=2))


@pytest.mark.parametrize('x_shape', [(6, 20), (2, 3, 20)])
def test_kernel_matmul_equals_lax_values_and_gradients(x_shape):
  """The CPU dense matmul (`kernel_matmul`) is lax's, to float rounding."""
  from jax import lax  # pylint: disable=g-import-not-at-top
  from ticketjax.models.cpu import kernel_matmul  # pylint: disable=g-import-not-at-top
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, x_shape)
  w = jax.random.normal(jax.random.fold_in(key, 1), (20, 7))
  dn = (((x.ndim - 1,), (0,)), ((), ()))

  def loss(dot):
    return lambda x, w: jnp.sum(jnp.sin(dot(x, w, dn)))

  def grad_of_grad(dot):  # what a Hessian-gradient product needs
    return jax.grad(lambda w: jnp.vdot(
        jax.grad(loss(dot), argnums=1)(x, w), w))(w)

  value_and_grads = lambda dot: jax.value_and_grad(loss(dot), argnums=(0, 1))
  seeds = (jnp.stack([x, -x]), jnp.stack([w, 2 * w]))
  for vmapped, args in ((False, (x, w)), (True, seeds)):
    want, got = (jax.jit(jax.vmap(value_and_grads(dot)) if vmapped
                         else value_and_grads(dot))(*args)
                 for dot in (lax.dot_general, kernel_matmul.dot_general))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grad_of_grad(lax.dot_general),
                             grad_of_grad(kernel_matmul.dot_general),
                             rtol=1e-5, atol=1e-5)
  # the kernel gradient is one contraction born in the kernel's layout:
  # no transpose after it, as JAX's own rule has
  prims = lambda dot: {e.primitive.name for e in jax.make_jaxpr(jax.grad(
      loss(dot), argnums=1))(x, w).jaxpr.eqns}
  assert 'transpose' in prims(lax.dot_general)
  assert 'transpose' not in prims(kernel_matmul.dot_general)


def test_dense_layers_use_kernel_matmul_on_cpu_and_fall_back_for_the_rest():
  from jax import lax  # pylint: disable=g-import-not-at-top
  from ticketjax.models.cpu import kernel_matmul  # pylint: disable=g-import-not-at-top
  layer = adapter.dense(5, 3, 'glorot_normal', nnx.Rngs(0))
  assert layer.dot_general is kernel_matmul.for_backend()
  if jax.default_backend() == 'cpu':
    assert kernel_matmul.for_backend() is kernel_matmul.dot_general
  # a contraction that is not the dense layer's goes to lax unchanged
  a = jnp.arange(12.).reshape(3, 4)
  b = jnp.arange(20.).reshape(5, 4)
  dn = (((1,), (1,)), ((), ()))
  np.testing.assert_array_equal(kernel_matmul.dot_general(a, b, dn),
                                lax.dot_general(a, b, dn))
