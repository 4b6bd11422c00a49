"""Step ①, load: manifest + params files → a validated `Project` of resolved stages.

`project.py` is the entry (`load_project`); `manifest.py` validates what was written,
`environments.py` reads the env declarations, `context.py`/`template.py`/`shellquote.py` render
`${…}`, `generators.py` expands `foreach`/`matrix`, `definitions.py` turns one definition into a
`Stage`, `graph.py` builds and checks the DAG, `projectmemo.py` remembers an unchanged load.
"""
