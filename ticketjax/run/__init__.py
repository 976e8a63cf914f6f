"""The run layer: every job's lifecycle, I/O and placement around the methods.

`lifecycle.Run` owns a run folder; `setup` turns a config into typed pieces;
`loop` trains in chunks; `store` holds checkpoints; `records` writes JSON;
`workdir` names folders; `hosts` runs on several processes; `jobs.run` is
the entry point the launcher, the notebook and the tests call.
"""
