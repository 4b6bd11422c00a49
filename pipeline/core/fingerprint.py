"""A stage's fingerprint: one hash over everything that determines its outputs.

xxh3-128 of canonical JSON {format version, rendered cmd, params used, dep hashes, out paths,
env digest}. A stage without an isolated env has no `env` key, so its fingerprint is the same
as before environments existed.
Dep *paths* are part of it (through the dep → hash mapping), so removing a dep or renaming an
output changes the fingerprint even when no file changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.core.hashing import HashInfo, digest_bytes
from pipeline.core.stage import Stage

FORMAT_VERSION = 1


def canonical_json(value: Any) -> bytes:
    """Sorted, compact, UTF-8 JSON; non-JSON scalars (YAML dates) by their string form."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def fingerprint(stage: Stage, deps: Mapping[str, HashInfo | None], env: str | None = None) -> str:
    """The fingerprint of `stage` given the current hashes of its deps and its env's digest."""
    payload: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "cmd": list(stage.cmd),
        "params": stage.params,
        "deps": {path: info.hash if info else None for path, info in deps.items()},
        "outs": sorted(stage.out_paths),
    }
    if env is not None:
        payload["env"] = env
    return digest_bytes(canonical_json(payload))
