"""Which recorded runs lost objects they need from the cache (`runs`, `compare`, `runs show`).

A run needs its stages' outputs, the params files and lock an experiment kept, and its logs
(`RunObjects`). Checking costs one `stat` per distinct object, never a hash: a directory output
counts as present when its listing is, and a sweep is marked when one of its points is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pipeline.runs.model import RunDetail, RunRow

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore

Present = Callable[[str], bool]  # whether the cache holds the object with this hash


def mark_missing(store: RunStore, rows: Sequence[RunRow], present: Present) -> list[RunRow]:
    """`rows`, each with `missing_objects` set when an object it needs is gone."""
    sweeps = store.children_of([r.id for r in rows if r.kind == "sweep"])
    points = [c for children in sweeps.values() for c in children]
    needs = store.objects_of([*(r.id for r in rows), *points])
    known: dict[str, bool] = {}

    def lost(run_id: str) -> bool:
        run = needs.get(run_id)
        if run is None:
            return False
        for digest in run.hashes():
            if digest not in known:
                known[digest] = present(digest)
            if not known[digest]:
                return True
        return False

    return [
        dataclasses.replace(row, missing_objects=any(map(lost, [row.id, *sweeps.get(row.id, [])])))
        for row in rows
    ]


def mark_detail(store: RunStore, detail: RunDetail, present: Present) -> RunDetail:
    """`detail` with its run (and its points) marked."""
    run, *children = mark_missing(store, [detail.run, *detail.children], present)
    return dataclasses.replace(detail, run=run, children=tuple(children))
