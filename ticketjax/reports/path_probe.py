"""The linear-path probe between any two saved networks (`launch.probe`).

An endpoint is `PATH[:MEMBER]`: PATH a checkpoint folder of a run
(`<run_dir>/checkpoints/<name>`), MEMBER the index along its leading
member axis (seed, or copy for `copies_k*`; default 0; a member is
printed as its method's `member_label` says: IMP, CS, Edge-Popup, PaI,
DST, Early-Bird, LMC and transfer name theirs). The checkpoint's
train state is the one dict in it with `params` and `model_state` (the root
for rewind points and copies, `ticket` for IMP levels). The run's
`config.json` gives the model and the data, so both endpoints must come
from runs with the same data set and model. Works for checkpoints that
hold the plain model's params and state (the dense, IMP and LMC jobs',
CS's ticket, Edge-Popup's dense network); those a method declares
wrapped (`check_plain`: CS's search rounds, Edge-Popup's scores) are
refused with a clear error. A method whose checkpoints wrap the model
state (DST's keeps each member's variant beside it) declares
`plain_model_state`, which the probe applies; one whose checkpoints hold
no train state (a one-shot run's masks) declares `checkpoint_state`,
which builds it (`load_endpoint`, for `launch.weights`; such runs train no
network of their config's, so the probe refuses them).
"""
import json
import os
import sys

import jax
import ml_collections
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core import train as train_lib
from ticketjax.methods import registry
from ticketjax.methods.lmc import path as lmc
from ticketjax.reports import plots as plots_lib
from ticketjax.run import records as records_lib
from ticketjax.run import setup as setup_lib
from ticketjax.run import store
from ticketjax.run import workdir as workdir_lib

MASK_CHOICES = ('none', 'a', 'b')


ENDPOINT = 'an endpoint is PATH[:MEMBER], PATH = <run_dir>/checkpoints/<name>'


def parse_endpoint(spec: str) -> tuple[str, int]:
  """'PATH[:MEMBER]' -> (absolute checkpoint path, member index)."""
  path, sep, member = spec.rpartition(':')
  if not sep or os.path.isdir(spec):
    path, member = spec, '0'
  elif not member.isdigit():
    raise ValueError(f'{spec!r}: member {member!r} is not a member index '
                     f'(0, 1, ...); {ENDPOINT}')
  path = os.path.abspath(path.rstrip('/'))
  if not os.path.isdir(path):
    raise ValueError(f'no checkpoint folder {path!r} ({ENDPOINT})')
  return path, int(member)


def run_config(path: str) -> dict:
  run_dir = os.path.dirname(os.path.dirname(path))
  config_path = os.path.join(run_dir, 'config.json')
  if os.path.exists(os.path.join(path, 'config.json')) or os.path.basename(
      path) == 'checkpoints':
    raise ValueError(f'{path!r} is a run folder or its checkpoints/, not a '
                     f'checkpoint folder ({ENDPOINT})')
  if not os.path.exists(config_path):
    raise ValueError(f'{path!r} is not inside a run folder: no '
                     f'{config_path}')
  with open(config_path, encoding='utf-8') as f:
    return json.load(f)


def _member_label(config: dict, path: str, member: int) -> str:
  """Who member `member` of the checkpoint at `path` is, as its method's
  `member_label` says ('seed 1 at grid point lr=0.003'); '' when the
  method does not say."""
  label = getattr(registry.get(config.get('job')), 'member_label', None)
  try:
    return label(config, os.path.basename(path), member) if label else ''
  except (ValueError, KeyError, AttributeError):  # a config it cannot read
    return ''  # (e.g. from an older version): the probe goes on unnamed


def _find_state(tree, where: str) -> dict:
  """The one sub-dict with 'params' and 'model_state' (the train state)."""
  found = []

  def walk(node, name):
    if isinstance(node, dict):
      if 'params' in node and 'model_state' in node:
        found.append((name, node))
        return
      for key, child in node.items():
        walk(child, f'{name}/{key}')

  walk(tree, '')
  if len(found) != 1:
    raise ValueError(f'{where} holds {len(found)} train states '
                     f'({[n or "/" for n, _ in found]}); expected exactly one')
  return found[0][1]


