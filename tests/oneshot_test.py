"""One-shot pruners (`core/oneshot.py`): OBS exactness, counts, orderings."""
import numpy as np
import pytest

from ticketjax.core import oneshot

N_IN, N_OUT, TOKENS = 64, 32, 512


def _layer(seed, dead=()):
  """A random (in, out) kernel and correlated inputs X (tokens, in)."""
  rng = np.random.default_rng(seed)
  mix = rng.normal(size=(N_IN, N_IN)) / np.sqrt(N_IN)
  x = rng.normal(size=(TOKENS, N_IN)) @ mix + 0.3 * rng.normal(
      size=(TOKENS, N_IN))
  x *= rng.uniform(0.2, 3.0, size=(1, N_IN))  # unequal feature scales
  x[:, list(dead)] = 0.0
  kernel = rng.normal(size=(N_IN, N_OUT))
  return kernel.astype(np.float32), x.astype(np.float32)


def _stats(x, batches=4):
  """(H, sq_norm) accumulated batch by batch, as a calibration pass does."""
  h = oneshot.hessian_init(x.shape[-1])
  s = oneshot.sq_norm_init(x.shape[-1])
  for part in np.array_split(x, batches):
    h = oneshot.hessian_add(h, part)
    s = oneshot.sq_norm_add(s, part)
  return h, s


def _error(x, kernel, new_kernel):
  """‖X K − X K̂‖², in float64."""
  x = np.asarray(x, np.float64)
  diff = x @ np.asarray(kernel, np.float64) - x @ np.asarray(
      new_kernel, np.float64)
  return float(np.sum(diff ** 2))


def _stable_keep(scores, kept):
  """Kept flags a stable ascending argsort gives (earlier pruned first)."""
  order = np.argsort(scores, kind='stable')
  keep = np.zeros(scores.size, bool)
  keep[order[scores.size - kept:]] = True
  return keep


def _reference_sparsegpt(kernel, h, sparsity, n, m, blocksize, percdamp):
  """The algorithm of LM.md 2.2 in float64 numpy, paper layout W (out, in).

  Columns one by one in Python; the same exact counts and tie rule as
  `oneshot` (a stable sort instead of the `<=` threshold).
  """
  w = np.asarray(kernel, np.float64).T.copy()
  h = np.asarray(h, np.float64).copy()
  cols = w.shape[1]
  dead = np.diag(h) == 0
  h[dead, dead] = 1.0
  w[:, dead] = 0.0
  h[np.diag_indices(cols)] += percdamp * np.mean(np.diag(h))
  u = np.linalg.cholesky(np.linalg.inv(h)).T  # H⁻¹ = UᵀU, U upper
  mask = np.ones_like(w, bool)
  for i1 in range(0, cols, blocksize):
    i2 = min(i1 + blocksize, cols)
    w1, u1 = w[:, i1:i2].copy(), u[i1:i2, i1:i2]
    err1 = np.zeros_like(w1)
    score = w1 ** 2 / np.diag(u1)[None, :] ** 2
    if not n:
      m1 = _stable_keep(score.T.reshape(-1),
                        score.size - int(score.size * sparsity))
      m1 = m1.reshape(score.T.shape).T
    else:
      m1 = np.zeros_like(w1, bool)
    for i in range(i2 - i1):
      if n and i % m == 0:
        s = w1[:, i:i + m] ** 2 / np.diag(u1)[None, i:i + m] ** 2
        for r in range(w1.shape[0]):
          m1[r, i:i + m] = _stable_keep(s[r], n)
      q = np.where(m1[:, i], w1[:, i], 0.0)
      err = (w1[:, i] - q) / u1[i, i]
      w1[:, i:] -= np.outer(err, u1[i, i:])
      w1[:, i] = q
      err1[:, i] = err
    w[:, i1:i2] = w1
    mask[:, i1:i2] = m1
    w[:, i2:] -= err1 @ u[i1:i2, i2:]
  return w.T, mask.T


def _group_counts(mask, m):
  """Kept per group of M inputs per output: (in // m, out)."""
  return np.asarray(mask).reshape(-1, m, mask.shape[1]).sum(axis=1)


