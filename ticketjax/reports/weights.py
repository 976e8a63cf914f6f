"""Per-layer weight distributions of networks in several states.

The seed papers on language-model tickets compare the weights of a random,
a pretrained and a fine-tuned network (and their tickets): how wide each
layer's distribution is, how heavy its tails are, and how many weights sit
near zero, where magnitude pruning cuts. For every prunable kernel (every
projection, for a transformer) `layer_stats` gives

  * std: the standard deviation of its weights;
  * kurtosis: the excess kurtosis (0 for a Gaussian; heavy tails > 0);
  * near_zero: the fraction with |w| < 0.1 std (a Gaussian has 8.0%);
  * kept: the fraction kept by the state's mask (1 without one),

all over the kept weights (None, 'n/a' in the table, for a layer that
keeps none). `write(states, out_dir)` writes `weights.json`,
`weights.md` (a table per state), `weights_hist.png` (histograms of w /
std pooled over the layers, log y, a line per state) and
`weights_layers.png` (std, kurtosis and near-zero fraction per layer).

A state is named 'NAME=SOURCE', SOURCE one of: 'smollm2', a .gguf file or
a Hugging Face GPT-2 folder (a pretrained model, `setup.pretrained`);
'random:SOURCE' (a fresh init of that model's architecture, seed 0); or
'RUN/checkpoints/NAME[:MEMBER]' (a saved network of any ticketjax run, with
its mask; `path_probe.check_plain` refuses one that holds other values than
the network's weights; a one-shot run's magnitude or Wanda mask reads as
the pretrained weights it keeps). An exported ticket (`launch.export`, its
manifest `masked`) keeps its nonzero weights, as its checkpoint does.
"""
import json
import os

import jax
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats as stats_lib
from ticketjax.reports import path_probe
from ticketjax.reports import plots as plots_lib
from ticketjax.run import export
from ticketjax.run import records as records_lib

NEAR_ZERO = 0.1  # in layer stds


def layer_stats(params, mask=None,
                prunable: masks_lib.LeafFilter = masks_lib.is_kernel
                ) -> list[dict]:
  """[{'layer', 'size', 'kept', 'std', 'kurtosis', 'near_zero'}] per
  prunable leaf, in flattening order, over the weights `mask` keeps."""
  paths = masks_lib.leaf_paths(params)
  leaves = jax.tree.leaves(params)
  keeps = (jax.tree.leaves(mask) if mask is not None
           else [None] * len(leaves))
  out = []
  for path, w, keep in zip(paths, leaves, keeps):
    if not prunable(path, w):
      continue
    w = np.asarray(w, np.float64).reshape(-1)
    kept = (np.ones(w.shape, bool) if keep is None
            else np.asarray(keep).reshape(-1))
    v = w[kept]
    row = {'layer': path, 'size': int(w.size), 'kept': float(kept.mean()),
           'std': None, 'kurtosis': None, 'near_zero': None}
    if v.size:  # a layer that keeps no weight has no distribution
      std = float(v.std())
      z = (v - v.mean()) / std if std > 0 else np.zeros_like(v)
      row.update(std=std, kurtosis=float(np.mean(z ** 4) - 3.0),
                 near_zero=float(np.mean(np.abs(v) < NEAR_ZERO * std)))
    out.append(row)
  return out


def summary(name: str, rows: list[dict]) -> str:
  """One line per state: the means over its layers that keep weights."""
  full = [r for r in rows if r['std'] is not None]
  n = len(rows) - len(full)
  empty = (f" ({n} keep{'s' if n == 1 else ''} no weight, left out)"
           if n else '')
  if not full:
    return f'{name}: {len(rows)} layers{empty}: no statistics'
  mean = lambda key: sum(r[key] for r in full) / len(full)
  return (f'{name}: {len(rows)} layers{empty}, mean std {mean("std"):.4g}, '
          f'mean excess kurtosis {mean("kurtosis"):.2f}, mean fraction near '
          f'zero {mean("near_zero"):.3f}')


