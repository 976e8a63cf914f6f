"""Kernels that exist only for speed on the XLA:CPU backend, behind one switch
(`ticketjax/core/kernels.py`: auto, on, off)."""
