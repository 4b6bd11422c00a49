"""The model registry in the run store: versions by hash, aliases, tags, history, merging
teammates' logs, concurrent alias moves from two real processes, and old stores gaining the
tables in place."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from pipeline.errors import UsageError
from pipeline.runs import schema
from pipeline.runs.registry import Event, Registry
from pipeline.runs.runstore import RunStore

A = "xxh3_128:" + "a" * 32
B = "xxh3_128:" + "b" * 32
C = "xxh3_128:" + "c" * 32


@pytest.fixture
def registry(store: RunStore) -> Registry:
    return Registry(store)


def test_versions_are_identified_by_hash(registry: Registry) -> None:
    first, new = registry.add("churn", A, path="models/churn", run_id="r1", stage="train")
    assert (first.version, new, first.hash, first.run_id, first.stage) == (
        1,
        True,
        A,
        "r1",
        "train",
    )
    again, new = registry.add("churn", A, message="the same bytes")
    assert (again.version, new) == (1, False)
    second, new = registry.add("churn", B)
    assert (second.version, new) == (2, True)
    assert [v.version for v in registry.versions("churn")] == [2, 1]
    assert [e.action for e in registry.history("churn")] == ["register", "register"]
    other, _ = registry.add("fraud", A)  # the same package under another name: its own v1
    assert other.version == 1
    assert [m.name for m in registry.names()] == ["churn", "fraud"]
    assert registry.show("churn").version == 2  # latest
    assert registry.show("churn", "latest").version == 2
    assert {(v.name, v.version) for v in registry.by_hash(A)} == {("churn", 1), ("fraud", 1)}


def test_aliases_move_and_the_history_says_who_when_from_to_and_why(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "ana")
    monkeypatch.setenv("LOGNAME", "ana")
    registry.add("churn", A, message="baseline")
    registry.add("churn", B)
    registry.alias("churn", "champion", 1, "first one")
    assert registry.show("churn", "champion").version == 1
    registry.alias("churn", "champion", 2, "beats v1 on recall")
    assert registry.show("churn", "champion").version == 2
    assert registry.show("churn", 2).aliases == ("champion",)
    registry.unalias("churn", "champion", "rolled back")
    with pytest.raises(UsageError, match="no alias 'champion'"):
        registry.show("churn", "champion")
    events = registry.history("churn")
    assert [(e.action, e.alias, e.from_version, e.to_version, e.message) for e in events] == [
        ("register", None, None, 1, "baseline"),
        ("register", None, None, 2, None),
        ("alias", "champion", None, 1, "first one"),
        ("alias", "champion", 1, 2, "beats v1 on recall"),
        ("unalias", "champion", 2, None, "rolled back"),
    ]
    assert {e.actor for e in events} == {"ana"}
    times = [e.at for e in events]
    assert times == sorted(times) and len({e.id for e in events}) == 5


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "v22"])
def test_reserved_aliases_are_refused(registry: Registry, alias: str) -> None:
    registry.add("churn", A)
    with pytest.raises(UsageError, match="reserved") as caught:
        registry.alias("churn", alias, 1)
    assert "`latest` and `v<N>`" in (caught.value.hint or "")
    assert registry.history("churn")[-1].action == "register"  # nothing recorded


@pytest.mark.parametrize("alias", ["has space", "a/b", "ü", "", "x@y", "a..b"])
def test_malformed_aliases_and_names_are_refused(registry: Registry, alias: str) -> None:
    registry.add("churn", A)
    with pytest.raises(UsageError, match="not an alias"):
        registry.alias("churn", alias, 1)
    with pytest.raises(UsageError, match="not a model name"):
        registry.add(alias or "-x", A)


def test_unknown_names_and_versions_list_what_exists(registry: Registry) -> None:
    registry.add("churn", A)
    registry.add("churn", B)
    registry.add("fraud", C)
    with pytest.raises(UsageError, match="no registered model 'chrun'") as caught:
        registry.show("chrun")
    assert caught.value.hint == "registered models: churn, fraud"
    with pytest.raises(UsageError, match="has no version 7") as caught:
        registry.alias("churn", "champion", 7)
    assert caught.value.hint == "its versions: 1, 2"


def test_tags_of_versions_and_of_the_model(registry: Registry) -> None:
    registry.add("churn", A)
    registry.tag("churn", 1, "validation", "passed")
    registry.tag("churn", None, "owner", "ana")
    registry.tag("churn", 1, "validation", "failed")  # set again: the last value
    assert registry.show("churn", 1).tags == {"validation": "failed"}
    assert registry.names()[0].tags == {"owner": "ana"}
    registry.untag("churn", 1, "validation")
    assert registry.show("churn", 1).tags == {}
    with pytest.raises(UsageError, match="has no tag 'validation'"):
        registry.untag("churn", 1, "validation")
    actions = [(e.action, e.key, e.value) for e in registry.history("churn")[1:]]
    assert actions == [
        ("tag", "validation", "passed"),
        ("tag", "owner", "ana"),
        ("tag", "validation", "failed"),
        ("untag", "validation", None),
    ]


def test_merged_logs_keep_each_side_s_numbers(tmp_path: Path) -> None:
    """Alice and Bob each register a different package as churn v1; Bob points `champion` at
    his. Merged, each keeps their own package as v1 (a pinned `models:/churn/1` means what it
    meant before the pull), the teammate's becomes v2 with a warning, and Bob's alias follows
    his package on both sides."""
    alice = Registry(RunStore.for_project(tmp_path / "alice"))
    bob = Registry(RunStore.for_project(tmp_path / "bob"))
    alice.add("churn", A)
    bob.add("churn", B)
    bob.alias("churn", "champion", 1)
    a_events, b_events = alice.history(), bob.history()

    def warning(event: Event) -> str:
        return (
            f"model 'churn': version 1 was registered twice ({event.actor} registered"
            f" {event.hash} as version 1, which is another package here); it is version 2 here"
        )

    added, warnings = alice.import_events(b_events)
    assert (added, warnings) == (2, [warning(b_events[0])])
    _, warned = bob.import_events(a_events)
    assert warned == [warning(a_events[0])]
    assert {v.version: v.hash for v in alice.versions("churn")} == {1: A, 2: B}
    assert {v.version: v.hash for v in bob.versions("churn")} == {1: B, 2: A}
    for side in (alice, bob):
        assert side.show("churn", "champion").hash == B
        assert [e.id for e in side.history("churn")] == [e.id for e in alice.history("churn")]
    assert alice.import_events(b_events) == (0, [])  # importing again changes nothing
    alice.store.close()
    bob.store.close()


def test_an_old_store_gains_the_registry_tables_in_place(tmp_path: Path) -> None:
    """A store written before the registry existed (only the run tables) opens, keeps its runs,
    and registers models; the schema version stays 1."""
    state = tmp_path / ".pipeline"
    state.mkdir()
    engine = create_engine(f"sqlite:///{state / 'runs.db'}")
    old = [schema.info, schema.runs, schema.params, schema.metrics, schema.stage_runs]
    schema.metadata.create_all(engine, tables=[*old, schema.artifacts])
    with engine.begin() as conn:
        conn.execute(insert(schema.info).values(key="schema", value="1"))
        run = {"id": "r1", "kind": "repro", "command": "pipeline repro"}
        conn.execute(insert(schema.runs).values(**run, started_at=1.0, status="succeeded"))
    engine.dispose()
    names = _tables(state / "runs.db")
    assert "registry_events" not in names

    store = RunStore.for_project(state)
    try:
        assert [r.id for r in store.runs()] == ["r1"]
        Registry(store).add("churn", A, run_id="r1")
        assert Registry(store).show("churn").run_id == "r1"
    finally:
        store.close()
    assert {"model_versions", "model_aliases", "model_tags", "registry_events"} <= _tables(
        state / "runs.db"
    )
    assert schema.SCHEMA_VERSION == 3  # upgraded 1 → 3 in place, after a backup
    assert list(state.glob("runs.db.v1-backup-*"))


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    finally:
        conn.close()


_MOVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline.runs.registry import Event, Registry
    from pipeline.runs.runstore import RunStore

    state, version, ready = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    store = RunStore.for_project(state)
    ready.write_text("ready")
    Registry(store).alias("churn", "champion", version, f"process {version}")
    store.close()
    """
)


