"""Dynamic sparse training (`methods/dst`): the update rule and the job."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import dst_mnist1d
from testlib import synthetic_dataset, tiny_mlp
from ticketjax.core import distributions
from ticketjax.core import masks
from ticketjax.core import optim
from ticketjax.core import train as train_lib
from ticketjax.methods.dst import core
from ticketjax.methods.dst import job as dst_job
from ticketjax.reports import path_probe
from ticketjax.run import jobs

CFG = core.DstConfig(update_every=10, drop_fraction=0.3, end_fraction=0.75)
TOTAL = 100  # T_end = 75


def test_drop_fraction_is_the_cosine_to_t_end():
  f = lambda t: float(core.drop_fraction(t, 0.3, 80))
  assert f(0) == pytest.approx(0.3)
  assert f(40) == pytest.approx(0.15)
  assert f(80) == pytest.approx(0.0, abs=1e-7)
  assert f(20) == pytest.approx(0.15 * (1 + np.cos(np.pi / 4)))
  upd = lambda t: bool(core.is_update_step(jnp.int32(t), CFG, 75))
  assert [t for t in range(0, 101) if upd(t)] == [10, 20, 30, 40, 50, 60, 70]


def _state(variant: int):
  """A tiny MLP trained 5 steps on a 30% ERK mask (moments non-zero)."""
  model = core.wrap_model(tiny_mlp(in_dim=8, hidden=16))
  opt = optim.make_optimizer(optim.OptimizerConfig('adam', 1e-2), TOTAL)
  trainer = train_lib.Trainer(model, opt, batch_size=16)
  params, ms = model.init(jax.random.PRNGKey(0))
  kept = distributions.counts(params, 0.3, 'erk')
  mask = distributions.random_mask(jax.random.PRNGKey(1), params, kept)
  state = trainer.reset(params, dict(ms, variant=jnp.int32(variant)), mask,
                        jax.random.PRNGKey(2))
  data = train_lib.to_device(synthetic_dataset())
  state_S, _ = trainer.train(jax.tree.map(lambda x: x[None], state), data, 5)
  state = jax.tree.map(lambda x: x[0], state_S)
  grads = jax.tree.map(lambda p: jax.random.normal(
      jax.random.PRNGKey(p.size), p.shape), state.params)
  return opt, state, grads, kept


def _moments(opt, opt_state, changed):
  """[(moment leaf, changed leaf)] of every param-shaped optimizer leaf."""
  out = []
  optax.tree_utils.tree_map_params(
      opt, lambda v, c: out.append((np.asarray(v), np.asarray(c))) or v,
      opt_state, changed)
  return out


@pytest.mark.parametrize('variant', [1, 2])  # set, rigl
def test_an_update_keeps_every_count_and_zeroes_what_it_grows(variant):
  opt, state, grads, kept = _state(variant)
  t = 20
  new = core.mask_update(CFG, opt, TOTAL)(state, grads, jnp.int32(t))
  frac = float(core.drop_fraction(t, 0.3, 75))
  for path, w, g, old, m, p in zip(
      masks.leaf_paths(state.params), jax.tree.leaves(state.params),
      jax.tree.leaves(grads), jax.tree.leaves(state.mask),
      jax.tree.leaves(new.mask), jax.tree.leaves(new.params)):
    old, m, w, g, p = map(np.asarray, (old, m, w, g, p))
    if not masks.is_kernel(path, w):
      np.testing.assert_array_equal(m, old)
      continue
    assert m.sum() == old.sum() == kept[path], path
    k = int(np.floor(np.float32(frac) * np.float32(old.sum())))
    # numpy rule: keep the n - k largest |w| of the active ones
    order = np.argsort(np.where(old, np.abs(w), -1).reshape(-1),
                       kind='stable')
    keep = np.zeros(w.size, bool)
    keep[order[w.size - (old.sum() - k):]] = True
    assert (m.reshape(-1) & ~old.reshape(-1)).sum() <= k
    np.testing.assert_array_equal(m.reshape(-1) & keep, keep)  # survivors
    grown = m & ~old
    if variant == 2:  # RigL: the k largest |g| outside `keep`
      cand = np.where(keep, -1.0, np.abs(g).reshape(-1))
      want = np.zeros(w.size, bool)
      want[np.argsort(cand, kind='stable')[w.size - k:]] = True
      np.testing.assert_array_equal(m.reshape(-1), keep | want)
    assert not p[grown].any() and not p[~m].any()
    np.testing.assert_array_equal(p[m & old], w[m & old])
  changed = jax.tree.map(jnp.not_equal, new.mask, state.mask)
  before = _moments(opt, state.opt_state, changed)
  after = _moments(opt, new.opt_state, changed)
  assert len(before) == len(after) >= 8  # Adam's mu and nu of 4 leaves
  for (b, c), (a, _) in zip(before, after):
    assert not a[c].any()
    np.testing.assert_array_equal(a[~c], b[~c])
  assert any(b[c].any() for b, c in before)  # they were moving before


def test_static_members_and_off_steps_never_move():
  opt, state, grads, _ = _state(0)
  update = core.mask_update(CFG, opt, TOTAL)
  same = lambda s: jax.tree.map(np.testing.assert_array_equal, s.mask,
                                state.mask)
  same(update(state, grads, jnp.int32(20)))  # static
  _, state, grads, _ = _state(2)
  update = core.mask_update(CFG, opt, TOTAL)
  for t in (0, 15, 80):  # step 0, between updates, after T_end
    same(update(state, grads, jnp.int32(t)))


def _smoke(**dst):
  config = dst_mnist1d.get_config('smoke')
  config.progress = False
  config.train.member_group = 2
  for name, value in dst.items():
    setattr(config.dst, name, value)
  return config


def test_job_runs_and_its_members_equal_single_runs(tmp_path):
  summary = jobs.run(_smoke(), str(tmp_path / 'all'))
  assert len(summary['members']) == 3 * 2 * 2 * 2
  for m in summary['members']:
    assert m['density'] == pytest.approx(m['density_target'], abs=1e-3)
    if m['variant'] == 'static':
      assert m['jaccard_initial'] == 1.0
    else:
      assert m['jaccard_initial'] < 1.0
    assert m['empty_layers'] == 0
  assert [g['collapsed'] for g in summary['groups']] == [0] * 12
  # a member whose final mask empties a layer is counted as collapsed
  # (as PaI, CS and Early-Bird count theirs), not reported healthy
  broken = dict(summary, groups=[dict(summary['groups'][0], collapsed=2)])
  assert dst_job.table(broken).splitlines()[-1].endswith(
      '| collapsed 2/2 (an empty layer) |')
  jobs.run(_smoke(variants=('rigl',), distributions=('erk',)),
           str(tmp_path / 'one'))
  read = lambda name: [json.loads(line) for line in open(
      next((tmp_path / name).glob('dst-*/metrics.jsonl')))]
  assert [r for r in read('all') if r['variant'] == 'rigl'
          and r['distribution'] == 'erk'] == read('one')
  # `launch.probe` unwraps DST's saved state and names its members; at
  # alpha = 0 it measures member a as the job did
  final = str(next((tmp_path / 'all').glob('dst-*/checkpoints/final')))
  a, b = len(summary['members']) - 1, 5
  probe = path_probe.probe_checkpoints(f'{final}:{a}', f'{final}:{b}',
                                       mask='a', num_alphas=3)
  assert probe['a_member'] == 'RigL (erk) at density 0.05, seed 1'
  assert probe['b_member'] == 'static sparse (erk) at density 0.2, seed 1'
  assert probe['error'][0] == pytest.approx(
      1 - summary['members'][a]['final_test_accuracy'], abs=1e-6)


@pytest.mark.parametrize('field,value,match', [
    ('variants', ('rigl', 'snip'), 'dst.variants'),
    ('distributions', ('erdos',), 'dst.distributions'),
    ('densities', (0.0,), 'dst.densities'),
    ('update_every', 0, 'update_every'),
    ('drop_fraction', 1.0, 'drop_fraction'),
    ('update_every', 45, r'dst.update_every \(45 steps\) leaves no mask '
     r'update before T_end = .* = 45: SET and RigL would train as static'),
])
def test_bad_dst_config_fails_before_any_work(tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    jobs.run(_smoke(**{field: value}), str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_static_alone_needs_no_mask_update():
  dst_job.check(_smoke(variants=('static',), update_every=45))
  dst_job.check(_smoke(update_every=44))  # one update, at step 44
