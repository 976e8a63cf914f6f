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
