"""Instability analysis (Frankle et al. 2020): its config, members and math.

For a rewind step k, every network n (the dense network, or an IMP mask
applied to the dense trajectory's weights W_k) and seed s is trained on to
the end T as C *copies* that differ only in their SGD noise (data order,
dropout): copy c of seed s continues from the same W_k with the key
`copy_key(noise_key_s, c)`. Every pair of copies of one (n, s) is then
interpolated (`lmc.pair_path_metrics`) and its error barrier is the
instability of W_k. Barriers are reported as mean ± std over pairs and
seeds; a network is *stable* at k when the mean barrier is under 2%.

Member layout of one rewind step, everywhere (states, records, pairs):
member index = (n * S + s) * C + c, i.e. network-major, then seed, then
copy. This module is pure (no I/O); `job.py` drives it.
"""
import dataclasses
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ticketjax.core import masks as masks_lib
from ticketjax.core import stats
from ticketjax.core.types import PyTree
from ticketjax.methods.imp.core import random_to_counts
from ticketjax.methods.lmc import path as lmc

SPLITS = ('test', 'train')
_COPY_TAG = 0x1C0B  # keeps copy keys apart from every other derived key
RANDOM_MASK_TAG = 0x1C0C  # off a seed's init key: its random-mask control


@dataclasses.dataclass(frozen=True)
class LmcConfig:
  """The `config.lmc` section of an instability analysis.

  Attributes:
    rewind_steps: the steps k whose weights W_k are analysed (0 = init);
      each must lie in [0, train.steps).
    copies: C >= 2 copies trained from every W_k.
    num_alphas: points of the interpolation grid in [0, 1] (paper: 30).
    splits: where the path is evaluated, from SPLITS.
    dense: analyse the dense network.
    imp_run: an IMP run folder (`<workdir>/imp-<hash>`) whose masks to
      analyse; it must have the same data, model, optimizer, training
      length and seed, so its level-0 trajectory is this run's. Its
      tickets are applied at every k, unless it is a grid over
      `rewind_step` alone (`imp.rewind='step'`): then each k takes the
      tickets of the point rewound to k (the paper's protocol).
    imp_levels: IMP levels whose ticket masks are applied to W_k.
    random_masks: also analyse, for every IMP level, a random mask with the
      ticket's per-layer counts (network 'level_LLL_random'), so a
      ticket's stability is measured against its sparsity alone.
    recompute_stats: re-estimate BatchNorm statistics along the path.
    stats_batches: training batches used to re-estimate them.
  """
  rewind_steps: tuple[int, ...] = (0,)
  copies: int = 2
  num_alphas: int = lmc.NUM_ALPHAS
  splits: tuple[str, ...] = ('test',)
  dense: bool = True
  imp_run: str = ''
  imp_levels: tuple[int, ...] = ()
  random_masks: bool = False
  recompute_stats: bool = True
  stats_batches: int = 50

  def validate(self, total_steps: int) -> None:
    steps = list(self.rewind_steps)
    if not steps or steps != sorted(set(steps)) or any(
        isinstance(k, bool) or not isinstance(k, int) for k in steps):
      raise ValueError(f'lmc.rewind_steps must be increasing distinct ints, '
                       f'got {self.rewind_steps}')
    if steps[0] < 0 or steps[-1] >= total_steps:
      raise ValueError(f'lmc.rewind_steps must lie in [0, train.steps = '
                       f'{total_steps}), got {self.rewind_steps}')
    if int(self.copies) < 2:
      raise ValueError(f'lmc.copies must be >= 2 (a barrier needs a pair), '
                       f'got {self.copies}')
    if int(self.num_alphas) < 2:
      raise ValueError('lmc.num_alphas must be >= 2 (the path has both '
                       f'endpoints), got {self.num_alphas}')
    bad = [s for s in self.splits if s not in SPLITS]
    if bad or not self.splits or len(set(self.splits)) != len(self.splits):
      raise ValueError(f'lmc.splits must be distinct names from {SPLITS}, '
                       f'got {self.splits}')
    if self.imp_levels and not self.imp_run:
      raise ValueError('lmc.imp_levels needs lmc.imp_run, the IMP run folder '
                       'to read the masks from')
    if any(int(v) < 0 for v in self.imp_levels):
      raise ValueError(f'lmc.imp_levels must be >= 0, got {self.imp_levels}')
    if self.random_masks and not self.imp_levels:
      raise ValueError('lmc.random_masks matches the masks of lmc.imp_levels '
                       'and there are none: give lmc.imp_levels')
    if not self.dense and not self.imp_levels:
      raise ValueError('nothing to analyse: set lmc.dense=True or give '
                       'lmc.imp_levels')
    if int(self.stats_batches) < 1:
      raise ValueError(f'lmc.stats_batches must be >= 1, got '
                       f'{self.stats_batches}')

  def networks(self) -> list[str]:
    """Names of the analysed networks: 'dense', 'level_LLL', ..., then
    'level_LLL_random', ... with `random_masks`."""
    levels = [f'level_{int(v):03d}' for v in self.imp_levels]
    return ((['dense'] if self.dense else []) + levels
            + ([f'{n}_random' for n in levels] if self.random_masks else []))


