"""The chunked training loop shared by every job: train, evaluate, report.

Jobs train in chunks of `eval_every` steps (one compiled program per chunk
length), evaluate every member on test (and validation) after each chunk,
hand the per-member numbers to a callback, and update the progress line.
"""
from typing import Callable

import jax
import numpy as np

from ticketjax.run import progress as progress_lib


def evaluate_splits(trainer, state_S, data) -> dict:
  """{'test_loss': [S], 'test_accuracy': [S], 'val_...' if a val split}."""
  out = {}
  splits = [('test', data.x_test, data.y_test)]
  if data.x_val.shape[0]:
    splits.append(('val', data.x_val, data.y_val))
  for name, x, y in splits:
    ev = trainer.evaluate(state_S, x, y)
    out[f'{name}_loss'] = ev['loss']
    out[f'{name}_accuracy'] = ev['accuracy']
  return out


def train_means(metrics_TxS) -> dict:
  """{'train_loss': [S], 'train_accuracy': [S]}: means over a chunk's steps.

  numpy means: the same summation order for any member count or layout (an
  XLA reduction may differ in the last bit). With an 'active' [T, S] entry
  each member's mean covers its active steps (bitwise the mean of a chunk
  it trained whole: inactive steps add exact zeros), and 'trained_steps'
  [S] is added.
  """
  loss, acc = (np.asarray(metrics_TxS[k]) for k in ('loss', 'accuracy'))
  if 'active' not in metrics_TxS:
    return {'train_loss': loss.mean(0), 'train_accuracy': acc.mean(0)}
  active = np.asarray(metrics_TxS['active'])
  count = active.sum(0)
  with np.errstate(invalid='ignore'):  # 0 / 0: NaN for a waiting member
    means = {name: np.where(active, x, 0).sum(0) / np.float32(count)
             for name, x in (('train_loss', loss), ('train_accuracy', acc))}
  return {**means, 'trained_steps': count}


def chunk_ends(start: int, total_steps: int, eval_every: int,
               stops=None) -> list[int]:
  """The steps after `start` where chunks end: every multiple of
  `eval_every` (or each of `stops`, if given) up to `total_steps`, and
  `total_steps`."""
  if stops is None:
    ends, step = [], start
    while step < total_steps:
      step = min(step + eval_every, total_steps)
      ends.append(step)
    return ends
  return sorted({int(s) for s in stops if start < s < total_steps}
                | {total_steps} if start < total_steps else set())


def train_chunks(trainer, state_S, data, total_steps, eval_every, *,
                 on_eval: Callable[[int, dict], None] | None = None,
                 desc: str = '', show_progress: bool = True,
                 on_chunk: Callable[[int, object], None] | None = None,
                 before_chunk: Callable[[int, object], object] | None = None,
                 stops=None, evaluate: bool = True):
  """Trains to `total_steps` in chunks, evaluating after each chunk.

  Chunks end every `eval_every` steps, or at each step of `stops` if given
  (an LMC parent's rewind steps). Before a chunk, `before_chunk(step,
  state_S)`, if given, returns the state to train (CS sets its beta there;
  a method that moves its masks during training changes them there). After
  it, `on_eval(step, per_seed)` receives {name: [S] array} of the chunk's
  mean train loss/accuracy and, with `evaluate`, the evaluation metrics;
  then `on_chunk(step, state_S)`, if given, receives the state (a driver
  saves it there to resume from any chunk). Returns the final state.

  Members may start at different steps (`Trainer.train`): chunks then run
  from the earliest, and `per_seed` also holds 'trained_steps' [S], the
  steps each member trained in the chunk (0: it is still waiting, and its
  train means are NaN); the train means cover the steps it trained.
  """
  step = int(np.asarray(state_S.step).min())
  # the progress line: train loss and the run's metric, a language model's
  # (next-token labels) test perplexity, else its test accuracy
  shown = [('train_loss', 'loss', np.asarray),
           ('test_loss', 'test_ppl', np.exp) if np.ndim(data.y_train) > 1
           else ('test_accuracy', 'test_acc', np.asarray)]
  bar = progress_lib.Progress(total_steps, desc, enabled=show_progress,
                              start=step)
  for end in chunk_ends(step, total_steps, eval_every, stops):
    if before_chunk is not None:
      state_S = before_chunk(step, state_S)
    state_S, m = trainer.train(state_S, data, end - step)
    step = end
    per_seed = train_means(m)
    if evaluate:
      per_seed.update(evaluate_splits(trainer, state_S, data))
    per_seed = jax.tree.map(np.asarray, per_seed)
    # the progress line averages the members that trained in this chunk
    trained = (per_seed['trained_steps'] > 0 if 'trained_steps' in per_seed
               else slice(None))
    # (taken before the callbacks, which may change per_seed)
    scalars = {short: float(np.mean(value(per_seed[k][trained])))
               for k, short, value in shown if k in per_seed}
    if on_eval is not None:
      on_eval(step, per_seed)
    if on_chunk is not None:
      on_chunk(step, state_S)
    bar.update(step, **scalars)
  return state_S
