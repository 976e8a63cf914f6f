"""Pure functions of pytrees: masks, pruning, scores, optimizers, the trainer.

No file I/O, no Flax, no orbax: everything here is a function of arrays (the
trainer also places members on devices, `sharding`).
"""
