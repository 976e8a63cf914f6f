"""Methods as plug-ins: one module or folder each, named in `registry`.

See `registry.py` for what a method declares.
"""
