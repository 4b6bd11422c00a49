"""The `pipeline` command line: click commands by group, and everything that renders.

`main.py` is the entry (`pipeline` runs `main.run`); the only package that prints.
"""
