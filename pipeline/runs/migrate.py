"""Schema versions of the run store: stamping a new store, upgrading an old one in place.

The store stamps its schema version in the `info` table (key `schema`). Opening a store:
- a new one gets every table and the current version;
- one of an older version is upgraded step by step (`STEPS`), in one transaction: on SQLite
  after a copy of the file is kept beside it (`runs.db.v1-backup-<time>`, made with SQLite's
  backup API, so a half-written page is never copied); on PostgreSQL under an advisory lock,
  so two processes opening an old shared store at once upgrade it once;
- one of a newer version (a newer pipeline upgraded it) is refused, naming both versions.

Steps only ever add: tables and indexes that are missing are created (`_add_missing`), so a
step is safe to rerun and the derived data of older versions stays as it was.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, inspect, select, text, update

from pipeline.core.atomic import stamped_sibling
from pipeline.core.paths import display_path
from pipeline.errors import DataError
from pipeline.runs import schema

# Any fixed 64-bit number; it names "the run store's schema" among the server's advisory locks.
SCHEMA_LOCK = 0x70697065_6C696E65  # "pipeline"


def _foreign_keys_on_sqlite_only() -> None:
    """The tables' foreign keys document the schema; SQLite never enforced them (no `PRAGMA
    foreign_keys`), and the writers rely on that: a sweep's points are committed before the
    sweep's own row, and a journal replay drops a run and writes it again. So PostgreSQL gets
    them as documentation too (no constraint), and the same writes succeed on both."""
    for table in schema.metadata.tables.values():
        for key in table.foreign_key_constraints:
            key.ddl_if(dialect="sqlite")


_foreign_keys_on_sqlite_only()


def prepare(engine: Engine, path: Path | None) -> int | None:
    """Make the store at `engine` current; the version it had if it was upgraded, else None.

    `path` is the SQLite file behind it (backed up before an upgrade), None for a server or
    memory. The caller holds the file's lock on SQLite; PostgreSQL takes `SCHEMA_LOCK` here.
    """
    found = _peek(engine)
    if found == schema.SCHEMA_VERSION:
        return None  # the common case: two lookups, no lock, no transaction
    if path is not None and found is not None and found < schema.SCHEMA_VERSION:
        backup(path, found)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        found = _stamped(conn)  # again, under the lock: another process may have done it
        if found is None:  # a new store
            schema.metadata.create_all(conn)
            conn.execute(insert(schema.info).values(key="schema", value=_current()))
            return None
        _refuse_newer(found)
        for version in range(found, schema.SCHEMA_VERSION):
            STEPS[version](conn)
        _add_missing(conn)
        if found == schema.SCHEMA_VERSION:
            return None
        _stamp(conn)
    return found


def _peek(engine: Engine) -> int | None:
    """The stamped version, read without a lock; None also when a table of the current
    schema is missing (a store from an unreleased build), so the locked path adds it."""
    with engine.connect() as conn:
        found = _stamped(conn)
        if found == schema.SCHEMA_VERSION and _missing_tables(conn):
            return None
        return found


def _missing_tables(conn: Connection) -> bool:
    existing = set(inspect(conn).get_table_names())
    return any(t.name not in existing for t in schema.metadata.sorted_tables)


def _stamped(conn: Connection) -> int | None:
    if not inspect(conn).has_table(schema.info.name):
        return None
    found = conn.execute(select(schema.info.c.value).where(schema.info.c.key == "schema"))
    value = found.scalar()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DataError(
            f"the run store's schema version {value!r} is not a number",
            "the store was not written by pipeline: point runs.url at another database",
        ) from None


def _refuse_newer(found: int) -> None:
    if found > schema.SCHEMA_VERSION:
        raise DataError(
            f"the run store has schema {found}, newer than this pipeline's schema"
            f" {schema.SCHEMA_VERSION}",
            "upgrade pipeline (a newer version upgraded this store; older ones cannot read it)",
        )


def _current() -> str:
    return str(schema.SCHEMA_VERSION)


def _stamp(conn: Connection) -> None:
    table = schema.info
    conn.execute(update(table).where(table.c.key == "schema").values(value=_current()))


def _add_missing(conn: Connection) -> None:
    """Create every table and index of the current schema that the store lacks."""
    schema.metadata.create_all(conn)  # checkfirst: existing tables are left alone
    existing = set(inspect(conn).get_table_names())
    for table in schema.metadata.sorted_tables:
        if table.name not in existing:
            continue
        have = {ix["name"] for ix in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have:
                index.create(conn)


def _v1_to_v2(conn: Connection) -> None:
    """2 added the model registry (versions, aliases, tags, events), the tracking tables and
    the index `pipeline runs` pages through; all are new tables or indexes."""
    _add_missing(conn)


def _v2_to_v3(conn: Connection) -> None:
    """3 added `stage_runs.host`: the worker a stage ran on (`repro --executor dask`)."""
    _add_missing(conn)
    columns = {c["name"] for c in inspect(conn).get_columns("stage_runs")}
    if "host" not in columns:
        conn.execute(text("ALTER TABLE stage_runs ADD COLUMN host VARCHAR(200)"))


# STEPS[n] upgrades a store of version n to n + 1, inside the upgrade's transaction.
STEPS: dict[int, Callable[[Connection], Any]] = {1: _v1_to_v2, 2: _v2_to_v3}


def backup(path: Path, version: int) -> Path:
    """Copy the SQLite store to `runs.db.v<version>-backup-<time>` (SQLite's backup API)."""
    target = stamped_sibling(path, f"v{version}-backup")
    source, copy = sqlite3.connect(path), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    sys.stderr.write(
        f"upgrading the run store {display_path(path)} from schema {version} to"
        f" {schema.SCHEMA_VERSION}; the old one is kept as {display_path(target)}\n"
    )
    return target
