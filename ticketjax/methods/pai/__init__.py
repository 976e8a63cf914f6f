"""Pruning at initialization (the `pai` job): score, prune once, train.

`core` holds the config and the pure pruning of an init (any score of the
`core/scores.py` registry, layerwise or global), `job` the plug-in on the
shared run lifecycle (density x seed members in one program, table,
plots).
"""
