"""The chunked training loop shared by every job: train, evaluate, report.

Jobs train in chunks of `eval_every` steps (one compiled program per chunk
length), evaluate every member on test (and validation) after each chunk,
hand the per-member numbers to a callback, and update the progress line.
"""
from typing import Callable

import jax
import numpy as np

from ticketjax import progress as progress_lib


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


def train_chunks(trainer, state_S, data, total_steps, eval_every, *,
                 on_eval: Callable[[int, dict], None], desc: str = '',
                 show_progress: bool = True,
                 on_chunk: Callable[[int, object], None] | None = None):
  """Trains to `total_steps` in chunks, evaluating after each chunk.

  `on_eval(step, per_seed)` receives {name: [S] array} of the chunk's mean
  train loss/accuracy and the evaluation metrics; then `on_chunk(step,
  state_S)`, if given, receives the state (a driver saves it there to
  resume from any chunk). Returns the final state.
  """
  bar = progress_lib.Progress(total_steps, desc, enabled=show_progress)
  step = int(np.asarray(state_S.step)[0])
  while step < total_steps:
    n = min(eval_every, total_steps - step)
    state_S, m = trainer.train(state_S, data, n)
    step += n
    # numpy means over the chunk's steps: the same summation order for any
    # member count or layout (an XLA reduction may differ in the last bit)
    per_seed = {'train_loss': np.asarray(m['loss']).mean(0),
                'train_accuracy': np.asarray(m['accuracy']).mean(0)}
    per_seed.update(evaluate_splits(trainer, state_S, data))
    per_seed = jax.tree.map(np.asarray, per_seed)
    on_eval(step, per_seed)
    if on_chunk is not None:
      on_chunk(step, state_S)
    bar.update(step, loss=float(per_seed['train_loss'].mean()),
               test_acc=float(per_seed['test_accuracy'].mean()))
  return state_S
