"""Iterative magnitude pruning with rewinding and controls (the `imp` job).

`core` holds the pure pieces (config, pruning a level, start states), `job`
the plug-in (levels, checkpoints, resume), `extend` the growth of a run to
more seeds, `report` its tables and plots, `overlap` the mask overlap
of its tickets in the cross-run report.
"""
