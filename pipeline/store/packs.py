"""Packs: many small objects in one remote file, so that 10,000 small files cost a few requests.

A pack is the objects' bytes one after another (`<id>.pack`) and an index of where each lies
(`<id>.idx`: JSON `[[digest, offset, size], …]`). The pack is uploaded first and its index
last: a pack without an index is invisible and never used (a later `gc --remote` removes it).
Readers take one member with a ranged read, or the whole pack when they need most of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.hashing import digest_bytes
from pipeline.store.known import Location
from pipeline.store.objects import ObjectStore
from pipeline.store.remote import Remote

PACK_BELOW = 256 << 10  # objects smaller than this go into packs…
PACK_AT_LEAST = 16  # …when a push has at least this many of them
PACK_SIZE = 32 << 20  # bytes per pack, at most (one object larger than this is never packed)
WHOLE_ABOVE = 0.25  # fetch the whole pack when this share of its bytes is wanted


@dataclass(frozen=True)
class Pack:
    """A pack being written: its members in order, and the bytes they fill."""

    members: tuple[tuple[str, int], ...]  # (digest, size)

    @property
    def size(self) -> int:
        return sum(size for _, size in self.members)


def plan_packs(sizes: dict[str, int]) -> list[Pack]:
    """Group small objects into packs of at most `PACK_SIZE` bytes (in digest order)."""
    packs: list[Pack] = []
    current: list[tuple[str, int]] = []
    total = 0
    for digest in sorted(sizes):
        if current and total + sizes[digest] > PACK_SIZE:
            packs.append(Pack(tuple(current)))
            current, total = [], 0
        current.append((digest, sizes[digest]))
        total += sizes[digest]
    if current:
        packs.append(Pack(tuple(current)))
    return packs


def upload_pack(store: ObjectStore, remote: Remote, pack: Pack) -> dict[str, Location]:
    """Write the pack and its index to the remote; return where each member now lies."""
    index: list[list[object]] = []
    offset = 0
    tmp = store.temp_path()
    try:
        with open(tmp, "wb") as out:
            for digest, size in pack.members:
                out.write(store.path(digest).read_bytes())
                index.append([digest, offset, size])
                offset += size
        body = json.dumps(index, separators=(",", ":")).encode()
        name = digest_bytes(body).partition(":")[2]
        remote.put_file(tmp, remote.pack_path(name, "pack"))
        remote.write_bytes(remote.pack_path(name, "idx"), body)  # last: now the pack counts
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {str(d): Location(name, int(str(o)), int(str(s))) for d, o, s in index}


def read_index(remote: Remote, pack: str) -> dict[str, Location]:
    """The members of a pack, from its index (a damaged index: no members)."""
    try:
        rows = json.loads(remote.read_bytes(remote.pack_path(pack, "idx")))
        return {str(d): Location(pack, int(o), int(s)) for d, o, s in rows}
    except (FileNotFoundError, ValueError, TypeError):
        return {}


def list_packs(remote: Remote) -> set[str]:
    """The packs on the remote that have an index (the others are unfinished uploads)."""
    names = (p.rsplit("/", 1)[-1] for p in remote.find("packs"))
    return {n[: -len(".idx")] for n in names if n.endswith(".idx")}


def fetch_members(
    remote: Remote, pack: str, wanted: dict[str, Location]
) -> Iterator[tuple[str, bytes]]:
    """(digest, bytes) of the wanted members of one pack: ranged reads, or the whole pack."""
    path = remote.pack_path(pack, "pack")
    spans = sorted(wanted.items(), key=lambda item: item[1].offset)
    end = max(loc.offset + loc.size for _, loc in spans)
    needed = sum(loc.size for _, loc in spans)
    if needed >= WHOLE_ABOVE * end or len(spans) > 64:
        data = remote.read_bytes(path, 0, end)
        for digest, loc in spans:
            yield digest, data[loc.offset : loc.offset + loc.size]
        return
    for digest, loc in spans:
        yield digest, remote.read_bytes(path, loc.offset, loc.offset + loc.size)


def small_objects(sizes: dict[str, int]) -> dict[str, int]:
    """The objects (digest → size) to pack: those below `PACK_BELOW`, when there are at least
    `PACK_AT_LEAST` of them (fewer go one by one)."""
    small = {d: size for d, size in sizes.items() if size < PACK_BELOW}
    return small if len(small) >= PACK_AT_LEAST else {}
