"""The cache (DESIGN §5): content-addressed objects, the run-cache, links and restores.

A library used by execute, data and experiments: it never imports them. `objects.py` is the
object store, `runcache.py` maps fingerprints to the outputs of successful runs, `links.py`
places objects (reflink, hardlink, symlink, copy), `restore.py` brings one path back, verified.
"""
