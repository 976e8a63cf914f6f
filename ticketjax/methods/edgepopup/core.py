"""Edge-Popup (Ramanujan et al. 2020): find a subnetwork of frozen weights.

A strong lottery ticket is a mask on *random, untrained* weights. Edge-Popup
learns one score s per weight; the forward pass keeps, in every prunable
layer, the fraction k of weights with the largest |s| and uses w ⊙ m; the
backward pass is straight-through, dL/ds = sign(s) ⊙ dL/d(w ⊙ m) ⊙ w for
every edge, pruned ones included, so pruned edges can pop back in. Only the
scores are trained (SGD with weight decay on the scores); the weights and
biases never move (Ramanujan et al. 2020).

`supermask(model, ...)` turns any `Model` into a `Model` whose trainable
params are the scores and whose model state holds the frozen weights, k and
the inner model's own state. `train.Trainer` then trains Edge-Popup
unchanged: its vmapped scan, masked optimizer (with an all-ones mask),
evaluation and member sharding see an ordinary model. k lives in the state,
so members with different k (and seeds) train side by side in one program.

Words: k is the fraction of weights KEPT (density) everywhere, as in the
paper's `GetSubnet`.

Exact counts: a layer of n weights loses floor((1 - k) n) of them, computed
in integer arithmetic from k rounded to `K_DECIMALS` decimals (the reference
code's `int((1 - k) * n)` in float64 removes 9 of 100 weights at k = 0.9;
this removes 10). The count is exact for any n < 2**31 and works with a
traced k under jit and vmap. Among equal |s| the earlier flat position is
removed first (the pruning convention of `ticketjax.pruning`).

The top-k is `ticketjax.selection`, a selection by counting passes, not a
sort (sorting the 4M scores of a 2000x2000 layer every step costs 40x more
on CPU).

Pure functions of pytrees; no I/O and no Flax. Params must be nested dicts
(the `Model` contract).
"""
import dataclasses
import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from ticketjax.core import masks as masks_lib
from ticketjax.core import pruning
from ticketjax.core import selection
from ticketjax.core.types import Model, PyTree

INITS = ('signed_constant', 'kaiming_normal')
GAIN = math.sqrt(2.0)  # ReLU gain of the Kaiming inits
K_DECIMALS = 4
_K_SCALE = 10 ** K_DECIMALS  # k * _K_SCALE is an integer; _K_SCALE**2 < 2**31

# fold_in tags of a seed's init key (the model's own init uses the key itself)
_WEIGHT_TAG = 2_000_003
_SCORE_TAG = 2_000_029


@dataclasses.dataclass(frozen=True)
class EdgePopupConfig:
  """What an Edge-Popup search does.

  Attributes:
    k: fractions of weights kept, one member group per value (in (0, 1],
      at most `K_DECIMALS` decimals).
    init: frozen-weight init, one of INITS.
    scale_fan: use fan_in * k in the init's scale, so the std of a layer's
      kept weights matches a dense layer of the pruned width.
    dense_baseline: also train the dense network normally, same seeds.
    controls: sanity checks of the found supermasks from CONTROLS,
      evaluated (Edge-Popup trains no weight) on the final state:
      'shuffle' (each layer's mask shuffled, same counts), 'reinit' (the
      mask on fresh frozen weights of the same init) and 'invert' (the
      lowest scores kept instead of the highest).
  """
  k: tuple[float, ...] = (0.5,)
  init: str = 'signed_constant'
  scale_fan: bool = False
  dense_baseline: bool = True
  controls: tuple[str, ...] = ()

  def validate(self) -> None:
    """Raises ValueError naming the bad field and the valid values."""
    if not self.k:
      raise ValueError('edgepopup.k is empty; give fractions of weights kept '
                       'in (0, 1], e.g. (0.3, 0.5, 0.7)')
    for k in self.k:
      check_k(k)
    if len(set(self.k)) != len(self.k):
      raise ValueError(f'edgepopup.k has repeated values: {list(self.k)}')
    if self.init not in INITS:
      raise ValueError(f'unknown edgepopup.init {self.init!r}; valid inits '
                       f'are {list(INITS)}')
    bad = [c for c in self.controls if c not in CONTROLS]
    if bad or len(set(self.controls)) != len(self.controls):
      raise ValueError(
          f'edgepopup.controls {list(self.controls)}: '
          + (f'unknown {bad}' if bad else 'a name repeats')
          + f'; valid controls are {list(CONTROLS)}, each at most once')


