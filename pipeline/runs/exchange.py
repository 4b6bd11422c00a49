"""Run records as documents: what `push --runs` writes to a remote and `pull --runs` reads back.

One JSON document per run: the run row, its params and metrics, every stage record with its
deps and outs, and the files the run kept (params files, lock). Importing one into another
project's run store gives the same `runs show`, `compare` and `lineage` answers, with the
original user, host and times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.errors import DataError
from pipeline.runs.model import Artifact, RunDetail, RunRow, RunStatus, StageRow
from pipeline.runs.registry import Event
from pipeline.runs.runstore import RunStore

FORMAT = "pipeline-run 1"


@dataclass(frozen=True)
class RunDocument:
    """A run as shared: its record and the files it kept."""

    detail: RunDetail
    files: tuple[Artifact, ...]

    @property
    def id(self) -> str:
        return self.detail.run.id

    def objects(self) -> set[str]:
        """The cached objects the record refers to: its files and its stages' logs."""
        logs = {s.log_hash for s in self.detail.stages if s.log_hash}
        return {f.hash for f in self.files} | logs

    def to_bytes(self) -> bytes:
        detail = self.detail
        body = {
            "format": FORMAT,
            "run": detail.run.to_json(),
            "params": detail.params,
            "metrics": detail.metrics,
            "stages": [s.to_json() for s in detail.stages],
            "files": [f.__dict__ for f in self.files],
        }
        return json.dumps(body, sort_keys=True, allow_nan=True).encode()


def read_document(data: bytes, where: str) -> RunDocument:
    """Parse a shared run record; anything malformed is a `DataError` naming `where`."""
    try:
        body = json.loads(data)
        if body.get("format") != FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        run = RunRow(**body["run"])
        stages = tuple(StageRow.from_json(s) for s in body["stages"])
        files = tuple(Artifact(**f) for f in body["files"])
        detail = RunDetail(run, dict(body["params"]), dict(body["metrics"]), stages)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DataError(f"{where} is not a run record ({exc})", "it was skipped") from None
    return RunDocument(detail, files)


def export_run(store: RunStore, run_id: str) -> RunDocument:
    return RunDocument(store.detail(run_id), tuple(store.run_files(run_id)))


def import_run(store: RunStore, document: RunDocument) -> None:
    """Write a shared run into `store` as it was recorded (one transaction)."""
    detail = document.detail
    run = detail.run
    with store.batch() as writer:
        writer.start(run, detail.params)
        for stage in detail.stages:
            writer.record_stage(run.id, stage)
        writer.record_files(run.id, list(document.files))
        ended = run.ended_at if run.ended_at is not None else run.started_at
        writer.finish(run.id, RunStatus(run.status), ended, detail.metrics, run.note or "")


def shareable(run: RunRow) -> bool:
    """Finished runs are shared; a running one is not a record yet."""
    return run.status is not RunStatus.RUNNING


# --- registry events ----------------------------------------------------------------------------
# The registry travels as its events, one document each, named by the event's unique id: a
# teammate imports those it lacks and replays (runs/registry.py), so histories merge by union.

EVENT_FORMAT = "pipeline-registry-event 1"


def event_bytes(event: Event) -> bytes:
    return json.dumps({"format": EVENT_FORMAT, **event.to_json()}, sort_keys=True).encode()


def read_event(data: bytes, where: str) -> Event:
    """Parse a shared registry event; anything malformed, or not what this tool writes
    (`Event.from_json` checks each field), is a `DataError` naming `where`."""
    try:
        body = json.loads(data)
        if body.get("format") != EVENT_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        return Event.from_json(body)
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # RecursionError: JSON nested thousands deep (whoever can write the remote can)
        raise DataError(f"{where} is not a registry event ({exc})", "it was skipped") from None
