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

import jax  # pylint: disable=g-import-not-at-top

# Catch seed-axis broadcasting bugs: no implicit rank promotion.
jax.config.update('jax_numpy_rank_promotion', 'raise')

# Jobs rebuild their Trainer (and so their jitted programs) on every
# `experiment.run`; a per-worker persistent compilation cache turns the
# repeated compiles of identical programs into disk reads.
jax.config.update('jax_compilation_cache_dir',
                  tempfile.mkdtemp(prefix='ticketjax_jit_cache_'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