def load_endpoint(path: str, member: int):
  """(params, model_state, mask, config dict) of one saved network."""
  config = run_config(path)
  ckpt = store.Checkpoints(os.path.dirname(os.path.dirname(path)))
  saved = ckpt.restore_raw(os.path.basename(path))
  build = getattr(registry.get(config.get('job')), 'checkpoint_state', None)
  state = (build(config, os.path.basename(path), saved) if build
           else _find_state(saved, path))
  size = np.shape(jax.tree.leaves(state['params'])[0])[0]
  if not 0 <= member < size:
    raise ValueError(f'{path!r} has members 0..{size - 1}, got {member}')
  take = lambda tree: jax.tree.map(lambda v: np.asarray(v)[member], tree)
  plain = getattr(registry.get(config.get('job')), 'plain_model_state',
                  lambda s: s)
  return (take(state['params']), take(plain(state['model_state'])),
          take(state.get('mask')) if 'mask' in state else None, config)


def check_plain(config: dict, path: str) -> None:
  """ValueError if the checkpoint at `path` holds other params than its
  network's weights: the checkpoints its method declares in
  `WRAPPED_CHECKPOINTS` (Edge-Popup's search saves scores over frozen
  weights, a CS round mask logits beside them). Reads no file."""
  job = config.get('job')
  name = os.path.basename(path)
  wrapped = getattr(registry.get(job), 'WRAPPED_CHECKPOINTS', {})
  for prefix, what in wrapped.items():
    if name.startswith(prefix):
      raise ValueError(
          f'{path!r} does not hold the weights of a network: checkpoint '
          f'{name!r} of job {job!r} holds {what}; give a checkpoint of '
          "trained weights, e.g. an IMP level, CS's ticket or Edge-Popup's "
          'dense')


def check_built(config: dict, path: str, tool: str) -> None:
  """ValueError if the checkpoint at `path` comes from a run that builds
  no network of its config's model and data (`BUILDS = False`: one-shot
  masks of a pretrained model), which `tool` cannot take."""
  job = config.get('job')
  if not getattr(registry.get(job), 'BUILDS', True):
    raise ValueError(
        f'{path!r} comes from a {job!r} run, whose network is not the model '
        f'and data set of its config: {tool} takes checkpoints of runs that '
        'train one (launch.weights reads this one)')


