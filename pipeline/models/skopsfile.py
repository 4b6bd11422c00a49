"""scikit-learn models as skops files, byte for byte the same for the same model.

skops names array members after `id()` and bytes members after a random uuid, and zip members
carry the time of writing. The package must hash the same every time (run-cache, `verify`,
registry by hash), so the zip is rewritten: members named by their content, fixed timestamps,
schema.json first.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError
from pipeline.models.lazy import library

SCHEMA = "schema.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold


def dump_bytes(obj: Any) -> bytes:
    """The skops file of `obj`, deterministic; ModelError if skops cannot represent it."""
    try:
        raw = library("skops.io").dumps(obj)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ModelError(
            f"skops cannot store this {type(obj).__name__}: {exc}",
            "save(..., trusted=True) writes it with pickle instead (unsafe to load)",
        ) from None
    return normalise(raw)


def untrusted_types(data: bytes) -> list[str]:
    """The types in a skops file that skops refuses to load without being told to trust them.

    Tree models are among them (`sklearn.tree._tree.Tree`): a crafted tree's arrays are read
    unchecked by compiled code, so they too need the user's trust.
    """
    return sorted(library("skops.io").get_untrusted_types(data=data))


def normalise(raw: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        members = {n: src.read(n) for n in src.namelist()}
    renames = {n: _content_name(n, data) for n, data in members.items() if n != SCHEMA}
    schema = _rename(json.loads(members[SCHEMA]), renames)
    files = {SCHEMA: json.dumps(schema, indent=2).encode()}
    files.update({renames[n]: members[n] for n in members if n != SCHEMA})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in [SCHEMA, *sorted(n for n in files if n != SCHEMA)]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            dst.writestr(info, files[name])
    return out.getvalue()


def _content_name(name: str, data: bytes) -> str:
    suffix = Path(name).suffix
    return hashlib.sha256(data).hexdigest()[:32] + suffix


def _rename(node: Any, renames: dict[str, str], ids: dict[int, int] | None = None) -> Any:
    """The schema with member names and object ids that do not depend on the process.

    `"file"` points at the member's new name; `"__id__"` (skops' `id()` of an object, which
    marks shared references) becomes the order in which the id first appears.
    """
    ids = {} if ids is None else ids
    if isinstance(node, dict):
        return {k: _renamed(k, v, renames, ids) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, renames, ids) for v in node]
    return node


def _renamed(key: str, value: Any, renames: dict[str, str], ids: dict[int, int]) -> Any:
    if key == "file" and isinstance(value, str):
        return renames.get(value, value)
    if key == "__id__" and isinstance(value, int):
        return ids.setdefault(value, len(ids) + 1)
    return _rename(value, renames, ids)


def load(path: Path, *, trusted: bool) -> Any:
    """The object in a skops file; its untrusted types are accepted only when `trusted`."""
    data = path.read_bytes()
    unknown = untrusted_types(data)
    if unknown and not trusted:
        raise ModelError(
            f"{path}: refusing to load types skops does not trust: {', '.join(unknown)}",
            "if you trust where this model came from, load it with --trusted (trusted=True)",
        )
    try:
        return library("skops.io").loads(data, trusted=unknown or None)
    except Exception as exc:  # skops raises many kinds on a damaged file
        raise ModelError(f"{path}: cannot load the skops file: {exc}") from None
