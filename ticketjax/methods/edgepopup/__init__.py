"""Edge-Popup supermasks of frozen random networks (the `edgepopup` job).

`core` holds the pure pieces (exact per-layer counts, top-k masks,
straight-through weights), `job` the plug-in (k x seed members, the
dense-trained baseline, resume), `report` its summary, table and plots,
`steps` the newest checkpoint of a phase (orbax's CheckpointManager).
"""
