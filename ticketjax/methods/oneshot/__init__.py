"""One-shot pruning of a pretrained language model (the `oneshot` job).

`core` holds the block-by-block procedure of SparseGPT's and Wanda's
reference code over `core/oneshot.py`'s per-layer rules (magnitude, Wanda,
SparseGPT) and the perplexity; `job` the plug-in: a pretrained model and
two documents in, perplexity per method and target out.
"""