def random_like(key, ticket_mask: PyTree) -> PyTree:
  """A uniformly random mask with `ticket_mask`'s kept count in every
  kernel (one seed's; `key` is that seed's and level's)."""
  counts = masks_lib.counts(ticket_mask, masks_lib.is_kernel)['kept']
  return random_to_counts(key, masks_lib.ones_like(ticket_mask), counts,
                          masks_lib.is_kernel)


def copy_key(noise_key, copy: int):
  """The SGD-noise key of copy `copy` of a seed whose noise key is given."""
  return jax.random.fold_in(jax.random.fold_in(noise_key, _COPY_TAG), copy)


def copy_states(rewind_S, masks_NS: PyTree, noise_keys_S, copies: int):
  """States [N * S * C] of every copy from the seeds' rewind states W_k.

  Each copy is the seed's state at step k (weights, model state, optimizer
  state and step, so the schedule goes on from k) with network n's mask
  applied and its own noise key; copy c of seed s has the same noise key
  (data order) in every network, so networks are compared on the same SGD
  noise. Pure; the member layout is the module's.
  """
  num_networks = jax.tree.leaves(masks_NS)[0].shape[0]
  num_seeds = np.shape(rewind_S.step)[0]
  i = np.arange(num_networks * num_seeds * copies)
  n, s, c = i // (num_seeds * copies), (i // copies) % num_seeds, i % copies
  state_M = jax.tree.map(lambda v: jnp.asarray(v)[s], rewind_S)
  mask_M = jax.tree.map(lambda v: jnp.asarray(v)[n, s], masks_NS)
  return state_M._replace(
      params=jax.vmap(masks_lib.apply)(state_M.params, mask_M), mask=mask_M,
      key=jax.vmap(copy_key)(jnp.asarray(noise_keys_S)[s], jnp.asarray(c)))


def pairs(num_networks: int, num_seeds: int, copies: int
          ) -> list[tuple[int, int, int, int]]:
  """(network, seed, copy_a, copy_b) of every pair, copy_a < copy_b."""
  return [(n, s, a, b) for n in range(num_networks) for s in range(num_seeds)
          for a, b in itertools.combinations(range(copies), 2)]


def member_index(n: int, s: int, c: int, num_seeds: int, copies: int) -> int:
  return (n * num_seeds + s) * copies + c


def endpoints(final_M, pair_list, num_seeds: int, copies: int):
  """(state_a_P, state_b_P) of the pairs, gathered from the members."""
  ia = np.array([member_index(n, s, a, num_seeds, copies)
                 for n, s, a, _ in pair_list])
  ib = np.array([member_index(n, s, b, num_seeds, copies)
                 for n, s, _, b in pair_list])
  take = lambda idx: jax.tree.map(lambda v: v[idx], final_M)
  return take(ia), take(ib)


def summarize_step(k: int, networks: Sequence[str], pair_records: list,
                   member_records: list) -> list[dict]:
  """Per (network, split) statistics of rewind step k, from its records.

  `pair_records` have network, split, barrier and error/loss curves;
  `member_records` have network and the final test accuracy of each copy.
  Records flagged `diverged` (a copy whose loss blew up, and every pair it
  is in) are left out of the means and counted in `diverged_pairs` and
  `diverged_copies`, which appear only when non-zero.
  """
  out = []
  for net in networks:
    copies = [r for r in member_records if r['network'] == net]
    accs = [r['test_accuracy'] for r in copies if not r.get('diverged')]
    for split in sorted({r['split'] for r in pair_records}):
      mine = [r for r in pair_records
              if r['network'] == net and r['split'] == split]
      healthy = [r for r in mine if not r.get('diverged')]
      barrier = stats.mean_std([r['barrier'] for r in healthy])
      entry = {
          'rewind_step': k, 'network': net, 'split': split,
          'barrier': barrier, 'stable': barrier['mean'] < lmc.STABLE_BARRIER,
          'num_pairs': len(healthy),
          'final_test_accuracy': stats.mean_std(accs),
          'mean_error_curve': (np.mean([r['error'] for r in healthy],
                                       axis=0).tolist() if healthy else []),
      }
      if len(healthy) < len(mine):
        entry['diverged_pairs'] = len(mine) - len(healthy)
        entry['diverged_copies'] = len(copies) - len(accs)
      out.append(entry)
  return out
