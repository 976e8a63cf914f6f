"""Linear mode connectivity: the instability analysis (the `lmc` job).

`path` holds the interpolation math (alphas, barrier, path metrics),
`core` the copy layout and summaries, `job` the plug-in (parent trajectory,
copies per rewind step, pairwise barriers, resume), `report` its table and
plots (and its section of the cross-run report).
"""
