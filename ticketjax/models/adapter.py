"""The one bridge between Flax NNX modules and ticketjax's pure functions.

ticketjax's core (masks, pruning, training, seed-vmapped searches) works on
plain nested dicts of arrays and two pure functions, `init` and `apply`
(`ticketjax.types.Model`). Models, though, are easiest to write as NNX
modules. `from_nnx` turns a module constructor into that pure pair:

* `nnx.eval_shape` builds the module once, abstractly, to learn its static
  `GraphDef` and the shapes of its variables; nothing is allocated.
* `init(key)` builds the module for real from `nnx.Rngs(key)` and splits it
  into trainable `nnx.Param`s and everything else (BatchNorm statistics),
  returned as nested dicts (`nnx.to_pure_dict`).
* `apply(params, state, x, *, train)` copies the abstract states, fills them
  from the dicts (`nnx.replace_by_pure_dict`), merges a throwaway module, runs
  it and reads the (possibly updated) non-trainable state back out as a dict.

Both functions are pure, so plain `jax.jit`, `jax.vmap` and `jax.grad` apply
to them; NNX's own transforms are never used (they are changing in 2026, see
STYLE.md section 7). Whether NNX runs in graph mode or tree mode is read once,
when the model is built, and pinned for every later call, so a graph made in
one mode is never merged in the other.

This module also holds the small building blocks the model files share
(`initializers`, `dense`, `conv`, `layer_names`, `positive_int`), so every
model understands the same `kernel_init` names and naming rules.
"""
from collections.abc import Callable, Sequence
import math
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import types
from ticketjax.models.cpu import kernel_matmul
from ticketjax.models.cpu import patch_conv

Initializer = Callable[..., jax.Array]

# Names accepted by every model's `kernel_init` argument.
KERNEL_INITS = (
    'glorot_normal',
    'kaiming_normal',
    'lecun_normal',
    'torch_default',
)


def check_kernel_init(name: str) -> str:
  """Returns `name` if it is a known initialiser name; else ValueError."""
  if name not in KERNEL_INITS:
    raise ValueError(
        f'Unknown kernel_init {name!r}; valid names are '
        f'{", ".join(KERNEL_INITS)}.'
    )
  return name


def initializers(name: str, fan_in: int) -> tuple[Initializer, Initializer]:
  """Returns `(kernel_init, bias_init)` for a layer with the given fan-in.

  Args:
    name: one of `KERNEL_INITS`.
      'glorot_normal': truncated normal, variance 2 / (fan_in + fan_out)
        (`jax.nn.initializers.glorot_normal`; Frankle & Carbin's default).
      'lecun_normal': truncated normal, variance 1 / fan_in.
      'kaiming_normal': He normal, truncated, variance 2 / fan_in.
      'torch_default': PyTorch's default for Linear and Conv layers, kernel
        and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      All but 'torch_default' give zero biases.
    fan_in: number of inputs to one output unit (in_features for a dense
      layer, in_channels * prod(kernel_size) for a convolution); used only
      for the 'torch_default' bias bound.

  Returns:
    The kernel initialiser and the bias initialiser.
  """
  check_kernel_init(name)
  if name == 'torch_default':
    bound = 1.0 / math.sqrt(fan_in)

    def bias_init(key, shape, dtype=jnp.float32):
      return jax.random.uniform(key, shape, dtype, -bound, bound)

    # variance_scaling(1/3, fan_in, uniform) has bound sqrt(3 * 1/3 / fan_in).
    kernel_init = jax.nn.initializers.variance_scaling(
        1.0 / 3.0, 'fan_in', 'uniform'
    )
    return kernel_init, bias_init
  kernel_init = {
      'glorot_normal': jax.nn.initializers.glorot_normal(),
      'lecun_normal': jax.nn.initializers.lecun_normal(),
      'kaiming_normal': jax.nn.initializers.he_normal(),
  }[name]
  return kernel_init, jax.nn.initializers.zeros


def layer_names(prefix: str, count: int) -> list[str]:
  """`count` attribute names `prefix_i` whose string order is model order.

  Indices are zero-padded to a common width, so up to 10 layers give the
  plain `dense_0 ... dense_9`, and more give `dense_00 ...`.
  """
  width = len(str(max(count - 1, 0)))
  return [f'{prefix}_{i:0{width}d}' for i in range(count)]