# ------------------------------------------------------------ OBS exactness

H3 = np.array([[4.0, 1.5, 0.5],
               [1.5, 3.0, -0.8],
               [0.5, -0.8, 2.0]])


def test_sparsegpt_is_the_optimal_brain_surgeon_update():
  w = np.array([0.1, 1.0, -1.2])
  h_inv = np.linalg.inv(H3)
  saliency = w ** 2 / np.diag(h_inv)
  assert np.argmin(saliency) == 0  # OBS prunes w_0 ...
  # ... and so does SparseGPT's w² / U_jj², U_jj² = [H_{j:,j:}⁻¹]_jj
  sgpt = [w[j] ** 2 / np.linalg.inv(H3[j:, j:])[0, 0] for j in range(3)]
  assert np.argmin(sgpt) == 0

  new, mask = oneshot.sparsegpt(w[:, None].astype(np.float32),
                                H3.astype(np.float32), 1 / 3, percdamp=0.0)
  new = np.asarray(new)[:, 0]
  np.testing.assert_array_equal(np.asarray(mask)[:, 0], [False, True, True])
  assert new[0] == 0.0
  obs = w - (w[0] / h_inv[0, 0]) * h_inv[:, 0]
  np.testing.assert_allclose(new, obs, rtol=1e-5, atol=1e-6)
  # the OBS update is the least-squares optimum with w_0 = 0 (XᵀX = H)
  x = np.linalg.cholesky(H3).T
  best = np.linalg.lstsq(x[:, 1:], x @ w, rcond=None)[0]
  np.testing.assert_allclose(new[1:], best, rtol=1e-5, atol=1e-6)


def test_sparsegpt_freezes_the_inputs_before_the_pruned_one():
  """Pruning input 1 is OBS on inputs 1.. with input 0 already final."""
  w = np.array([1.0, 0.1, -1.2])
  sgpt = [w[j] ** 2 / np.linalg.inv(H3[j:, j:])[0, 0] for j in range(3)]
  assert np.argmin(sgpt) == 1
  new, mask = oneshot.sparsegpt(w[:, None].astype(np.float32),
                                H3.astype(np.float32), 1 / 3, percdamp=0.0)
  new = np.asarray(new)[:, 0]
  np.testing.assert_array_equal(np.asarray(mask)[:, 0], [True, False, True])
  sub_inv = np.linalg.inv(H3[1:, 1:])
  want = w[1:] - (w[1] / sub_inv[0, 0]) * sub_inv[:, 0]
  np.testing.assert_allclose(new, [w[0], *want], rtol=1e-5, atol=1e-6)
  assert new[1] == 0.0


@pytest.mark.parametrize('target,blocksize', [(0.5, 24), ('2:4', 24),
                                              (0.3, 128)])
