"""Stage environments (DESIGN §6): declared in the manifest, digested at plan time, built once.

load: `declare.py` (manifest keys → `EnvDecl`) · plan: `specfile.py`, `interpreters.py`,
`resolve.py` (a `ResolvedEnv` with its digest) · execute: `store.py` (the shared env cache),
`venv.py`, `conda.py`, `activate.py` · `locking.py` writes lock files for `pipeline env lock`.
"""