def positive_int(name: str, value: Any) -> int:
  """Returns `value` if it is a positive int, else raises ValueError."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f'{name} must be a positive int, got {value!r}.')
  return value


def dense(
    in_features: int, out_features: int, kernel_init: str, rngs: nnx.Rngs
) -> nnx.Linear:
  """An `nnx.Linear` (with bias) initialised by name (see `initializers`).

  On the CPU backend its kernel gradient comes out in the kernel's layout
  (`kernel_matmul`), which the optimizer's passes read fastest.
  """
  k_init, b_init = initializers(kernel_init, in_features)
  return nnx.Linear(
      in_features, out_features, kernel_init=k_init, bias_init=b_init,
      dot_general=kernel_matmul.for_backend(), rngs=rngs,
  )


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = 'SAME',
    use_bias: bool = True,
    kernel_init: str,
    rngs: nnx.Rngs,
) -> nnx.Conv:
  """An `nnx.Conv` (channels last) initialised by name.

  On the CPU backend it convolves by shifted matmuls (`patch_conv`), which
  XLA:CPU runs fast inside the training scan and under `vmap`.
  """
  k_init, b_init = initializers(
      kernel_init, in_channels * math.prod(kernel_size)
  )
  return nnx.Conv(
      in_channels,
      out_channels,
      tuple(kernel_size),
      strides,
      padding=padding,
      use_bias=use_bias,
      kernel_init=k_init,
      bias_init=b_init,
      conv_general_dilated=patch_conv.for_backend(),
      rngs=rngs,
  )


def _tree_paths(tree: Any) -> list[str]:
  paths, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [jax.tree_util.keystr(p, simple=True, separator='/') for p, _ in paths]


def _check_structure(what: str, got: Any, expected: Any) -> None:
  """Raises a ValueError naming the differing leaf paths."""
  if jax.tree.structure(got) == jax.tree.structure(expected):
    return
  got_paths, want_paths = set(_tree_paths(got)), set(_tree_paths(expected))
  missing = sorted(want_paths - got_paths)
  extra = sorted(got_paths - want_paths)
  raise ValueError(
      f'{what} do not match the model: missing {missing or "none"}, '
      f'unexpected {extra or "none"}.'
  )


def from_nnx(
    make_module: Callable[[nnx.Rngs], nnx.Module], name: str
) -> types.Model:
  """Wraps an NNX module constructor as a `ticketjax.types.Model`.

  Args:
    make_module: `make_module(rngs) -> nnx.Module`. The module's `__call__`
      must take `(x, *, train: bool)`. Trainable variables must be
      `nnx.Param`; every other variable (e.g. BatchNorm `mean`/`var`) becomes
      model state.
    name: the model's registry name, stored on the returned `Model`.

  Returns:
    A `Model` whose `init(key) -> (params, state)` and
    `apply(params, state, x, *, train, key=None) -> (logits, new_state)` work
    on nested dicts of arrays and compose with `jax.jit` (mark `train`
    static, e.g. with `functools.partial`), `jax.vmap` and `jax.grad`.
  """
  graph_mode = nnx.set_graph_mode.current_value()

  with nnx.set_graph_mode(graph_mode):
    abstract = nnx.eval_shape(lambda: make_module(nnx.Rngs(0)))
    graphdef, abstract_params, abstract_state = nnx.split(
        abstract, nnx.Param, ...
    )
  # Pure-dict skeletons of ShapeDtypeStructs, used to validate inputs.
  params_spec = nnx.to_pure_dict(abstract_params)
  state_spec = nnx.to_pure_dict(abstract_state)

  def init(key: jax.Array) -> tuple[types.Params, types.PyTree]:
    """Samples `(params, state)` for one seed from a PRNG key."""
    with nnx.set_graph_mode(graph_mode):
      module = make_module(nnx.Rngs(key))
      _, params, state = nnx.split(module, nnx.Param, ...)
    return nnx.to_pure_dict(params), nnx.to_pure_dict(state)

  def apply(
      params: types.Params,
      state: types.PyTree,
      x: jax.Array,
      *,
      train: bool,
      key: jax.Array | None = None,
  ) -> tuple[jax.Array, types.PyTree]:
    """Runs the model on a batch; returns `(logits, new_state)`.

    Args:
      params: nested dict of trainable arrays, as made by `init`.
      state: nested dict of non-trainable arrays (`{}` without BatchNorm).
      x: a batch of inputs with a leading example axis.
      train: BatchNorm uses batch statistics and `new_state` holds updated
        running statistics when True; running statistics are used and
        `new_state` equals `state` when False. Must be a Python bool.
      key: PRNG key for stochastic layers; when given, every RNG stream the
        module owns is reseeded from it. The built-in models are
        deterministic and ignore it.
    """
    if not isinstance(train, (bool, np.bool_)):
      raise TypeError(
          f'train must be a Python bool (static under jit), got {train!r}.'
      )
    train = bool(train)
    _check_structure('params', params, params_spec)
    _check_structure('state', state, state_spec)
    with nnx.set_graph_mode(graph_mode):
      # Fresh containers each call: replace_by_pure_dict updates in place,
      # and the abstract states are shared by every call.
      param_vars = jax.tree.map(lambda v: v, abstract_params)
      state_vars = jax.tree.map(lambda v: v, abstract_state)
      nnx.replace_by_pure_dict(param_vars, params)
      nnx.replace_by_pure_dict(state_vars, state)
      module = nnx.merge(graphdef, param_vars, state_vars)
      if key is not None:
        _reseed(module, key)
      logits = module(x, train=train)
      _, _, new_state = nnx.split(module, nnx.Param, ...)
    return logits, nnx.to_pure_dict(new_state)

  return types.Model(init=init, apply=apply, name=name)


def _reseed(module: nnx.Module, key: jax.Array) -> None:
  """Reseeds every RNG stream held by `module` from `key` (if it has any)."""
  streams = sorted({
      node.tag
      for _, node in nnx.iter_graph(module)
      if isinstance(node, nnx.RngStream)
  })
  if not streams:
    return
  keys = jax.random.split(key, len(streams))
  nnx.reseed(module, **{s: k for s, k in zip(streams, keys)})
