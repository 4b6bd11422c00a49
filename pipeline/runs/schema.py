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

# Stamped in `info` (key `schema`); runs/migrate.py upgrades older stores step by step.
# 1: runs, params, metrics, stages, artifacts. 2: + the model registry and tracking tables.
SCHEMA_VERSION = 3
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
    Column("host", String(200)),  # the machine it ran on, when not the run's (a cluster worker)
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

# --- the model registry -----------------------------------------------------------------------
# `registry_events` is the truth: append-only, one row per change, each with a unique id so two
# teammates' logs merge by union (`push`/`pull --runs`). The other three tables are derived from
# it (rebuilt by replaying a name's events) and answer queries in one lookup.

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("hash", String(64), nullable=False),  # the package directory's content hash
    Column("path", String(1000)),  # where it was in the workspace when registered
    Column("run_id", String(40)),  # the producing run and stage, when one is known
    Column("stage", String(400)),
    Column("created_at", Float, nullable=False),
    Column("user", String(200)),
    Column("description", Text),
    Column("status", String(32), nullable=False),  # READY (MLflow's word)
    Index("model_versions_hash", "hash"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),  # 0: a tag of the model itself
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

registry_events = Table(
    "registry_events",
    metadata,
    Column("id", String(40), primary_key=True),  # unique across machines (uuid4 hex)
    Column("at", Float, nullable=False),
    Column("actor", String(200)),
    Column("name", String(200), nullable=False),
    Column("action", String(16), nullable=False),  # register, alias, unalias, tag, untag
    Column("alias", String(200)),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("key", String(250)),
    Column("value", Text),  # a tag's value; for `register`, JSON {path, run_id, stage}
    Column("message", Text),
    # The package the event concerns: versions are renumbered when merged logs clash, so an
    # event names its version by content and the number is looked up on replay.
    Column("hash", String(64)),
    Index("registry_events_name", "name", "at"),
)

# --- values logged from stage code (`pipeline.track`, DVCLive, MLflow; `runs/tracking.py`) ----
# Every row names the stage that logged it, so ingesting a stage again (a killed run replayed)
# first deletes that stage's rows. The latest value of each metric also goes into `metrics`
# under its bare key (logged keys never contain ':', file metrics always do).

track_metrics = Table(
    "track_metrics",
    metadata,
    Column("run_id", String(40), nullable=False),
    Column("stage", String(400), nullable=False),
    Column("key", String(400), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("ts", Float, nullable=False),  # UNIX seconds
    Column("seq", Integer, nullable=False),  # line number: orders equal (step, ts)
    Column("value", Float),  # NULL: NaN
    Index("track_metrics_key", "run_id", "key", "step", "ts"),
)

track_params = Table(
    "track_params",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("stage", String(400), nullable=False),
    Column("value", Text, nullable=False),  # JSON
)

track_tags = Table(
    "track_tags",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("stage", String(400), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("value", Text, nullable=False),
)

track_artifacts = Table(
    "track_artifacts",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("stage", String(400), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("hash", String(64)),  # None: the file was gone when the stage was ingested
    Column("size", BigInteger),
)

track_errors = Table(
    "track_errors",
    metadata,
    Column("run_id", String(40), nullable=False),
    Column("stage", String(400), nullable=False),
    Column("message", Text, nullable=False),
    Index("track_errors_run", "run_id"),
)

# Values logged from code, by run: `gc --drop-runs` removes a run's rows from each.
TRACK_TABLES = (track_metrics, track_params, track_tags, track_artifacts, track_errors)
