"""The resolved project, memoised by the stat of every file its load read.

Loading validates the manifest with pydantic, whose import and model building cost ~0.15 s:
a third of the no-op `status` budget, paid again on every command although the manifest rarely
changes. After a full load, the resolved stages are stored as JSON in `state.db` together with
the (inode, mtime, size) of every manifest under the project root and of every params or vars
file consulted, including files found missing. The next load whose inputs all still match
rebuilds the stages from that JSON without importing pydantic or PyYAML. The list of manifests
is found anew by every load (discover.py: one `git ls-files`) and must equal the stored one.
The racy-file rule of the stat memo applies.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from pipeline._version import __version__
from pipeline.core.stage import Out, Stage
from pipeline.core.statmemo import RACY_MARGIN_NS
from pipeline.core.yamlio import DocumentMemo, json_exact

# 2: YAML 1.2 scalars; 3: environments; 4: parameters, entry points; 5: input limits and
# quoted flag keys (a project resolved by older rules may hold what they now refuse);
# 6: top-level metrics, plots and artifacts as one `declared` section; 7: every manifest under
# the project root (`manifests`, `origins`), inputs relative to the root
FORMAT = 9
Stat = tuple[int, int, int] | None


def stat_of(path: Path) -> Stat:
    """(inode, mtime_ns, size) of a file, or None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def memo_key(manifests: tuple[str, ...]) -> str:
    return f"project:{manifests[0]}"


def recall(memo: DocumentMemo, root: Path, manifests: tuple[str, ...]) -> dict[str, Any] | None:
    """The stored resolution of the project at `root`, if it was made from exactly these
    manifests and every input it read (each manifest among them) is unchanged."""
    try:
        st = os.stat(root / manifests[0])
    except OSError:
        return None
    text = memo.get_document(memo_key(manifests), st)
    if text is None:
        return None
    data: dict[str, Any] = json.loads(text)
    if (data.get("format"), data.get("version")) != (FORMAT, __version__):
        return None
    if tuple(data["manifests"]) != manifests:  # a manifest was added or removed
        return None
    return data if _unchanged(root, data["inputs"], data["at_ns"]) else None


def _unchanged(root: Path, inputs: dict[str, Any], at_ns: int) -> bool:
    for relpath, recorded in inputs.items():
        now = stat_of(root / relpath)
        if now != (tuple(recorded) if recorded else None):
            return False
        if now is not None and now[1] + RACY_MARGIN_NS >= at_ns:
            return False
    return True


def remember(  # noqa: PLR0917 (the memo, what was loaded, what it read, when, the result)
    memo: DocumentMemo,
    root: Path,
    manifests: tuple[str, ...],
    inputs: dict[str, Stat],
    started_ns: int,
    project: dict[str, Any],
) -> None:
    """Store a fresh resolution; skipped when a value would not survive JSON exactly."""
    payload = {
        "format": FORMAT,
        "version": __version__,
        "at_ns": started_ns,
        "inputs": inputs,
        **project,
    }
    text = json_exact(payload)
    st = _manifest_stat(root / manifests[0])
    if text is not None and st is not None:
        memo.put_document(memo_key(manifests), st, text, started_ns)


def _manifest_stat(manifest: Path) -> os.stat_result | None:
    try:
        return os.stat(manifest)
    except OSError:
        return None


def stages_to_json(stages: dict[str, Stage]) -> dict[str, Any]:
    """Stages as JSON-ready data; shared template contexts are stored once."""
    contexts: list[dict[str, Any]] = []
    index: dict[int, int] = {}
    rows = []
    for stage in stages.values():
        row = {f.name: getattr(stage, f.name) for f in fields(Stage)}
        row["outs"] = [[getattr(o, f.name) for f in fields(Out)] for o in stage.outs]
        if id(stage.context) not in index:
            index[id(stage.context)] = len(contexts)
            contexts.append(stage.context)
        row["context"] = index[id(stage.context)]
        rows.append(row)
    return {"stages": rows, "contexts": contexts}


def stages_from_json(data: dict[str, Any]) -> dict[str, Stage]:
    """The inverse of `stages_to_json`."""
    contexts = data["contexts"]
    stages: dict[str, Stage] = {}
    for row in data["stages"]:
        outs = tuple(_out(values) for values in row["outs"])
        stages[row["name"]] = Stage(
            **{
                **row,
                "cmd": tuple(row["cmd"]),
                "deps": tuple(row["deps"]),
                "cmd_template": tuple(row["cmd_template"]),
                "missing_params": tuple(row.get("missing_params", ())),
                "outs": outs,
                "context": contexts[row["context"]],
            }
        )
    return stages


def _out(values: list[Any]) -> Out:
    kwargs = dict(zip([f.name for f in fields(Out)], values, strict=True))
    plot = tuple((k, v) for k, v in kwargs["plot"])
    return Out(**{**kwargs, "loc": tuple(kwargs["loc"]), "plot": plot})
