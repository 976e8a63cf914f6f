"""Early-Bird tickets (the `early_bird` job): stop searching once the mask
settles.

`core` holds the config and the pure pieces (the mask a rule gives now, the
bits the distance compares, the L1 penalty on BatchNorm scales), `job` the
plug-in on the shared run lifecycle: the search with its per-epoch checks,
one-shot or as early-bird IMP, then the tickets retrained from their init
next to the full-training tickets and the dense network; `report` its
title, table, plots and cross-run series.
"""
