"""Early-Bird stopping rule (`core/early_bird.py`) on hand-made masks."""
import numpy as np
import pytest

from ticketjax.core import early_bird


def _mask(bits):
  """A one-kernel mask of 20 entries from a string of 0/1."""
  return {'l': {'kernel': np.array([c == '1' for c in bits]).reshape(4, 5)}}


BASE = '11110000111100001111'


def _flip(bits, idx):
  return ''.join(('0' if b == '1' else '1') if i in idx else b
                 for i, b in enumerate(bits))


def test_distance_is_the_fraction_of_differing_bits():
  fifo = early_bird.push((), _mask(BASE))
  fifo = early_bird.push(fifo, _mask(_flip(BASE, {0, 5, 9})))
  assert early_bird.check(fifo, window=2).distances == pytest.approx(
      (3 / 20,))


def test_declared_at_the_first_epoch_within_epsilon_of_the_last_four():
  steps = [{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10}, {11}, {12}, {11}, {12},
           {13}]
  seq = [BASE]
  for idx in steps:
    seq.append(_flip(seq[-1], idx))
  masks = [_mask(s) for s in seq]
  # by hand (bits of 20), epoch t against t-4 .. t-1:
  #  t=6: e6 = e3^{12}; against e2 it differs in {8, 9, 10, 12}: 0.2
  #  t=7: e7 = e3: against e3, e4, e5, e6: 0, 1, 2, 1 -> max 0.1: declared
  #  t=8: e8 = e3^{13}: against e5 = e3^{11,12}: 3 bits -> not
  verdicts, fifo = [], ()
  for m in masks:
    fifo = early_bird.push(fifo, m)
    verdicts.append(early_bird.check(fifo))
  assert [v.declared for v in verdicts] == [False] * 7 + [True, False]
  assert verdicts[7].distances == pytest.approx((0, 1 / 20, 2 / 20, 1 / 20))
  assert verdicts[6].distances[0] == pytest.approx(4 / 20)
  assert early_bird.first_declared(masks) == 7
  assert early_bird.first_declared(masks, epsilon=0.09) is None
  d = early_bird.distance_matrix(masks)
  assert d[0, 1] == pytest.approx(4 / 20) and (np.diag(d) == 0).all()


def test_a_short_window_never_declares_and_a_bad_window_is_refused():
  fifo = early_bird.push((), _mask(BASE))
  fifo = early_bird.push(fifo, _mask(BASE))
  assert not early_bird.check(fifo).declared  # 2 of 5 masks
  with pytest.raises(ValueError, match='>= 2 masks'):
    early_bird.check(fifo, window=1)
