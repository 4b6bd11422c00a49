"""Experiments (DESIGN §7): `pipeline run --param/--sweep` in isolated workspaces, and
`checkout RUN`. `overrides.py` parses and validates `--param`, `isolate.py` makes and fills a
workspace under `.pipeline/tmp/`, `sweep.py` runs the points and records them.
"""
