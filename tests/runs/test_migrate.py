"""Schema versions of the run store: an old SQLite store, as the previous release wrote it, is
upgraded in place after a backup, keeping every run; a store newer than the code is refused
with both versions named."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pipeline.runs import schema
from tests.conftest import Project

# The tables of schema version 1, as pipeline 1.x created them (SQLAlchemy's DDL for SQLite).
V1_TABLES = """
CREATE TABLE info ("key" VARCHAR(64) NOT NULL, value TEXT NOT NULL, PRIMARY KEY ("key"));
CREATE TABLE runs (
    id VARCHAR(40) NOT NULL, name VARCHAR(200), parent_id VARCHAR(40), kind VARCHAR(16) NOT NULL,
    command TEXT NOT NULL, started_at FLOAT NOT NULL, ended_at FLOAT,
    status VARCHAR(16) NOT NULL, user VARCHAR(200), host VARCHAR(200), pid INTEGER,
    git_commit VARCHAR(64), git_branch VARCHAR(200), git_dirty BOOLEAN, note TEXT,
    PRIMARY KEY (id), FOREIGN KEY(parent_id) REFERENCES runs (id));
CREATE INDEX runs_parent ON runs (parent_id);
CREATE INDEX runs_started ON runs (started_at);
CREATE TABLE params (run_id VARCHAR(40) NOT NULL, "key" VARCHAR(400) NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (run_id, "key"), FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE TABLE metrics (run_id VARCHAR(40) NOT NULL, "key" VARCHAR(400) NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (run_id, "key"), FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE TABLE stage_runs (
    run_id VARCHAR(40) NOT NULL, stage VARCHAR(400) NOT NULL, outcome VARCHAR(16) NOT NULL,
    fingerprint VARCHAR(64), started_at FLOAT, ended_at FLOAT, exit_code INTEGER,
    attempts INTEGER, cmd TEXT, reasons TEXT, params TEXT, env_name VARCHAR(200),
    env_digest VARCHAR(64), packages TEXT, log_hash VARCHAR(64), error TEXT,
    PRIMARY KEY (run_id, stage), FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE TABLE artifacts (
    run_id VARCHAR(40) NOT NULL, stage VARCHAR(400) NOT NULL, role VARCHAR(8) NOT NULL,
    path VARCHAR(1000) NOT NULL, hash VARCHAR(64) NOT NULL, size BIGINT, nfiles INTEGER,
    PRIMARY KEY (run_id, stage, role, path), FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE INDEX artifacts_hash ON artifacts (hash);
"""
V1_DATA = """
INSERT INTO info VALUES ('schema', '1');
INSERT INTO runs VALUES ('a1b2c3d4e5f6', 'baseline', NULL, 'repro', 'pipeline repro',
    1700000000.0, 1700000005.0, 'succeeded', 'ann', 'laptop', 4242, 'deadbeef', 'main', 0, NULL);
INSERT INTO params VALUES ('a1b2c3d4e5f6', 'params.yaml:train.lr', '0.1');
INSERT INTO metrics VALUES ('a1b2c3d4e5f6', 'metrics.json:score', '0.93');
INSERT INTO stage_runs VALUES ('a1b2c3d4e5f6', 'train', 'ran', 'f00d', 1700000001.0,
    1700000004.0, 0, 1, '["python train.py"]', '["never ran"]', '{"train.lr": 0.1}', NULL, NULL,
    NULL, NULL, NULL);
INSERT INTO artifacts VALUES ('a1b2c3d4e5f6', 'train', 'out', 'model.pkl',
    'xxh3_128:0123456789abcdef0123456789abcdef', 1234, 1);
"""


def _v1_store(project: Project) -> Path:
    """A project whose `.pipeline/runs.db` the previous release wrote: one run, version 1."""
    project.manifest({"name": "old", "stages": {"train": {"cmd": "true"}}})
    db = project.root / ".pipeline" / "runs.db"
    db.parent.mkdir(exist_ok=True)
    conn = sqlite3.connect(db)
    conn.executescript(V1_TABLES + V1_DATA)
    conn.close()
    return db


def _dump(db: Path, *tables: str) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        conn.close()


V1_NAMES = ("info", "runs", "params", "metrics", "stage_runs", "artifacts")


def test_an_old_store_is_upgraded_in_place_after_a_backup(project: Project) -> None:
    db = _v1_store(project)
    before = _dump(db, *V1_NAMES)

    shown = project.cli("runs", "show", "baseline", "--json")
    assert shown.returncode == 0, shown.stderr
    [backup] = db.parent.glob("runs.db.v1-backup-*")
    assert f"from schema 1 to {schema.SCHEMA_VERSION}" in shown.stderr
    assert backup.name in shown.stderr
    assert _dump(backup, *V1_NAMES) == before  # the copy is the old store, as it was

    run = json.loads(shown.stdout)
    assert run["id"] == "a1b2c3d4e5f6" and run["params"] == {"params.yaml:train.lr": 0.1}
    assert run["metrics"] == {"metrics.json:score": 0.93}
    assert [s["stage"] for s in run["stages"]] == ["train"]
    after = _dump(db, *V1_NAMES[1:])
    assert {row[-1] for row in after["stage_runs"]} == {None}  # 3 added `host`: unknown here
    after["stage_runs"] = [row[:-1] for row in after["stage_runs"]]
    assert after == {t: before[t] for t in V1_NAMES[1:]}  # every row kept as it was
    assert _dump(db, "info")["info"] == [("schema", str(schema.SCHEMA_VERSION))]
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert {t.name for t in schema.metadata.sorted_tables} <= tables  # registry, tracking

    again = project.cli("runs", "--json")  # current now: no second backup, no message
    assert again.returncode == 0 and "upgrading" not in again.stderr
    assert len(list(db.parent.glob("runs.db.v1-backup-*"))) == 1


def test_a_store_newer_than_the_code_is_refused_naming_both_versions(project: Project) -> None:
    db = _v1_store(project)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE info SET value = '99' WHERE key = 'schema'")
    conn.commit()
    conn.close()

    result = project.cli("runs")
    assert result.returncode == 4, result.stderr
    assert f"schema 99, newer than this pipeline's schema {schema.SCHEMA_VERSION}" in result.stderr
    assert "upgrade pipeline" in result.stderr and "Traceback" not in result.stderr
    assert _dump(db, "info")["info"] == [("schema", "99")]  # left untouched
    assert not list(db.parent.glob("runs.db.v*-backup-*"))
