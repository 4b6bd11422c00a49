"""The run store on a real PostgreSQL server (tests/pg.py): two teammates' sweeps recorded at
once with nothing lost, `runs`/`compare`/`lineage` reading it, the registry's alias race, an old
shared store upgraded once by two processes opening it together, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select, text

from pipeline.runs import migrate, schema
from pipeline.runs.journal import JOURNAL_DIR
from pipeline.runs.registry import Registry
from pipeline.runs.runstore import WRITE_LOCK, RunStore, server_url
from tests.conftest import Project, cli_env
from tests.experiments.support import held_at_train, kill_group, start_sweep
from tests.pg import pg_server, pg_url  # noqa: F401 (fixtures)

A = "xxh3_128:" + "a" * 32
B = "xxh3_128:" + "b" * 32
REPO = Path(__file__).resolve().parents[2]


def _count(url: str, table: str) -> int:
    engine = create_engine(server_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_two_teammates_record_sweeps_into_one_store_at_once(
    make_project: object,
    pg_url: str,  # noqa: F811 (a fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each sweep's points wait at `train` until both sweeps are running, then all six write
    their stages, metrics and ends to the one server at once; every row arrives."""
    monkeypatch.setenv("PIPELINE_RUNS_URL", pg_url)
    teams = []
    for name in ("ann", "bob"):
        barrier = tmp_path / f"barrier-{name}"
        teams.append((held_at_train(make_project(name), barrier), barrier))  # type: ignore[operator]
    before = _count(pg_url, "runs"), _count(pg_url, "stage_runs"), _count(pg_url, "metrics")
    sweeps = [start_sweep(p, b, "0.2,0.3,0.4") for p, b in teams]
    for _, barrier in teams:
        (barrier / "go").touch()
    for sweep in sweeps:
        assert sweep.wait(timeout=120) == 0, sweep.communicate()[1]
        assert sweep.stderr is not None
        sweep.stderr.close()

    # each sweep: a parent and three points; each point: three stages and its score
    assert _count(pg_url, "runs") - before[0] == 2 * 4
    assert _count(pg_url, "stage_runs") - before[1] == 2 * 3 * 3
    assert _count(pg_url, "metrics") - before[2] >= 2 * 3
    for project, _ in teams:
        assert not (project.root / ".pipeline" / "runs.db").exists()  # nothing went to SQLite
    _read_back(teams[0][0])


def _read_back(project: Project) -> None:
    """`runs`, `compare` and `lineage` answer from the server."""
    listed = project.cli("runs", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    sweeps = [r for r in runs if r["kind"] == "sweep"]
    assert len(sweeps) == 2 and all(r["status"] == "succeeded" for r in runs)
    compared = project.cli("compare", sweeps[0]["id"], "--json")  # a sweep: its points
    assert compared.returncode == 0, compared.stderr
    scores = {r["params"]["train.lr"]: r["metrics"]["score"] for r in json.loads(compared.stdout)}
    assert scores == {0.2: 0.2, 0.3: 0.3, 0.4: 0.4}
    lineage = project.cli("lineage", "metrics.json", "--json")
    assert lineage.returncode == 0, lineage.stderr
    assert "train" in lineage.stdout and "prepare" in lineage.stdout


@pytest.mark.slow
def test_a_killed_sweep_is_replayed_from_its_journals_into_the_server(
    make_project: object,
    pg_url: str,  # noqa: F811 (a fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed while its points train, the sweep leaves journals; the next command replays
    them into the server (drop and write again: no constraint may stand in the way) and
    removes them, and the sweep and its points read as interrupted."""
    monkeypatch.setenv("PIPELINE_RUNS_URL", pg_url)
    barrier = tmp_path / "barrier"
    project = held_at_train(make_project("k"), barrier)  # type: ignore[operator]
    kill_group(start_sweep(project, barrier, "0.2,0.3"))
    journals = project.root / ".pipeline" / JOURNAL_DIR
    assert list(journals.glob("*.jsonl"))

    listed = project.cli("runs", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    assert not list(journals.glob("*.jsonl"))  # replayed into the server, then removed
    runs = [r for r in json.loads(listed.stdout) if r["kind"] != "repro"]
    assert sorted(r["kind"] for r in runs) == ["run", "run", "sweep"]
    assert {r["status"] for r in runs} == {"interrupted"}


_MOVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline.runs.registry import Registry
    from pipeline.runs.runstore import RunStore, server_url

    url, version, ready = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    store = RunStore(server_url(url))
    ready.write_text("ready")
    Registry(store).alias("churn", "champion", version, f"process {version}")
    store.close()
    """
)


def test_two_processes_moving_one_alias_on_postgres_are_serialised(
    pg_url: str,  # noqa: F811 (a fixture)
    tmp_path: Path,
) -> None:
    """The test holds the store's write lock while two processes try to move `champion`;
    released, both write in turn: the second's `from` is the first's `to`."""
    store = RunStore(server_url(pg_url))
    registry = Registry(store)
    registry.add("churn", A)
    registry.add("churn", B)
    registry.alias("churn", "champion", 1)
    with store.engine.connect() as blocker:
        blocker.execute(select(func.pg_advisory_lock(WRITE_LOCK)))
        procs, flags = [], []
        for version in (1, 2):
            flags.append(tmp_path / f"ready-{version}")
            args = [sys.executable, "-c", _MOVER, pg_url, str(version), str(flags[-1])]
            procs.append(subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(REPO)}))
        for flag in flags:  # both are about to write (no clock involved)
            while not flag.exists():
                assert all(p.poll() is None for p in procs), "a mover died"
                os.sched_yield()
        blocker.execute(select(func.pg_advisory_unlock(WRITE_LOCK)))
    assert [p.wait(timeout=60) for p in procs] == [0, 0]

    moves = [e for e in registry.history("churn") if e.action == "alias"][1:]
    assert sorted(e.message or "" for e in moves) == ["process 1", "process 2"]
    first, last = moves
    assert first.from_version == 1 and last.from_version == first.to_version
    assert registry.show("churn", "champion").version == last.to_version
    store.close()


