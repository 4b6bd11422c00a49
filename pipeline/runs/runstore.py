"""The run store: writes and queries of `.pipeline/runs.db` through SQLAlchemy Core.

Every write is one transaction. A run is inserted as `running` before its first stage, each
stage's record is committed when the stage ends, and the run's final status, end time and
metrics are committed together at the end: a crash leaves a `running` run whose process is
gone, which readers report as `interrupted`, never as a success. SQLite runs in WAL mode, so
readers (`pipeline runs`) never wait for a writer.

A damaged database file (SQLite says "malformed" or "not a database", on opening or on any
later query) is moved aside as `runs.db.corrupt-<time>` with a warning on stderr, and a new
store takes its place: the runs recorded so far stay readable by SQLite's own tools, and no
command fails or loses its record because of it.

A team shares one store on PostgreSQL instead: `runs.url: postgresql://…` in the project's
config (or `$PIPELINE_RUNS_URL`), through psycopg 3. The same tables and queries serve it;
what differs is kept here: SQLite's PRAGMAs and file healing, the exclusive write transaction
(`BEGIN IMMEDIATE` there, an advisory lock here), and errors that name the server with its
password masked. Opening either one stamps, checks or upgrades its schema (runs/migrate.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from filelock import FileLock
from sqlalchemy import Engine, create_engine, delete, event, func, insert, make_url, select, update
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from pipeline.core.atomic import stamped_sibling
from pipeline.core.config import RUNS_SECRETS, RUNS_URL_ENV, runs_url
from pipeline.core.paths import display_path
from pipeline.core.syserrors import disk_error
from pipeline.errors import AmbiguousRun, DataError, UsageError
from pipeline.runs import migrate, schema
from pipeline.runs.ingest import ingest_journals
from pipeline.runs.liveness import pid_exists
from pipeline.runs.model import (
    STORED_COLUMNS,
    Artifact,
    RunDetail,
    RunObjects,
    RunRow,
    RunStatus,
    StageRow,
)

__all__ = ["Artifact", "RunDetail", "RunRow", "RunStore", "StageRow", "has_store"]

DB_NAME = "runs.db"
LATEST = ("latest", "last", "@")  # names of the latest top-level run
# Any fixed 64-bit number: PostgreSQL's advisory lock that serialises exclusive writes.
WRITE_LOCK = 0x72756E73_77726974  # "runswrit"

P = ParamSpec("P")
R = TypeVar("R")


def _healing(method: Callable[P, R]) -> Callable[P, R]:
    """A query that finds the database file damaged moves it aside and asks a new store."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, RunStore)
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            if not store.heal(exc):
                raise store.unhealed(exc) from None
        return method(*args, **kwargs)

    return wrapper


