"""Pytest setup: tests import `testlib` from this folder; strict JAX."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tempfile

os.environ.setdefault('MPLBACKEND', 'Agg')
# XLA:CPU spends seconds optimizing tiny programs (6.8 s for a vmapped
# MLP init, 0.8 s without); tests run small configs, so compiling fast wins.
# Set in the environment so launcher subprocesses and the notebook's kernel
# compile the same way as the tests that compare with them.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
# XLA:CPU's fusion emitters (its default code generator) compile the
# suite's programs 1.5-1.9 times slower than its older elemental emitter
# (smoke runs: ResNet-20 27 s of compiling against 18, the MLP 5.5 s against
# 3.3, the character GPT 7.0 s against 3.6), and compiling is most of the
# suite's time. The two round some values differently in the last bits:
# the golden files were captured with XLA's default, so a bit-for-bit golden
# check or capture (tests/golden/README.md) keeps it, and so do the
# processes of the cross-layout bitwise test (sharding_test.py).
if '1' not in (os.environ.get('TICKETJAX_GOLDEN_BITWISE'),
               os.environ.get('TICKETJAX_UPDATE_GOLDEN')):
  os.environ['XLA_FLAGS'] = ' '.join(filter(None, (
      os.environ.get('XLA_FLAGS'), '--xla_cpu_use_fusion_emitters=false')))
# Tests prepare MNIST-1D in a throwaway data dir, never in the user's.
os.environ['TFDS_DATA_DIR'] = tempfile.mkdtemp(prefix='ticketjax_tfds_')

# Jobs rebuild their Trainer (and so their jitted programs) on every
# `experiment.run`; one persistent compilation cache for the whole session
# (both xdist workers and every launcher subprocess, through the
# environment) turns the repeated compiles of identical programs into disk
# reads. A half-written entry read by another process is a warning and a
# recompile, never an error (jax's `_cache_read`).
_RUN = os.environ.get('PYTEST_XDIST_TESTRUNUID') or str(os.getpid())
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(
    tempfile.gettempdir(), f'ticketjax_jit_cache_{_RUN}'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import jax  # pylint: disable=g-import-not-at-top

# Catch seed-axis broadcasting bugs: no implicit rank promotion.
jax.config.update('jax_numpy_rank_promotion', 'raise')

# The longest tests (30-130 s each on 2 cores) run first, so that no worker
# is left running one of them alone at the end of the session while the
# other is idle (xdist's worksteal rebalances only the short ones).
SLOW_FIRST = (
    'sharding_test.py::test_imp_search_records_are_identical',
    'experiment_test.py::test_cifar10_imp_smoke_variants',
    'grid_test.py::test_lr_by_rate_grid',
    'dst_test.py::test_job_runs_and_its_members_equal_single_runs',
    'real_data_test.py::',  # the whole module: it shares one fixture
    'lm_imp_test.py::test_kill_and_resume',
    'grid_test.py::test_rewind_step_grid_equals',
)


def pytest_collection_modifyitems(items):
  """Moves the `SLOW_FIRST` tests to the front, longest first."""
  def rank(item):
    return next((i for i, s in enumerate(SLOW_FIRST) if s in item.nodeid),
                len(SLOW_FIRST))
  items.sort(key=rank)