_OPENER = textwrap.dedent(
    """
    import sys
    from pipeline.runs.runstore import RunStore, server_url
    RunStore(server_url(sys.argv[1])).close()
    """
)


def test_an_old_shared_store_is_upgraded_once_by_two_openers(pg_url: str) -> None:  # noqa: F811
    """A version-1 store on the server (the run tables only); two processes open it at once:
    one upgrades it under the advisory lock, the other then finds it current."""
    engine = create_engine(server_url(pg_url))
    old = [schema.info, schema.runs, schema.params, schema.metrics, schema.stage_runs]
    schema.metadata.create_all(engine, tables=[*old, schema.artifacts])
    with engine.begin() as conn:
        conn.execute(insert(schema.info).values(key="schema", value="1"))
        run = {"id": "r1", "kind": "repro", "command": "pipeline repro"}
        conn.execute(insert(schema.runs).values(**run, started_at=1.0, status="succeeded"))
        conn.execute(text("DROP INDEX runs_started"))  # as if it were new in version 2
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    openers = [
        subprocess.Popen([sys.executable, "-c", _OPENER, pg_url], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    assert [p.wait(timeout=60) for p in openers] == [0, 0], [p.stderr.read() for p in openers]  # type: ignore[union-attr]
    for p in openers:
        assert p.stderr is not None
        p.stderr.close()

    store = RunStore(server_url(pg_url))
    with store.engine.connect() as conn:
        assert migrate._stamped(conn) == schema.SCHEMA_VERSION
        indexes = conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'runs'"))
        assert "runs_started" in {r[0] for r in indexes}
    assert [r.id for r in store.runs()] == ["r1"]
    Registry(store).add("churn", A, run_id="r1")  # the registry's tables are there
    store.close()


def test_an_unreachable_server_is_one_line_with_the_password_masked(project: Project) -> None:
    project.manifest({"name": "p", "stages": {"s": {"cmd": "true"}}})
    url = f"postgresql://ann:s3cret@/team?host={project.root}/no-such-dir"
    result = project.cli("runs", env=cli_env(PIPELINE_RUNS_URL=url))
    assert result.returncode == 4, result.stderr
    assert "ann:***@" in result.stderr and "cannot be reached" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    assert "PIPELINE_RUNS_URL" in result.stderr  # the hint says where the URL comes from


def test_without_psycopg_the_error_says_what_to_install(project: Project) -> None:
    project.manifest({"name": "p", "stages": {"s": {"cmd": "true"}}})
    hide = "import sys; sys.modules['psycopg'] = None; from pipeline.cli.main import run; run()"
    result = subprocess.run(
        [sys.executable, "-c", hide, "-C", str(project.root), "runs"],
        env=cli_env(PIPELINE_RUNS_URL="postgresql://ann:s3cret@db.example/team"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "psycopg is not installed" in result.stderr
    assert "pip install 'pipeline[postgres]'" in result.stderr and "s3cret" not in result.stderr


def test_a_password_in_the_committed_config_is_refused(project: Project) -> None:
    project.manifest({"name": "p", "stages": {"s": {"cmd": "true"}}})
    project.write(".pipeline/config.yaml", "runs:\n  url: postgresql://ann:s3cret@db/team\n")
    result = project.cli("runs")
    assert result.returncode == 2, result.stderr
    assert "committed to git" in result.stderr and "config.local.yaml" in result.stderr
    assert "s3cret" not in result.stderr
