"""Pytest setup: tests import `testlib` from this folder; strict JAX."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault('MPLBACKEND', 'Agg')

import jax  # pylint: disable=g-import-not-at-top

# Catch seed-axis broadcasting bugs: no implicit rank promotion.
jax.config.update('jax_numpy_rank_promotion', 'raise')
