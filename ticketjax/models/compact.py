"""Compaction: a channel-pruned network as a smaller dense network.

`compact(name, kwargs, params, mask)` takes a model by its registry name
and keyword arguments, masked params and their mask, and returns a
`types.Model` of the narrower architecture with its params, whose outputs
equal the masked network's (up to float summation order). The removed
units are gone from their layer's kernel and bias and from the next
layer's kernel rows.

A hidden unit is removed when nothing of it reaches the output: its
outgoing row in the next kernel is fully masked, or its incoming column
and its bias are both masked (it outputs relu(0) = 0, which is what
'channels' structure leaves, `core/structure.py`). A unit whose incoming
column is masked but whose bias survives outputs the constant relu(b):
it is removed too, and relu(b) times its outgoing row is added to the
next layer's bias, which is exact.

Supported: the plain ReLU MLPs, `lenet_300_100` and `mlp` without
`residual` (a residual sum ties the units of the layers it joins, so
`mnist1d_mlp` cannot shed units layer by layer). Other models raise
ValueError.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core.types import Model, PyTree
from ticketjax.models import get_model

SUPPORTED = ('lenet_300_100', 'mlp')


def _layers(params) -> list[str]:
  hidden = sorted((k for k in params if k.startswith('dense_')),
                  key=lambda k: int(k.split('_')[1]))
  return hidden + ['output']


def check(name: str, kwargs: dict) -> None:
  """ValueError unless `compact` can shrink model `name` built by `kwargs`."""
  if name not in SUPPORTED or (name == 'mlp' and kwargs.get('residual')):
    raise ValueError(
        f'compaction supports the plain MLPs {list(SUPPORTED)} (mlp without '
        f'residual), not {name!r} with {dict(kwargs)}: a residual or '
        'convolutional layout is not exported to a smaller network yet')


def compact(name: str, kwargs: dict, params: PyTree, mask: PyTree
            ) -> tuple[Model, PyTree, dict[str, Any]]:
  """(model, params, info): the smaller network and what it kept.

  `params` are one member's (unbatched), `mask` its mask. `info` has the
  hidden `widths` before and after and the parameter counts.
  """
  check(name, kwargs)
  masks_lib.validate(mask, params)
  params = jax.tree.map(np.asarray, masks_lib.apply(params, mask))
  mask = jax.tree.map(np.asarray, mask)
  names = _layers(params)
  out = {n: {'kernel': params[n]['kernel'], 'bias': params[n]['bias']}
         for n in names}
  for here, nxt in zip(names[:-1], names[1:]):
    w, b = out[here]['kernel'], out[here]['bias']
    w_next = out[nxt]['kernel']
    incoming = mask[here]['kernel'].any(axis=0)
    outgoing = mask[nxt]['kernel'][:w.shape[1]].any(axis=1)
    constant = ~incoming & outgoing  # outputs relu(b): fold it forward
    fold = np.maximum(np.where(constant, b, 0.0), 0.0) @ w_next
    keep = incoming & outgoing
    out[nxt]['bias'] = (out[nxt]['bias'] + fold).astype(b.dtype)
    out[here] = {'kernel': w[:, keep], 'bias': b[keep]}
    out[nxt]['kernel'] = w_next[keep]
  widths = tuple(int(out[n]['bias'].shape[0]) for n in names[:-1])
  if 0 in widths:
    raise ValueError(
        f'no unit of layer {names[widths.index(0)]!r} reaches the output '
        f'(widths left {widths}): the mask disconnects the network, so '
        'there is no smaller network to export')
  small_kwargs = {'widths': widths,
                  'num_classes': int(out['output']['bias'].shape[0]),
                  'input_shape': int(out[names[0]]['kernel'].shape[0])}
  if 'kernel_init' in kwargs:
    small_kwargs['kernel_init'] = kwargs['kernel_init']
  model = get_model('mlp', **small_kwargs)
  template, _ = jax.eval_shape(model.init, jax.random.PRNGKey(0))
  small = jax.tree.map(lambda t, x: jnp.asarray(x, t.dtype), template,
                       {n: out[n] for n in template})
  count = lambda tree: sum(int(np.size(x)) for x in jax.tree.leaves(tree))
  info = {'widths_before': tuple(int(params[n]['bias'].shape[0])
                                 for n in names[:-1]),
          'widths': widths, 'params_before': count(params),
          'params': count(small)}
  return model, small, info
