"""Ticket transfer (the `transfer` job): source tickets on target data.

`core` holds the config and the branches' masks, `job` the plug-in (reads
two IMP runs, trains level x branch x seed members in one program),
`report` its table and plots.
"""