def test_two_processes_moving_one_alias_are_both_recorded_and_the_last_wins(
    tmp_path: Path,
) -> None:
    """The test holds the database's write lock while two real processes open the store and
    try to move `champion`; released, both write in turn (SQLite's busy timeout), each in one
    transaction: the second one's `from` is the first one's `to`, and the alias ends where
    the later event put it."""
    state = tmp_path / ".pipeline"
    store = RunStore.for_project(state)
    registry = Registry(store)
    registry.add("churn", A)
    registry.add("churn", B)
    registry.alias("churn", "champion", 1)

    blocker = sqlite3.connect(state / "runs.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs, flags = [], []
    for version in (1, 2):
        flag = tmp_path / f"ready-{version}"
        flags.append(flag)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _MOVER, str(state), str(version), str(flag)], env=env
            )
        )
    try:
        for flag in flags:  # wait for both to be about to write (no clock involved)
            while not flag.exists():
                assert all(p.poll() is None for p in procs), "a mover died"
                os.sched_yield()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert [p.wait(timeout=60) for p in procs] == [0, 0]

    moves = [e for e in registry.history("churn") if e.action == "alias"][1:]
    assert sorted(e.message or "" for e in moves) == ["process 1", "process 2"]
    first, last = moves
    assert first.from_version == 1  # the alias as the first writer found it
    assert last.from_version == first.to_version  # the second saw the first's change
    assert registry.show("churn", "champion").version == last.to_version
    store.close()