def check_k(k: Any) -> float:
  """`k` as a float if it is a valid fraction kept, else ValueError."""
  if isinstance(k, bool) or not isinstance(k, (int, float)):
    raise ValueError(f'edgepopup.k values must be numbers in (0, 1], got '
                     f'{k!r}')
  k = float(k)
  if not 0.0 < k <= 1.0:
    raise ValueError(f'edgepopup.k must lie in (0, 1] (the fraction of '
                     f'weights kept), got {k}')
  if abs(k * _K_SCALE - round(k * _K_SCALE)) > 1e-6:
    raise ValueError(f'edgepopup.k has at most {K_DECIMALS} decimals, got '
                     f'{k!r}')
  return k


# -- counts and masks ---------------------------------------------------------


def fan_in(shape: Sequence[int]) -> int:
  """Inputs per output unit of a kernel: prod(shape[:-1])."""
  return math.prod(shape[:-1])


def num_removed(n: int, k) -> jax.Array:
  """floor((1 - k) * n) as int32, exact; `k` may be traced.

  k is rounded to `K_DECIMALS` decimals, q = round(k * 10^4), and
  (10^4 - q) * n // 10^4 is split as m*(n // D) + m*(n % D) // D so no
  product leaves int32.
  """
  q = jnp.round(jnp.asarray(k, jnp.float32) * _K_SCALE).astype(jnp.int32)
  m = _K_SCALE - jnp.clip(q, 0, _K_SCALE)
  return m * (n // _K_SCALE) + (m * (n % _K_SCALE)) // _K_SCALE


def num_kept(n: int, k) -> jax.Array:
  """n - floor((1 - k) * n): weights a layer of n keeps at fraction k."""
  return n - num_removed(n, k)


def topk_mask(scores: jax.Array, kept) -> jax.Array:
  """Bool mask keeping the `kept` largest |scores|; `kept` may be traced.

  Ties in |score| are broken by position: the earlier entry is removed
  first. `kept` is clipped to [0, size] (`selection.keep_largest`).
  """
  keys = selection.float_keys(jnp.abs(scores))
  return selection.keep_largest(keys, kept).reshape(scores.shape)


def layer_masks(scores: PyTree, k) -> PyTree:
  """Per-leaf top-k masks of a scores tree at fraction kept `k`."""
  return jax.tree.map(lambda s: topk_mask(s, num_kept(s.size, k)), scores)


def masked_weights(scores: PyTree, weights: PyTree, k) -> PyTree:
  """w ⊙ m per scored leaf, with the straight-through gradient to s.

  The value is exactly w * m; the gradient is dL/ds = sign(s) * w * g
  where g = dL/d(w ⊙ m), for every edge (m is held constant).
  """
  def one(s, w):
    m = topk_mask(s, num_kept(s.size, k)).astype(w.dtype)
    a = jnp.abs(s)
    return w * (m + (a - jax.lax.stop_gradient(a)))
  return jax.tree.map(one, scores, _select(weights, scores))


# -- pytree helpers (nested dicts) --------------------------------------------


def scored_subtree(tree: Mapping, prunable=masks_lib.is_kernel,
                   prefix: str = '') -> dict:
  """The prunable leaves of nested dict `tree` (those that get scores)."""
  out = {}
  for name, value in tree.items():
    path = f'{prefix}/{name}' if prefix else str(name)
    if isinstance(value, Mapping):
      sub = scored_subtree(value, prunable, path)
      if sub:
        out[name] = sub
    elif prunable(path, value):
      out[name] = value
  return out


def _select(tree: Mapping, like: Mapping) -> dict:
  """The leaves of `tree` at the paths of `like` (a subtree of it)."""
  return {name: (_select(tree[name], sub) if isinstance(sub, Mapping)
                 else tree[name]) for name, sub in like.items()}


def _merge(tree: Mapping, sub: Mapping) -> dict:
  """`tree` with the leaves of `sub` put in at their paths."""
  out = dict(tree)
  for name, value in sub.items():
    out[name] = (_merge(tree[name], value) if isinstance(value, Mapping)
                 else value)
  return out


# -- inits --------------------------------------------------------------------


def frozen_weights(params: Mapping, key: jax.Array, k, *,
                   init: str = 'signed_constant', scale_fan: bool = False,
                   prunable=masks_lib.is_kernel) -> dict:
  """The frozen weights of a supermask network from the model's own init.

  Prunable kernels become sign(w) * gain / sqrt(fan) ('signed_constant', the
  signs of the model's init) or N(0, gain^2 / fan) ('kaiming_normal', a new
  draw from `key`), gain = sqrt(2), fan = fan_in (times k with
  `scale_fan`). Leaves named 'bias' become zero (the paper's layers have no
  bias); other non-prunable leaves (normalization scales) keep the model's
  init.
  """
  if init not in INITS:
    raise ValueError(f'unknown init {init!r}; valid inits are {list(INITS)}')
  k = jnp.asarray(k, jnp.float32)
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [masks_lib.path_str(p) for p, _ in flat]
  leaves = [w for _, w in flat]
  scored = [prunable(p, w) for p, w in zip(paths, leaves)]
  if init == 'kaiming_normal':
    noise = iter(_draw(jax.random.fold_in(key, _WEIGHT_TAG),
                       [w for w, s in zip(leaves, scored) if s],
                       jax.random.normal))
  out = []
  for path, w, is_scored in zip(paths, leaves, scored):
    if not is_scored:
      is_bias = path.rsplit('/', 1)[-1] == 'bias'
      out.append(jnp.zeros_like(w) if is_bias else w)
      continue
    fan = fan_in(w.shape) * (k if scale_fan else 1.0)
    std = GAIN / jnp.sqrt(fan)
    if init == 'signed_constant':
      out.append((jnp.where(w >= 0, 1.0, -1.0) * std).astype(w.dtype))
    else:
      out.append((next(noise) * std).astype(w.dtype))
  return jax.tree.unflatten(treedef, out)


def _draw(key: jax.Array, leaves: list, sampler) -> list:
  """One draw of `sampler(key, (total,))` cut into the leaves' shapes.

  A single random call for all leaves: each call of the threefry sampler
  costs about a second of XLA:CPU compile time.
  """
  sizes = [math.prod(w.shape) for w in leaves]
  flat = sampler(key, (sum(sizes),))
  out, start = [], 0
  for w, size in zip(leaves, sizes):
    out.append(flat[start:start + size].reshape(w.shape).astype(w.dtype))
    start += size
  return out


def init_scores(params: Mapping, key: jax.Array,
                prunable=masks_lib.is_kernel) -> dict:
  """Scores of the prunable leaves: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  PyTorch's kaiming_uniform_(a=sqrt(5)), as the reference code. Returned as
  a nested dict holding only the prunable leaves.
  """
  sub = scored_subtree(params, prunable)
  leaves, treedef = jax.tree.flatten(sub)
  unit = _draw(jax.random.fold_in(key, _SCORE_TAG), leaves,
               lambda k, shape: jax.random.uniform(k, shape, jnp.float32,
                                                   -1.0, 1.0))
  return jax.tree.unflatten(treedef, [
      u / math.sqrt(fan_in(w.shape)) for u, w in zip(unit, leaves)])


# -- the wrapped model -------------------------------------------------------


def supermask_state(params: Mapping, inner_state: PyTree, key: jax.Array,
                    k, *, init: str = 'signed_constant',
                    scale_fan: bool = False,
                    prunable=masks_lib.is_kernel) -> tuple[dict, dict]:
  """(scores, state) of a supermask model from the inner model's init.

  `params, inner_state` are `model.init(key)`; `key` also derives the
  scores (and the 'kaiming_normal' weights). `state` is {'frozen': the
  frozen weights, 'k': float32 k, 'inner': inner_state}. `k` may be traced.
  """
  weights = frozen_weights(params, key, k, init=init, scale_fan=scale_fan,
                           prunable=prunable)
  scores = init_scores(params, key, prunable)
  return scores, {'frozen': weights, 'k': jnp.asarray(k, jnp.float32),
                  'inner': inner_state}


def supermask(model: Model, *, init: str = 'signed_constant',
              scale_fan: bool = False, default_k: float = 0.5,
              prunable=masks_lib.is_kernel) -> Model:
  """`model` as a Model whose trainable params are Edge-Popup scores.

  Returns a Model with
    `init(key, k=default_k) -> (scores, state)`: `supermask_state` of
      `model.init(key)`; `k` may be traced (vmap over members).
    `apply(scores, state, x, *, train, key=None)`: the inner model on the
      top-k masked frozen weights, with the straight-through gradient to the
      scores; the inner state (BatchNorm statistics) updates as usual.
  """
  if init not in INITS:
    raise ValueError(f'unknown init {init!r}; valid inits are {list(INITS)}')
  check_k(default_k)

  def sm_init(key, k=default_k):
    params, inner_state = model.init(key)
    return supermask_state(params, inner_state, key, k, init=init,
                           scale_fan=scale_fan, prunable=prunable)

  def sm_apply(scores, state, x, *, train, key=None):
    effective = masked_weights(scores, state['frozen'], state['k'])
    logits, inner = model.apply(_merge(state['frozen'], effective),
                                state['inner'], x, train=train, key=key)
    return logits, {**state, 'inner': inner}

  return Model(sm_init, sm_apply, f'edgepopup({model.name})')


def subnetwork_masks(scores: PyTree, state: Mapping) -> PyTree:
  """The masks a supermask state's scores select (one member)."""
  return layer_masks(scores, state['k'])


CONTROLS = ('shuffle', 'reinit', 'invert')
_SHUFFLE_TAG = 0xE5F1
REINIT_TAG = 0xE5F2  # off a seed's init key: its 'reinit' frozen weights


def control(name: str, scores: PyTree, state: Mapping, key: jax.Array,
            fresh_state: Mapping | None = None) -> tuple[PyTree, dict]:
  """(scores, state) of one member whose subnetwork is control `name` of
  the found one (see `EdgePopupConfig.controls`); `key` is the member's
  init key, `fresh_state` the 'reinit' state from another init key.

  The shuffled and inverted masks become 0/1 scores, whose top-k is
  exactly that mask: the count k selects is the count the mask keeps.
  Inverted: the lowest |score| kept, by the bitwise complement of the
  selection keys (an exact reversal of their order).
  """
  if name == 'reinit':
    return scores, {**state, 'frozen': fresh_state['frozen']}
  if name == 'invert':
    masks = jax.tree.map(lambda s: selection.keep_largest(
        ~selection.float_keys(jnp.abs(s)).reshape(-1),
        num_kept(s.size, state['k'])).reshape(s.shape), scores)
  else:
    masks = pruning.shuffle(jax.random.fold_in(key, _SHUFFLE_TAG),
                            subnetwork_masks(scores, state),
                            prunable=lambda path, leaf: True)
  return jax.tree.map(lambda m: m.astype(jnp.float32), masks), state
