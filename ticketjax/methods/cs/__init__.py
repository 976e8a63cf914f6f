"""Continuous Sparsification, a vmapped lambda sweep (the `cs` job).

`core` holds the pure pieces (soft masks, beta schedule, penalty), `job`
the plug-in on `lifecycle.Run` (rounds, ticket retraining, resume),
`report` the summary, table and plot (and, in the cross-run report, the
overlap of its tickets with IMP's).
"""
