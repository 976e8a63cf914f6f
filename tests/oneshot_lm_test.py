"""Block-by-block one-shot pruning of a decoder LM (`methods/oneshot/core`)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ticketjax.core import oneshot
from ticketjax.methods.oneshot import core
from ticketjax.models import transformer

CFG = {
    'llama': transformer.DecoderConfig(
        vocab_size=50, context=16, d_model=32, num_layers=2, num_heads=4,
        num_kv_heads=2, d_ff=64, style='llama'),
    'gpt2': transformer.DecoderConfig(
        vocab_size=50, context=16, d_model=32, num_layers=2, num_heads=4,
        num_kv_heads=4, d_ff=64, style='gpt2'),
}


def _setup(style):
  cfg = CFG[style]
  params = transformer.init(cfg, jax.random.PRNGKey(0))
  calib = jax.random.randint(jax.random.PRNGKey(1), (12, 16), 0, 50)
  return cfg, params, calib


def _kernels(cfg, tree):
  return {f'{transformer.block_name(i)}/{p}':
          core._get(tree[transformer.block_name(i)], p + '/kernel')
          for i in range(cfg.num_layers)
          for p in transformer.BLOCK_KERNELS[cfg.style]}


@pytest.mark.parametrize('style', ['llama', 'gpt2'])
@pytest.mark.parametrize('method', core.METHODS)
@pytest.mark.parametrize('target', [0.5, '2:4'])
def test_every_projection_keeps_its_count_and_nothing_else_changes(
    style, method, target):
  cfg, params, calib = _setup(style)
  pruned, mask = core.prune(cfg, params, calib, method, target, batch=5,
                            blocksize=16)
  for path, keep in _kernels(cfg, mask).items():
    keep = np.asarray(keep)
    if target == 0.5:
      # Wanda per output; magnitude per matrix; SparseGPT per 16 inputs
      assert keep.sum() == keep.size // 2, path
      if method == 'wanda':
        assert (keep.sum(0) == keep.shape[0] // 2).all(), path
    else:  # 2 of every 4 inputs of every output
      groups = keep.reshape(keep.shape[0] // 4, 4, keep.shape[1])
      assert (groups.sum(1) == 2).all(), path
    assert not np.any(np.asarray(_kernels(cfg, pruned)[path])[~keep])
  # embeddings and norms untouched, their masks all True
  flat_p, flat_o = transformer.flatten(pruned), transformer.flatten(params)
  flat_m = transformer.flatten(mask)
  for name, value in flat_o.items():
    if not name.endswith('kernel'):
      np.testing.assert_array_equal(flat_p[name], value)
      assert np.all(flat_m[name])
    elif method != 'sparsegpt':  # no weight update: kept weights as they were
      keep = np.asarray(flat_m[name])
      np.testing.assert_array_equal(np.asarray(flat_p[name])[keep],
                                    np.asarray(value)[keep])


def test_statistics_come_from_the_pruned_previous_block():
  """Block 1's Wanda statistics are those of block 0's *pruned* outputs:
  pruning block 1 of the result again with them is a fixed point, and the
  magnitude driver equals per-kernel magnitude (no statistics at all)."""
  cfg, params, calib = _setup('llama')
  pruned, mask = core.prune(cfg, params, calib, 'wanda', 0.5)
  h = transformer.embed(cfg, pruned, calib)
  h = transformer.block(cfg, pruned['block_00'], h)
  _, inputs = transformer.block_with_inputs(cfg, params['block_01'], h)
  for path in transformer.BLOCK_KERNELS['llama']:
    stats = oneshot.sq_norm_add(oneshot.sq_norm_init(
        inputs[path].shape[-1]), inputs[path])
    want = oneshot.wanda(core._get(params['block_01'], path + '/kernel'),
                         stats, 0.5)
    np.testing.assert_array_equal(
        core._get(mask['block_01'], path + '/kernel'), want)
  _, mag = core.prune(cfg, params, calib, 'magnitude', 0.5)
  for path, keep in _kernels(cfg, mag).items():
    block, rest = path.split('/', 1)
    np.testing.assert_array_equal(keep, oneshot.magnitude(
        core._get(params[block], rest + '/kernel'), 0.5))


def test_shared_inputs_are_really_shared():
  cfg, params, calib = _setup('llama')
  h = transformer.embed(cfg, params, calib)
  _, inputs = transformer.block_with_inputs(cfg, params['block_00'], h)
  for path, same in core.SAME_INPUT.items():
    np.testing.assert_array_equal(inputs[path], inputs[same])


def test_sparsegpt_reconstructs_the_first_block_better_than_magnitude():
  cfg, params, calib = _setup('llama')
  h = transformer.embed(cfg, params, calib)
  dense = transformer.block(cfg, params['block_00'], h)
  err = {}
  for method in core.METHODS:
    pruned, _ = core.prune(cfg, params, calib, method, 0.5, blocksize=16)
    out = transformer.block(cfg, pruned['block_00'], h)
    err[method] = float(jnp.sum((out - dense) ** 2))
  assert err['sparsegpt'] < err['magnitude'], err


def test_perplexity_is_exp_of_the_mean_token_loss():
  cfg, params, calib = _setup('gpt2')
  x, y = calib[:, :-1], calib[:, 1:]
  got = core.perplexity(cfg, params, x, y, batch=5)
  logits = np.asarray(transformer.apply(cfg, params, x), np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, np.asarray(y)[..., None], -1).mean()
  assert got['loss'] == pytest.approx(nll, rel=1e-5)
  assert got['perplexity'] == pytest.approx(np.exp(nll), rel=1e-5)
  assert got['tokens'] == y.size


def test_bad_method_or_target_is_refused_before_any_work():
  cfg, params, calib = _setup('llama')
  with pytest.raises(ValueError, match='valid methods'):
    core.prune(cfg, params, calib, 'obs', 0.5)
  with pytest.raises(ValueError, match='valid targets'):
    core.prune(cfg, params, calib, 'wanda', 1.5)