class RunStore:
    """One run database; `url` is any SQLAlchemy URL (SQLite by default).

    `path` is the SQLite file behind `url`, if any: only a file can be moved aside when damaged.
    """

    def __init__(self, url: str, path: Path | None = None) -> None:
        self.url, self.path = url, path
        self._inode: int | None = None
        try:
            self._open()
        except SQLAlchemyError as exc:
            if path is not None and _damaged(exc):
                raise _Damaged(_reason(exc)) from None
            raise _error(exc, path, url) from None

    def _open(self) -> None:
        self.engine = _engine(self.url)
        try:
            migrate.prepare(self.engine, self.path)
        except BaseException:
            self.engine.dispose()
            raise
        if self.path is not None:
            self._inode = os.stat(self.path).st_ino

    @classmethod
    def for_project(cls, state_dir: Path) -> RunStore:
        """The project's store: `runs.url` if set, else its SQLite file, where the first
        opener creates the schema and the others wait.

        A damaged file is moved aside (with a warning) and a new store is started.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        url = runs_url(state_dir)
        store = cls(server_url(url)) if url is not None else cls._file(state_dir)
        ingest_journals(store, state_dir)  # runs whose process died before they were stored
        return store

    @classmethod
    def _file(cls, state_dir: Path) -> RunStore:
        path = state_dir / DB_NAME
        with FileLock(str(state_dir / f"{DB_NAME}.lock")):
            try:
                store = cls(f"sqlite:///{path}", path)
            except _Damaged as exc:
                _set_aside(path, exc.reason)
                store = cls(f"sqlite:///{path}", path)
        return store

    def heal(self, exc: SQLAlchemyError) -> bool:
        """After `exc`: if it says the file is damaged, move it aside and reopen a new one.

        Another process may have done so already (the file is no longer the one we opened):
        then its new store is simply reopened.
        """
        if self.path is None or not _damaged(exc):
            return False
        self.engine.dispose()
        with FileLock(str(self.path.with_name(f"{DB_NAME}.lock"))):
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:
                    _set_aside(self.path, _reason(exc))
            self._open()
        return True

    def unhealed(self, exc: SQLAlchemyError) -> Exception:
        """What to raise for `exc` when healing does not apply: a refusing disk, or a server
        gone away, as one line."""
        if self.path is None and isinstance(exc, OperationalError):
            return _unreachable(exc, self.url)
        return disk_error(exc, self.path) or exc

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Any]:
        """One write transaction that holds the store's write lock from its first statement,
        so what it reads is still true when it writes: SQLite's `BEGIN IMMEDIATE` (waiting
        on its busy timeout), PostgreSQL's transaction-scoped advisory lock `WRITE_LOCK`."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK)))
            yield conn
            conn.commit()

    def close(self) -> None:
        self.engine.dispose()

    # --- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[Writer]:
        """Several writes in one transaction.

        A damaged file found while writing is moved aside; this batch is lost with it (its run
        row may be in the old file), which the caller hears as a `DataError`.
        """
        try:
            with self._write() as conn:
                yield Writer(conn)
        except SQLAlchemyError as exc:
            if not self.heal(exc):
                raise self.unhealed(exc) from None
            raise DataError(
                f"the run store was damaged while writing ({_reason(exc)}); a new one was started",
                "this run's record is incomplete; the damaged file is kept beside runs.db",
            ) from None

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

    @_healing
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

    @_healing
    def ids(self) -> set[str]:
        """Every recorded run's id."""
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(schema.runs.c.id))}

    @_healing
    def find(self, ref: str) -> RunRow:
        """A run by id, unique id prefix, name, or `latest` (the latest top-level run)."""
        table = schema.runs
        with self.engine.connect() as conn:
            if ref in LATEST:  # a sweep stands for its points: never one of them
                query = (
                    select(table)
                    .where(table.c.parent_id.is_(None))
                    .order_by(table.c.started_at.desc())
                    .limit(1)
                )
            else:
                # A full id is the common case (sweeps, `compare` of many runs): its primary
                # key lookup spares the scan a prefix or a name needs.
                row = conn.execute(select(table).where(table.c.id == ref)).first()
                if row is not None:
                    return _run_row(row._mapping)
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

    @_healing
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

    @_healing
    def known_file(self, path: str, digest: str) -> bool:
        """Whether some run recorded the file `path` with exactly this content."""
        a = schema.artifacts
        query = select(a.c.run_id).where(
            (a.c.role == "file") & (a.c.path == path) & (a.c.hash == digest)
        )
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    @_healing
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

    @_healing
    def stage_hosts(self, run_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The machines each run's stages ran on, when not the run's own (cluster workers)."""
        found: dict[str, set[str]] = {i: set() for i in run_ids}
        s = schema.stage_runs
        with self.engine.connect() as conn:
            for chunk in _chunks(list(run_ids), 500):
                query = select(s.c.run_id, s.c.host).where(
                    s.c.run_id.in_(chunk), s.c.host.is_not(None)
                )
                for run_id, host in conn.execute(query):
                    found[run_id].add(host)
        return {i: tuple(sorted(hosts)) for i, hosts in found.items()}

    @_healing
    def _pivot(self, table: Any, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {i: {} for i in run_ids}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(run_ids), 500):
                query = select(table).where(table.c.run_id.in_(chunk))
                for run_id, key, value in conn.execute(query):
                    found[run_id][key] = json.loads(value)
        return found

    @_healing
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

    # --- what runs need of the cache, and dropping runs -------------------------------------

    @_healing
    def objects_of(self, run_ids: Sequence[str] | None = None) -> dict[str, RunObjects]:
        """The cached objects each run needs (all runs when `run_ids` is None)."""
        a, s = schema.artifacts, schema.stage_runs
        files = select(a).where(a.c.role.in_(("out", "file")))
        logs = select(s.c.run_id, s.c.log_hash).where(s.c.log_hash.is_not(None))
        found: dict[str, tuple[list[Artifact], list[Artifact], list[str]]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(run_ids), 500) if run_ids is not None else [None]:
                where_a = files if chunk is None else files.where(a.c.run_id.in_(chunk))
                where_s = logs if chunk is None else logs.where(s.c.run_id.in_(chunk))
                for row in conn.execute(where_a):
                    outs, kept, _ = found.setdefault(row.run_id, ([], [], []))
                    artifact = Artifact(row.path, row.hash, row.size, row.nfiles)
                    (kept if row.role == "file" else outs).append(artifact)
                for run_id, log in conn.execute(where_s):
                    found.setdefault(run_id, ([], [], []))[2].append(log)
        return {
            i: RunObjects(i, tuple(outs), tuple(kept), tuple(logs))
            for i, (outs, kept, logs) in found.items()
        }

    @_healing
    def children_of(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """The points of each sweep in `run_ids` (runs without points are left out)."""
        table = schema.runs
        found: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(run_ids), 500):
                query = select(table.c.parent_id, table.c.id).where(table.c.parent_id.in_(chunk))
                for parent, child in conn.execute(query):
                    found.setdefault(parent, []).append(child)
        return found

    @_healing
    def started_before(self, cutoff: float) -> list[RunRow]:
        """Top-level runs (sweeps, not their points) that started before `cutoff`."""
        table = schema.runs
        query = select(table).where(table.c.parent_id.is_(None) & (table.c.started_at < cutoff))
        with self.engine.connect() as conn:
            return [_run_row(r._mapping) for r in conn.execute(query)]

    def drop(self, run_ids: Sequence[str]) -> None:
        """Forget runs: their rows, params, metrics, stages and files (one transaction)."""
        with self.batch() as writer:
            writer.drop(run_ids)


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

    def drop(self, run_ids: Sequence[str]) -> None:
        tables = (
            schema.artifacts,
            schema.stage_runs,
            schema.params,
            schema.metrics,
            *schema.TRACK_TABLES,
        )
        for chunk in _chunks(list(run_ids), 500):
            for table in tables:
                self.conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
            self.conn.execute(delete(schema.runs).where(schema.runs.c.id.in_(chunk)))


def has_store(state_dir: Path) -> bool:
    """Whether the project has a run store to read (a configured server always counts)."""
    return runs_url(state_dir) is not None or (state_dir / DB_NAME).is_file()


def server_url(url: str) -> str:
    """`url` for SQLAlchemy: a bare `postgresql://` means psycopg 3, which must be installed."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            url = "postgresql+psycopg://" + url[len(bare) :]
    if url.startswith("postgresql+psycopg://"):
        try:
            import psycopg  # noqa: F401, PLC0415 - the driver, only for a server store
        except ImportError:
            raise DataError(
                f"the run store {masked(url)} is on PostgreSQL, and psycopg is not installed",
                "pip install 'pipeline[postgres]'",
            ) from None
    return url


def masked(url: str) -> str:
    """`url` as shown to people: the password, and secrets in its query, replaced by `***`."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        host = url.rsplit("@", maxsplit=1)[-1]  # never what precedes the host, nor the query
        return host.split("?", maxsplit=1)[0]
    hidden = {k: "***" for k in parsed.query if k.lower() in RUNS_SECRETS}
    shown = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    shown = shown.replace("=%2A%2A%2A", "=***")  # as the password is shown
    return shown.replace("postgresql+psycopg://", "postgresql://", 1)  # as the user wrote it


def _secrets(url: str) -> list[str]:
    """The secret values `url` holds (its password, and those of RUNS_SECRETS in its query)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return []
    found = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in RUNS_SECRETS:
            found += [value] if isinstance(value, str) else list(value)
    return [s for s in found if s]


def _engine(url: str) -> Engine:
    if url.startswith("postgresql"):
        # A team's server may be away: say so within seconds rather than hang on TCP.
        return create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
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


class _Damaged(Exception):
    """Opening found the database file damaged (`reason`: SQLite's words)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_DAMAGE_WORDS = ("malformed", "not a database")


def _damaged(exc: SQLAlchemyError) -> bool:
    """Whether SQLite reports the file itself as damaged (not busy, locked, full or failing)."""
    orig = getattr(exc, "orig", None)
    if not isinstance(orig, sqlite3.DatabaseError) or isinstance(orig, sqlite3.OperationalError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return any(word in str(orig) for word in _DAMAGE_WORDS)


def _reason(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0]


def _set_aside(path: Path, reason: str) -> Path:
    """Move a damaged database (and its WAL files) to `runs.db.corrupt-<time>`; say so."""
    aside = stamped_sibling(path, "corrupt")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    # A warning on stderr rather than an error: any command may meet it, on any thread, and
    # each of them works on with the new store; the one line says where the old runs are.
    sys.stderr.write(
        f"warning: the run store {display_path(path)} is damaged ({reason}); moved it to"
        f" {display_path(aside)} and started a new one\n"
    )
    return aside


def _unreachable(exc: SQLAlchemyError, url: str) -> DataError:
    """A server store that cannot be reached or used: which one (password masked), and why."""
    reason = _reason(exc)
    for secret in _secrets(url):
        reason = reason.replace(secret, "***")
    return DataError(
        f"the run store {masked(url)} cannot be reached: {reason}",
        f"check that the server is up and runs.url (.pipeline/config.yaml, config.local.yaml"
        f" or ${RUNS_URL_ENV}) names it",
    )


def _error(exc: SQLAlchemyError, path: Path | None, url: str) -> DataError:
    """Why the store cannot be opened: a refusing disk (full, read-only) says so in one line."""
    if path is None and url.startswith("postgresql"):
        return _unreachable(exc, url)
    refused = disk_error(exc, path)
    if refused is not None:
        return refused
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
    row = RunRow(**{k: m[k] for k in STORED_COLUMNS})
    if row.status is RunStatus.RUNNING and not _alive(row):
        return dataclasses.replace(row, status=RunStatus.INTERRUPTED)
    return row


def _alive(run: RunRow) -> bool:
    """Whether a `running` run's process still exists (other hosts: assume it does)."""
    if run.host != socket.gethostname() or run.pid is None:
        return True
    return pid_exists(run.pid)


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
        host=m["host"],
    )
