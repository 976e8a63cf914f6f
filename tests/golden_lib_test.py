"""golden_lib: what passes, what fails and what the failure says."""
import json
import os

import pytest

import golden_lib


def _run_dir(tmp_path, change):
  """A run folder holding the dense smoke golden run, after `change`."""
  with open(os.path.join(golden_lib.GOLDEN, 'dense_mnist1d.smoke.json')) as f:
    run = json.load(f)
  change(run)
  run_dir = tmp_path / 'dense-0123456789ab'
  run_dir.mkdir()
  with open(run_dir / 'metrics.jsonl', 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in run['records'])
  with open(run_dir / 'summary.json', 'w') as f:
    json.dump(dict(run['summary'], run_dir=str(run_dir)), f)
  return str(run_dir)


def _set(key, value):
  return lambda run: run['records'][1].update({key: value})


@pytest.mark.parametrize('change,bitwise,error', [
    (lambda run: None, True, None),
    (_set('test_loss', 1.7), False, None),  # golden 1.699: within rtol
    (_set('test_loss', 1.7), True, 'not bit-for-bit'),
    (_set('test_loss', 1.8), False,
     r"\['records'\]\[1\]\['test_loss'\]: golden 1.69895.*, got 1.8"),
    (_set('test_accuracy', 0.34), False,
     r"\['records'\]\[1\]\['test_accuracy'\]: golden 0.3000.*, got 0.34"),
    (_set('step', 31), False, r"\['step'\]: golden 30, got 31"),
    (_set('step', 30.0), False, r"\['step'\]: golden 30, got 30.0"),
    (lambda run: run['records'].pop(), False,
     r"\['records'\]\['<len>'\]: golden 4, got 3"),
    (lambda run: run['summary'].pop('steps'), False, r"\['<keys>'\]"),
])
def test_check(tmp_path, monkeypatch, change, bitwise, error):
  monkeypatch.delenv('TICKETJAX_UPDATE_GOLDEN', raising=False)
  monkeypatch.setenv('TICKETJAX_GOLDEN_BITWISE', '1' if bitwise else '0')
  run_dir = _run_dir(tmp_path, change)
  if error is None:
    golden_lib.check('dense_mnist1d.smoke', run_dir)
  else:
    with pytest.raises(AssertionError, match=error) as info:
      golden_lib.check('dense_mnist1d.smoke', run_dir)
    assert 'dense_mnist1d.smoke.json' in str(info.value)


def test_a_run_without_golden_file_says_how_to_write_one(tmp_path,
                                                         monkeypatch):
  monkeypatch.delenv('TICKETJAX_UPDATE_GOLDEN', raising=False)
  run_dir = _run_dir(tmp_path, lambda run: None)
  with pytest.raises(AssertionError, match='TICKETJAX_UPDATE_GOLDEN=1'):
    golden_lib.check('new_config.smoke', run_dir)


def test_on_an_accelerator_only_what_training_does_not_compute_counts(
    tmp_path, monkeypatch):
  """A GPU's TF32 matmuls move accuracies and losses far past CPU rounding:
  off the CPU those are skipped, while steps and structure still count."""
  monkeypatch.delenv('TICKETJAX_UPDATE_GOLDEN', raising=False)
  monkeypatch.setenv('TICKETJAX_GOLDEN_BITWISE', '1')
  def trained_elsewhere(run):
    for rec in run['records']:
      rec.update(test_accuracy=0.9, test_loss=0.1, train_loss=0.2)
    run['summary']['test_accuracy']['mean'] = 0.9
  run_dir = _run_dir(tmp_path, trained_elsewhere)
  golden_lib.check('dense_mnist1d.smoke', run_dir, backend='gpu')
  with pytest.raises(AssertionError, match='test_accuracy'):
    golden_lib.check('dense_mnist1d.smoke', run_dir, backend='cpu')
  (tmp_path / 'b').mkdir()
  moved = _run_dir(tmp_path / 'b', _set('step', 31))
  with pytest.raises(AssertionError, match=r"\['step'\]: golden 30, got 31"):
    golden_lib.check('dense_mnist1d.smoke', moved, backend='gpu')
