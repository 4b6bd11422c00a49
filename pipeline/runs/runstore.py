"""The run store: writes and queries of `.pipeline/runs.db` through SQLAlchemy Core.

Every write is one transaction. A run is inserted as `running` before its first stage, each
stage's record is committed when the stage ends, and the run's final status, end time and
metrics are committed together at the end: a crash leaves a `running` run whose process is
gone, which readers report as `interrupted`, never as a success. SQLite runs in WAL mode, so
readers (`pipeline runs`) never wait for a writer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import AmbiguousRun, DataError, UsageError
from pipeline.runs import schema
from pipeline.runs.model import Artifact, RunDetail, RunRow, RunStatus, StageRow

__all__ = ["Artifact", "RunDetail", "RunRow", "RunStore", "StageRow"]

DB_NAME = "runs.db"


class RunStore:
    """One run database; `url` is any SQLAlchemy URL (SQLite by default)."""

    def __init__(self, url: str) -> None:
        try:
            self.engine = _engine(url)
            schema.metadata.create_all(self.engine)
            self._check_version()
        except SQLAlchemyError as exc:
            raise _error(exc) from None

    def _check_version(self) -> None:
        """Stamp a new store with the schema version; refuse one written by another version."""
        table = schema.info
        with self.engine.begin() as conn:
            found = conn.execute(select(table.c.value).where(table.c.key == "schema")).scalar()
            if found is None:
                conn.execute(insert(table).values(key="schema", value=str(schema.SCHEMA_VERSION)))
            elif found != str(schema.SCHEMA_VERSION):
                raise DataError(
                    f"the run store has schema {found}; this version of pipeline reads"
                    f" {schema.SCHEMA_VERSION}",
                    "upgrade pipeline, or move .pipeline/runs.db aside to start a new store",
                )

    @classmethod
    def for_project(cls, state_dir: Path) -> RunStore:
        """The project's SQLite store; the first opener creates the schema, the others wait."""
        state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(state_dir / f"{DB_NAME}.lock")):
            return cls(f"sqlite:///{state_dir / DB_NAME}")

    def close(self) -> None:
        self.engine.dispose()

    # --- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[Writer]:
        """Several writes in one transaction."""
        with self._write() as conn:
            yield Writer(conn)

    def start(self, run: RunRow, params: Mapping[str, Any]) -> None:
        """Insert a run (normally `running`) with its effective params."""
        with self.batch() as writer:
            writer.start(run, params)

    def record_stage(self, run_id: str, stage: StageRow) -> None:
        """Add one stage's record and its deps and outs."""
        with self.batch() as writer:
            writer.record_stage(run_id, stage)

    def record_files(self, run_id: str, files: Sequence[Artifact]) -> None:
        """Files of the run as a whole (params files, the lock), stored as objects."""
        with self.batch() as writer:
            writer.record_files(run_id, files)

    def finish(
        self,
        run_id: str,
        status: RunStatus,
        ended_at: float,
        metrics: Mapping[str, Any],
        note: str = "",
    ) -> None:
        """Set the final status and the metrics, in one transaction."""
        with self.batch() as writer:
            writer.finish(run_id, status, ended_at, metrics, note)

    def _write(self) -> Any:
        return self.engine.begin()

    # --- reading --------------------------------------------------------------------------

    def runs(
        self, *, limit: int | None = None, top_level: bool = False, sweeps: bool = True
    ) -> list[RunRow]:
        """Runs, newest first; `top_level` leaves out sweep points, `sweeps=False` sweeps."""
        query = select(schema.runs).order_by(schema.runs.c.started_at.desc())
        if top_level:
            query = query.where(schema.runs.c.parent_id.is_(None))
        if not sweeps:
            query = query.where(schema.runs.c.kind != "sweep")
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_run_row(r._mapping) for r in conn.execute(query)]

    def ids(self) -> set[str]:
        """Every recorded run's id."""
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(schema.runs.c.id))}

    def find(self, ref: str) -> RunRow:
        """A run by id, unique id prefix, name, or `latest`."""
        table = schema.runs
        with self.engine.connect() as conn:
            if ref in ("latest", "last", "@"):
                query = select(table).order_by(table.c.started_at.desc()).limit(1)
            else:
                query = (
                    select(table)
                    .where(
                        (table.c.id == ref)
                        | table.c.id.startswith(ref, autoescape=True)
                        | (table.c.name == ref)
                    )
                    .order_by(table.c.started_at.desc())
                    .limit(10)
                )
            found = [_run_row(r._mapping) for r in conn.execute(query)]
        exact = [r for r in found if r.id == ref]
        if exact or len(found) == 1:
            return (exact or found)[0]
        if not found:
            raise UsageError(f"no run {ref!r}", "see `pipeline runs` for run ids and names")
        ids = ", ".join(r.id for r in found[:5])
        raise AmbiguousRun(f"run {ref!r} is ambiguous: {ids}", "give (more of) a run id")

    def detail(self, ref: str) -> RunDetail:
        run = self.find(ref)
        with self.engine.connect() as conn:
            stage_rows = conn.execute(
                select(schema.stage_runs).where(schema.stage_runs.c.run_id == run.id)
            ).all()
            files = conn.execute(
                select(schema.artifacts).where(schema.artifacts.c.run_id == run.id)
            ).all()
            children = conn.execute(
                select(schema.runs)
                .where(schema.runs.c.parent_id == run.id)
                .order_by(schema.runs.c.started_at)
            ).all()
        stages = tuple(_stage_row(r._mapping, files) for r in stage_rows)
        return RunDetail(
            run,
            self.params_of([run.id]).get(run.id, {}),
            self.metrics_of([run.id]).get(run.id, {}),
            tuple(sorted(stages, key=lambda s: (s.started_at or 0, s.stage))),
            tuple(_run_row(c._mapping) for c in children),
        )

    def known_file(self, path: str, digest: str) -> bool:
        """Whether some run recorded the file `path` with exactly this content."""
        a = schema.artifacts
        query = select(a.c.run_id).where(
            (a.c.role == "file") & (a.c.path == path) & (a.c.hash == digest)
        )
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def run_files(self, run_id: str) -> list[Artifact]:
        """The files a run kept as a whole: its params files and lock."""
        a = schema.artifacts
        query = select(a).where((a.c.run_id == run_id) & (a.c.role == "file"))
        with self.engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(query)]
        return [Artifact(r["path"], r["hash"], r["size"], r["nfiles"]) for r in rows]

    def params_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._pivot(schema.params, run_ids)

    def metrics_of(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._pivot(schema.metrics, run_ids)

    def _pivot(self, table: Any, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {i: {} for i in run_ids}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(run_ids), 500):
                query = select(table).where(table.c.run_id.in_(chunk))
                for run_id, key, value in conn.execute(query):
                    found[run_id][key] = json.loads(value)
        return found

    def producer(self, digest: str, path: str) -> tuple[RunRow, StageRow] | None:
        """The stage run that wrote these bytes at `path`: one that ran it (rather than
        restored it) first, the newest first. Equal bytes at another path are another file."""
        a, s, r = schema.artifacts, schema.stage_runs, schema.runs
        query = (
            select(r.c.id, s.c.stage)
            .join(a, a.c.run_id == r.c.id)
            .join(s, (s.c.run_id == a.c.run_id) & (s.c.stage == a.c.stage))
            .where((a.c.hash == digest) & (a.c.role == "out") & (a.c.path == path))
            .where(s.c.outcome.in_(("ran", "restored", "up to date")))
            .order_by(s.c.outcome != "ran", r.c.started_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        detail = self.detail(row.id)
        return detail.run, next(st for st in detail.stages if st.stage == row.stage)


class Writer:
    """The store's writes, on one connection (one transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def start(self, run: RunRow, params: Mapping[str, Any]) -> None:
        rows = [{"run_id": run.id, "key": k, "value": _dump(v)} for k, v in params.items()]
        self.conn.execute(insert(schema.runs).values(run.to_json()))
        if rows:
            self.conn.execute(insert(schema.params), rows)

    def record_stage(self, run_id: str, stage: StageRow) -> None:
        row = {k: v for k, v in stage.to_json().items() if k not in ("deps", "outs")}
        row.update(
            run_id=run_id,
            cmd=_dump(list(stage.cmd)),
            reasons=_dump(list(stage.reasons)),
            params=_dump(stage.params),
            packages=None if stage.packages is None else _dump(stage.packages),
        )
        files = [
            {"run_id": run_id, "stage": stage.stage, "role": role, **a.__dict__}
            for role, group in (("dep", stage.deps), ("out", stage.outs))
            for a in group
        ]
        self.conn.execute(insert(schema.stage_runs).values(row))
        if files:
            self.conn.execute(insert(schema.artifacts), files)

    def record_files(self, run_id: str, files: Sequence[Artifact]) -> None:
        rows = [{"run_id": run_id, "stage": "", "role": "file", **a.__dict__} for a in files]
        if rows:
            self.conn.execute(insert(schema.artifacts), rows)

    def finish(
        self,
        run_id: str,
        status: RunStatus,
        ended_at: float,
        metrics: Mapping[str, Any],
        note: str = "",
    ) -> None:
        rows = [{"run_id": run_id, "key": k, "value": _dump(v)} for k, v in metrics.items()]
        self.conn.execute(
            update(schema.runs)
            .where(schema.runs.c.id == run_id)
            .values(status=RunStatus(status).value, ended_at=ended_at, note=note or None)
        )
        if rows:
            self.conn.execute(insert(schema.metrics), rows)


def _engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL is atomic
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


def _error(exc: SQLAlchemyError) -> DataError:
    return DataError(
        f"the run store cannot be opened: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
        "move .pipeline/runs.db aside to start a new one (runs recorded so far stay in it)",
    )


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run_row(m: Mapping[Any, Any]) -> RunRow:
    row = RunRow(**{k: m[k] for k in RunRow.__dataclass_fields__})
    if row.status is RunStatus.RUNNING and not _alive(row):
        return dataclasses.replace(row, status=RunStatus.INTERRUPTED)
    return row


def _alive(run: RunRow) -> bool:
    """Whether a `running` run's process still exists (other hosts: assume it does)."""
    if run.host != socket.gethostname() or run.pid is None:
        return True
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stage_row(m: Mapping[Any, Any], files: Sequence[Any]) -> StageRow:
    mine = [f._mapping for f in files if f.stage == m["stage"]]

    def group(role: str) -> tuple[Artifact, ...]:
        rows = [f for f in mine if f["role"] == role]
        return tuple(Artifact(f["path"], f["hash"], f["size"], f["nfiles"]) for f in rows)

    packages = json.loads(m["packages"]) if m["packages"] else None
    return StageRow(
        stage=m["stage"],
        outcome=m["outcome"],
        fingerprint=m["fingerprint"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        exit_code=m["exit_code"],
        attempts=m["attempts"],
        cmd=tuple(json.loads(m["cmd"] or "[]")),
        reasons=tuple(json.loads(m["reasons"] or "[]")),
        params=json.loads(m["params"] or "{}"),
        env_name=m["env_name"],
        env_digest=m["env_digest"],
        packages=tuple(tuple(p) for p in packages) if packages is not None else None,
        log_hash=m["log_hash"],
        error=m["error"],
        deps=group("dep"),
        outs=group("out"),
    )