def probe_checkpoints(a: str, b: str, *, split: str = 'test',
                      num_alphas: int = lmc.NUM_ALPHAS, mask: str = 'none',
                      out_dir: str | None = None,
                      data_dir: str | None = None) -> dict:
  """Error and loss along W(alpha) between endpoints `a` and `b`.

  Returns {'alphas', 'error', 'loss', 'barrier', ...}; with `out_dir`, also
  writes `probe.json` and `probe.png` there. Every input is checked before
  the data set is loaded.
  """
  if split not in ('test', 'train'):
    raise ValueError(f"split must be 'test' or 'train', got {split!r}")
  if mask not in MASK_CHOICES:
    raise ValueError(f'mask must be one of {MASK_CHOICES}, got {mask!r}')
  alpha = lmc.alphas(num_alphas)
  (pa, ma), (pb, mb) = parse_endpoint(a), parse_endpoint(b)
  for p in (pa, pb):  # before loading anything
    config = run_config(p)
    check_plain(config, p)
    check_built(config, p, 'the probe')
  params_a, state_a, mask_a, cfg_a = load_endpoint(pa, ma)
  params_b, state_b, mask_b, cfg_b = load_endpoint(pb, mb)
  for field in ('data', 'model'):
    sa, sb = dict(cfg_a[field]), dict(cfg_b[field])
    sa.pop('data_dir', None), sb.pop('data_dir', None)
    if sa != sb:
      raise ValueError(f'the endpoints come from runs with different '
                       f'{field}: {sa} vs {sb}')
  config = ml_collections.ConfigDict(cfg_a)
  if data_dir:
    config.data.data_dir = data_dir
  pieces = setup_lib.build(config)
  template = jax.eval_shape(pieces.model.init, jax.random.PRNGKey(0))[0]
  for name, params in (('a', params_a), ('b', params_b)):
    if jax.tree.structure(params) != jax.tree.structure(template) or any(
        np.shape(p) != t.shape for p, t in zip(jax.tree.leaves(params),
                                               jax.tree.leaves(template))):
      raise ValueError(f'endpoint {name} does not hold plain '
                       f'{pieces.model.name!r} params (CS and Edge-Popup '
                       'checkpoints wrap them and cannot be probed)')
  chosen = {'none': None, 'a': mask_a, 'b': mask_b}[mask]
  if mask != 'none' and chosen is None:
    raise ValueError(f'endpoint {mask} has no mask')
  data = train_lib.to_device(pieces.dataset)
  x, y = ((data.x_test, data.y_test) if split == 'test'
          else (data.x_train, data.y_train))
  path = lmc.path_metrics(
      pieces.trainer, params_a, params_b, state_a, state_b, x, y, alpha,
      mask=None if chosen is None else jax.tree.map(np.bool_, chosen),
      x_stats=data.x_train)
  result = {
      'a': f'{pa}:{ma}', 'b': f'{pb}:{mb}', 'split': split, 'mask': mask,
      'a_member': _member_label(cfg_a, pa, ma),
      'b_member': _member_label(cfg_b, pb, mb),
      'model': pieces.model.name, 'dataset': pieces.dataset.name,
      'alphas': np.asarray(alpha).tolist(),
      'error': np.asarray(path['error']).tolist(),
      'loss': np.asarray(path['loss']).tolist(),
      'barrier': float(lmc.error_barrier(path['error'])),
  }
  if mask_a is not None and mask_b is not None:
    result['mask_jaccard'] = float(masks_lib.jaccard(
        jax.tree.map(np.bool_, mask_a), jax.tree.map(np.bool_, mask_b)))
  if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    records_lib.write_json(os.path.join(out_dir, 'probe.json'), result)
    plot(result, os.path.join(out_dir, 'probe.png'))
  return result


def format_result(result: dict) -> str:
  rows = [[f'{al:.3f}', f'{100 * e:.2f}', f'{l:.4f}'] for al, e, l in
          zip(result['alphas'], result['error'], result['loss'])]
  stable = 'stable' if result['barrier'] < lmc.STABLE_BARRIER else 'unstable'
  who = lambda e: (f" ({result[e + '_member']})"
                   if result.get(e + '_member') else '')
  return (f"{result['split']} error along (1 - alpha) a + alpha b\n"
          f"a = {result['a']}{who('a')}\nb = {result['b']}{who('b')}\n\n" +
          stats.markdown_table(['alpha', 'error (%)', 'loss'], rows) +
          f"\n\nerror barrier: {100 * result['barrier']:.2f}% ({stable}, "
          'threshold 2%)')


def plot(result: dict, path: str) -> None:
  """The error along the path, written to `path`."""
  fig, ax = plots_lib.pyplot().subplots(figsize=(5, 3.6), dpi=120)
  ax.plot(result['alphas'], 100 * np.asarray(result['error']), marker='o',
          ms=3)
  ax.set_xlabel('alpha (0 = a, 1 = b)')
  ax.set_ylabel(f"{result['split']} error (%)")
  ax.set_title(f"barrier {100 * result['barrier']:.2f}%")
  ax.grid(alpha=0.3)
  plots_lib.write(fig, path)


def main(a, b, **kwargs) -> dict:
  if kwargs.get('out_dir'):
    workdir_lib.check_folder(kwargs['out_dir'], 'probe folder (--out)')
  result = probe_checkpoints(a, b, **kwargs)
  print(format_result(result))
  if kwargs.get('out_dir'):
    print(f"results: {kwargs['out_dir']}", file=sys.stderr)
  return result
