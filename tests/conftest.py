"""Pytest setup: tests import `testlib` from this folder; strict JAX."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tempfile

os.environ.setdefault('MPLBACKEND', 'Agg')
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