def test_sparsegpt_matches_a_column_by_column_reference(target, blocksize):
  kernel, x = _layer(7, dead=(3,))
  h = x.astype(np.float64).T @ x
  t = oneshot.parse_target(target)
  want_k, want_m = _reference_sparsegpt(kernel, h, t.sparsity, t.n, t.m,
                                        blocksize, 0.01)
  new, mask = oneshot.sparsegpt(kernel, h.astype(np.float32), target,
                                blocksize=blocksize)
  np.testing.assert_array_equal(np.asarray(mask), want_m)
  np.testing.assert_allclose(np.asarray(new), want_k, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------- orderings


@pytest.mark.parametrize('target', [0.5, '2:4'])
@pytest.mark.parametrize('blocksize', [128, 24])
def test_sparsegpt_reconstructs_better_than_magnitude_and_wanda(
    target, blocksize):
  for seed in range(3):
    kernel, x = _layer(seed)
    h, s = _stats(x)
    new, mask = oneshot.sparsegpt(kernel, h, target, blocksize=blocksize)
    mag = kernel * np.asarray(oneshot.magnitude(kernel, target))
    wan = kernel * np.asarray(oneshot.wanda(kernel, s, target))
    assert np.asarray(mask).sum() == np.asarray(mag != 0).sum()
    ours = _error(x, kernel, new)
    assert ours < _error(x, kernel, mag), seed
    assert ours < _error(x, kernel, wan), seed


def test_wanda_beats_magnitude_on_unequal_feature_scales():
  kernel, x = _layer(0)
  _, s = _stats(x)
  for target in (0.5, '2:4'):
    wan = kernel * np.asarray(oneshot.wanda(kernel, s, target))
    mag = kernel * np.asarray(oneshot.magnitude(kernel, target))
    assert _error(x, kernel, wan) < _error(x, kernel, mag)


# ------------------------------------------------------------------- counts


def _tied_kernel(seed=3):
  """Integer-valued weights: many ties in |w|."""
  rng = np.random.default_rng(seed)
  return rng.integers(-3, 4, size=(N_IN, N_OUT)).astype(np.float32)


def test_magnitude_prunes_exactly_per_matrix_with_ties():
  kernel = _tied_kernel()
  for s in (0.3, 0.77):
    mask = np.asarray(oneshot.magnitude(kernel, s))
    pruned = int(kernel.size * s)
    assert (~mask).sum() == pruned
    want = _stable_keep(np.abs(kernel).reshape(-1), kernel.size - pruned)
    np.testing.assert_array_equal(mask.reshape(-1), want)


def test_wanda_prunes_exactly_per_output_with_ties():
  kernel = _tied_kernel()
  sq_norm = np.ones(N_IN, np.float32)
  sq_norm[::5] = 4.0
  mask = np.asarray(oneshot.wanda(kernel, sq_norm, 0.3))
  pruned = int(N_IN * 0.3)
  np.testing.assert_array_equal((~mask).sum(axis=0), pruned)
  score = np.abs(kernel) * np.sqrt(sq_norm)[:, None]
  for j in range(N_OUT):
    np.testing.assert_array_equal(mask[:, j],
                                  _stable_keep(score[:, j], N_IN - pruned))


@pytest.mark.parametrize('nm', ['2:4', '3:8'])
def test_every_nm_mask_keeps_n_per_group_of_m_inputs(nm):
  n, m = (int(v) for v in nm.split(':'))
  kernel, x = _layer(1)
  kernel[:8] = _tied_kernel()[:8]
  h, s = _stats(x)
  new, sgpt = oneshot.sparsegpt(kernel, h, nm, blocksize=16)
  for mask in (oneshot.magnitude(kernel, nm), oneshot.wanda(kernel, s, nm),
               sgpt):
    np.testing.assert_array_equal(_group_counts(mask, m), n)
  assert (np.asarray(new)[~np.asarray(sgpt)] == 0).all()


def test_sparsegpt_prunes_exactly_per_block():
  kernel = _tied_kernel()
  h = np.eye(N_IN, dtype=np.float32)  # equal U_jj: the scores tie too
  new, mask = oneshot.sparsegpt(kernel, h, 0.3, blocksize=24)
  mask, new = np.asarray(mask), np.asarray(new)
  for i1, width in ((0, 24), (24, 24), (48, 16)):  # the last one narrower
    block = mask[i1:i1 + width]
    assert (~block).sum() == int(block.size * 0.3)
  assert (new[~mask] == 0).all()


# ------------------------------------------------------------ X = identity


@pytest.mark.parametrize('target', [0.5, '2:4'])
def test_identity_inputs_reduce_to_magnitude(target):
  kernel, _ = _layer(2)
  x = np.eye(N_IN, dtype=np.float32)
  h, s = _stats(x, batches=2)
  wan = np.asarray(oneshot.wanda(kernel, s, target))
  t = oneshot.parse_target(target)
  if t.is_nm:
    np.testing.assert_array_equal(wan, oneshot.magnitude(kernel, target))
  else:
    for j in range(N_OUT):  # magnitude per output
      np.testing.assert_array_equal(wan[:, j], _stable_keep(
          np.abs(kernel[:, j]), N_IN - int(N_IN * t.sparsity)))
  new, mask = oneshot.sparsegpt(kernel, h, target, blocksize=24)
  new, mask = np.asarray(new), np.asarray(mask)
  for i1 in range(0, N_IN, 24):
    block = kernel[i1:i1 + 24]
    np.testing.assert_array_equal(mask[i1:i1 + 24],
                                  oneshot.magnitude(block, target))
  np.testing.assert_array_equal(new, np.where(mask, kernel, 0))  # unchanged


# ------------------------------------------------------------ dead inputs


@pytest.mark.parametrize('target', [0.5, '2:4'])
def test_dead_inputs_are_zeroed_and_pruned_first(target):
  dead = (5, 40)
  kernel, x = _layer(4, dead=dead)
  h, _ = _stats(x)
  assert (np.diag(np.asarray(h.xtx))[list(dead)] == 0).all()
  new, mask = oneshot.sparsegpt(kernel, h, target, blocksize=24)
  new, mask = np.asarray(new), np.asarray(mask)
  assert np.isfinite(new).all()
  assert (new[list(dead)] == 0).all() and not mask[list(dead)].any()
  mag = kernel * np.asarray(oneshot.magnitude(kernel, target))
  assert _error(x, kernel, new) < _error(x, kernel, mag)


# -------------------------------------------------------------- statistics


def test_statistics_accumulate_the_sums_over_batches():
  _, x = _layer(5)
  h, s = _stats(x.reshape(8, 64, N_IN), batches=3)  # (batch, seq, in)
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(h.xtx, x64.T @ x64, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(s.sq_norm, (x64 ** 2).sum(axis=0), rtol=1e-5)
  assert int(h.count) == int(s.count) == TOKENS


def test_sparsegpt_ignores_the_scale_of_the_hessian():
  kernel, x = _layer(6)
  h, _ = _stats(x)
  new, mask = oneshot.sparsegpt(kernel, h.xtx, 0.5)
  new2, mask2 = oneshot.sparsegpt(kernel, h.xtx * 2 / int(h.count), 0.5)
  np.testing.assert_array_equal(mask, mask2)
  np.testing.assert_allclose(new, new2, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize('target', [1.0, -0.1, float('nan'), True, None,
                                    'unstructured', 'channels', '4:2',
                                    '0:4', '0.5', 'abc'])
def test_bad_targets_raise_one_value_error(target):
  kernel = _tied_kernel()
  for call in (lambda: oneshot.magnitude(kernel, target),
               lambda: oneshot.wanda(kernel, np.ones(N_IN), target),
               lambda: oneshot.sparsegpt(kernel, np.eye(N_IN), target)):
    with pytest.raises(ValueError, match='valid targets are'):
      call()


def test_targets_that_do_not_fit_the_layer_raise():
  kernel = np.ones((66, 4), np.float32)
  with pytest.raises(ValueError, match='66 inputs'):
    oneshot.magnitude(kernel, '2:4')
  kernel = _tied_kernel()
  with pytest.raises(ValueError, match='blocksize'):
    oneshot.sparsegpt(kernel, np.eye(N_IN), '2:4', blocksize=6)
  with pytest.raises(ValueError, match='hessian must have shape'):
    oneshot.sparsegpt(kernel, np.eye(N_IN - 1), 0.5)
  with pytest.raises(ValueError, match='percdamp'):
    oneshot.sparsegpt(kernel, np.eye(N_IN), 0.5, percdamp=-1.0)
  assert oneshot.parse_target('2:4') == oneshot.Target(n=2, m=4)
  assert oneshot.parse_target(0.5) == oneshot.Target(sparsity=0.5)


def test_sparsegpt_compiles_once_per_shape_target_and_blocksize():
  kernel = _tied_kernel()[:16, :8]
  h = np.eye(16, dtype=np.float32)
  program = oneshot._sparsegpt  # pylint: disable=protected-access
  before = program._cache_size()
  for scale in (1.0, 2.0, 3.0):  # new values, new percdamp: no new program
    oneshot.sparsegpt(kernel * scale, h * scale, 0.25, blocksize=8,
                      percdamp=0.01 * scale)
  assert program._cache_size() == before + 1