def load_state(spec: str):
  """(params, mask or None) of 'SOURCE' (module docstring)."""
  from ticketjax.run import setup as setup_lib  # pylint: disable=g-import-not-at-top
  if spec.startswith('random:'):
    return setup_lib.pretrained_params(spec[len('random:'):],
                                       random=True), None
  if '/checkpoints/' in spec:
    path, member = path_probe.parse_endpoint(spec)
    path_probe.check_plain(path_probe.run_config(path), path)
    params, _, mask, _ = path_probe.load_endpoint(path, member)
    return params, mask
  folder = spec if os.path.isdir(spec) else spec.rpartition(':')[0]
  if folder and os.path.isdir(os.path.join(folder, 'records')):  # a run
    raise ValueError(f'{spec!r} is a run folder, not a network: give one of '
                     f'its checkpoints, {folder}/checkpoints/NAME[:MEMBER]')
  params = setup_lib.pretrained_params(spec)
  manifest = os.path.join(spec, export.MANIFEST) if os.path.isdir(spec) else ''
  if manifest and os.path.exists(manifest) and records_lib.read_json(
      manifest).get('masked'):
    # an exported ticket: its pruned weights are exact zeros, and a kept
    # weight of exactly 0.0 is (for trained floats) not seen in practice
    return params, jax.tree.map(lambda w: np.asarray(w) != 0, params)
  return params, None


def parse_states(specs) -> list[tuple[str, str]]:
  """[(name, source)] of 'NAME=SOURCE' strings; ValueError if malformed."""
  out = []
  for spec in specs:
    name, sep, source = str(spec).partition('=')
    if not sep or not name or not source:
      raise ValueError(f'state {spec!r}: write NAME=SOURCE, e.g. '
                       'pretrained=smollm2 or random=random:smollm2')
    out.append((name, source))
  if len({n for n, _ in out}) != len(out):
    raise ValueError(f'state names repeat: {[n for n, _ in out]}')
  return out


def _histogram(params, mask, bins):
  counts = np.zeros(len(bins) - 1)
  paths = masks_lib.leaf_paths(params)
  keeps = jax.tree.leaves(mask) if mask is not None else None
  for i, (path, w) in enumerate(zip(paths, jax.tree.leaves(params))):
    if not masks_lib.is_kernel(path, w):
      continue
    v = np.asarray(w, np.float64).reshape(-1)
    if keeps is not None:
      v = v[np.asarray(keeps[i]).reshape(-1)]
    if v.size and v.std() > 0:
      counts += np.histogram(v / v.std(), bins=bins)[0]
  return counts / max(counts.sum(), 1)


def write(states: list[tuple[str, str]], out_dir: str) -> dict:
  """Loads every state, writes the four files (module docstring) and
  returns {name: layer stats}. Every state loads before anything is
  written."""
  loaded = {name: load_state(source) for name, source in states}
  result = {name: layer_stats(p, m) for name, (p, m) in loaded.items()}
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'weights.json'), 'w') as f:
    json.dump({'sources': dict(states), 'layers': result}, f, indent=1)
  text = []
  for name, rows in result.items():
    text.append(f'## {name} ({dict(states)[name]})\n\n' +
                stats_lib.markdown_table(
                    ['layer', 'weights', 'kept (%)', 'std', 'excess kurtosis',
                     f'|w| < {NEAR_ZERO:g} std (%)'],
                    [[r['layer'], f"{r['size']:,}", f"{100 * r['kept']:.1f}"]
                     + ([f"{r['std']:.4g}", f"{r['kurtosis']:.2f}",
                         f"{100 * r['near_zero']:.1f}"]
                        if r['std'] is not None else ['n/a'] * 3)
                     for r in rows]))
  with open(os.path.join(out_dir, 'weights.md'), 'w') as f:
    f.write('# Per-layer weight distributions\n\n' + '\n\n'.join(text) +
            '\n')
  plt = plots_lib.pyplot()
  bins = np.linspace(-8, 8, 161)
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  for name, (p, m) in loaded.items():
    ax.plot((bins[:-1] + bins[1:]) / 2, _histogram(p, m, bins), label=name)
  ax.set_yscale('log')
  ax.set_xlabel('weight / its layer\'s std (kept weights of every projection)')
  plots_lib.save(fig, ax, os.path.join(out_dir, 'weights_hist.png'),
                 'Weight distributions per state', 'fraction of weights',
                 note='one network per state')
  fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=120)
  for name, rows in result.items():
    for ax, key in zip(axes, ('std', 'kurtosis', 'near_zero')):
      ax.plot([np.nan if r[key] is None else r[key] for r in rows],
              marker='o', ms=2, label=name)  # no kept weight: a gap
  for ax, label in zip(axes, ('std', 'excess kurtosis',
                              f'fraction |w| < {NEAR_ZERO:g} std')):
    ax.set_xlabel('prunable layer (model order)')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes[1].set_yscale('symlog')
  axes[0].legend(fontsize='small')
  fig.suptitle(plots_lib.title('Per-layer weight statistics per state',
                               'one network per state'), fontsize='medium')
  plots_lib.write(fig, os.path.join(out_dir, 'weights_layers.png'))
  return result
