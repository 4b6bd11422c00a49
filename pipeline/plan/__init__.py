"""Step ②, plan: which stages to consider and, for each, a decision with its reasons.

`session.py` opens a project (manifest, lock, stat memo, config, cache), `selection.py` turns
targets into stages, `decisions.py` compares fingerprints with the lock and the run-cache.
Planning never runs a command and never builds an environment.
"""
