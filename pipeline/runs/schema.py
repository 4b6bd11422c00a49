"""The run store's tables, in SQLAlchemy Core so one schema serves SQLite and PostgreSQL.

Times are UNIX seconds (floats) and structured values JSON text: both mean the same on every
backend. Params and metrics get a row per flattened key so `compare` can pivot 1,000 runs in
one query; artifacts get a row per dep and out, indexed by hash for `lineage`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1
metadata = MetaData()

info = Table(
    "info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200)),
    Column("parent_id", String(40), ForeignKey("runs.id")),
    Column("kind", String(16), nullable=False),  # repro, run, sweep, entry
    Column("command", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("status", String(16), nullable=False),  # running, succeeded, failed, interrupted
    Column("user", String(200)),
    Column("host", String(200)),
    Column("pid", Integer),
    Column("git_commit", String(64)),
    Column("git_branch", String(200)),
    Column("git_dirty", Boolean),
    Column("note", Text),  # why it failed, or the entry point's rendered command
    Index("runs_started", "started_at"),
    Index("runs_parent", "parent_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(400), primary_key=True),  # `train.lr`, or `file.yaml:train.lr`
    Column("value", Text, nullable=False),  # JSON
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(400), primary_key=True),  # `metrics/scores.json:accuracy`
    Column("value", Text, nullable=False),  # JSON
)

stage_runs = Table(
    "stage_runs",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id"), primary_key=True),
    Column("stage", String(400), primary_key=True),
    Column("outcome", String(16), nullable=False),  # ran, restored, up to date, failed, skipped
    Column("fingerprint", String(64)),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("exit_code", Integer),
    Column("attempts", Integer),
    Column("cmd", Text),  # JSON list
    Column("reasons", Text),  # JSON list of strings
    Column("params", Text),  # JSON {key: value} of the params the stage uses
    Column("env_name", String(200)),
    Column("env_digest", String(64)),
    Column("packages", Text),  # JSON list of [name, version, ...]
    Column("log_hash", String(64)),
    Column("error", Text),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id"), primary_key=True),
    Column("stage", String(400), primary_key=True),
    Column("role", String(8), primary_key=True),  # dep, out, params
    Column("path", String(1000), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("size", BigInteger),
    Column("nfiles", Integer),
    Index("artifacts_hash", "hash"),
)
