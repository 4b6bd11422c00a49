"""Core: the vocabulary every part shares, importing no other part (DESIGN §4).

Paths (`paths.py`), content hashes and the stat memo behind them (`hashing.py`, `statmemo.py`),
the resolved stage model (`stage.py`) and its fingerprint (`fingerprint.py`), `pipeline.lock`
(`lockfile.py`), project settings (`config.py`), YAML with positions (`yamlio.py`,
`yamlparse.py`) and atomic writes (`atomic.py`).
"""
