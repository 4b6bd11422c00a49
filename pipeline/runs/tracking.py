"""Values logged from code in the run store: ingesting track files, and the queries over them.

A stage's track file (`runs/trackfile.py`) is ingested on the recorder's thread when the stage
ends, in one transaction with batched inserts: the full metric history (`track_metrics`), the
latest value of each key by (step, time) into the run's `metrics` (so `compare`, `runs show` and
the UI show it with the file metrics), params once per run (`track_params`, and the run's
`params` when the pipeline did not set that key), tags and artifacts (path and content hash;
the bytes are kept only when the file is also a declared out). A param logged again with another
value is not stored: the conflict is recorded as an error of the stage (`track_errors`, and the
stage's `error`) and reported on stderr.

Ingesting a stage again replaces its rows, so replaying a killed run is idempotent. Track files
stay under `.pipeline/tmp/track/<run id>/` until the run's record is complete; whatever a dead
process left (a killed `repro`, a plain script's own run) is ingested by `ingest_leftovers`,
which the recorder and the reading commands call after the run store replayed its journals.

A stage restored from the run-cache gets a copy of the values of the newest stage run that ran
with the same fingerprint in this run store (the run-cache entry does not carry them: a run
dropped by `gc`, or a teammate's run-cache, has none to give).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from sqlalchemy import delete, func, insert, select, update

from pipeline.core.hashing import file_digest
from pipeline.errors import UsageError
from pipeline.load.project import STATE_DIR, project_root
from pipeline.runs import schema
from pipeline.runs.journal import JOURNAL_DIR
from pipeline.runs.liveness import pid_exists
from pipeline.runs.model import RunRow, RunStatus
from pipeline.runs.trackfile import PATH_MAX, TRACK_DIR, Parsed, Point, read_file, stage_of

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore

SCRIPT_STAGE = ""  # a script run's values belong to the run itself
_TRACK_TABLES = (
    schema.track_metrics,
    schema.track_params,
    schema.track_tags,
    schema.track_artifacts,
    schema.track_errors,
)


# --- ingesting ---------------------------------------------------------------------------------


def ingest_file(conn: Any, run_id: str, stage: str, path: Path, root: Path) -> list[str]:
    """Ingest one stage's track file (absent: nothing logged); the errors it recorded."""
    parsed = read_file(path, _mtime(path))
    return ingest(conn, run_id, stage, parsed, root)


def ingest(conn: Any, run_id: str, stage: str, parsed: Parsed, root: Path) -> list[str]:
    """Replace `stage`'s logged values in `run_id` with `parsed`, on `conn` (one transaction)."""
    for table in _TRACK_TABLES:
        conn.execute(delete(table).where((table.c.run_id == run_id) & (table.c.stage == stage)))
    if parsed.metrics:
        rows = [{"run_id": run_id, "stage": stage, **p.__dict__} for p in parsed.metrics]
        conn.execute(insert(schema.track_metrics), rows)
        _update_latest(conn, run_id, {p.key for p in parsed.metrics})
    errors = _params(conn, run_id, stage, parsed.params)
    if parsed.skipped:
        errors.append(f"{parsed.skipped} unreadable line(s) in the track file were skipped")
    if parsed.tags:
        tags = [
            {"run_id": run_id, "stage": stage, "key": k, "value": v} for k, v in parsed.tags.items()
        ]
        conn.execute(insert(schema.track_tags), tags)
    _artifacts(conn, run_id, stage, parsed.artifacts, root)
    _errors(conn, run_id, stage, errors)
    return errors


def _update_latest(conn: Any, run_id: str, keys: Iterable[str]) -> None:
    """The run's `metrics` row of each key: its value at the largest (step, time)."""
    t, m = schema.track_metrics, schema.metrics
    rows = []
    for key in sorted(keys):
        query = (
            select(t.c.value)
            .where((t.c.run_id == run_id) & (t.c.key == key))
            .order_by(t.c.step.desc(), t.c.ts.desc(), t.c.seq.desc())
            .limit(1)
        )
        value = conn.execute(query).scalar()
        rows.append({"run_id": run_id, "key": key, "value": json.dumps(value)})
    conn.execute(delete(m).where((m.c.run_id == run_id) & m.c.key.in_(list(keys))))
    conn.execute(insert(m), rows)


def _params(conn: Any, run_id: str, stage: str, logged: list[tuple[str, str]]) -> list[str]:
    """Write each param once; a different value (in this file, another stage's, or the
    pipeline's own param of that name) is an error and is not stored."""
    tp, p = schema.track_params, schema.params
    known: dict[str, str] = dict(
        conn.execute(select(p.c.key, p.c.value).where(p.c.run_id == run_id)).all()
    )
    known.update(conn.execute(select(tp.c.key, tp.c.value).where(tp.c.run_id == run_id)).all())
    errors: list[str] = []
    new: dict[str, str] = {}
    for key, value in logged:
        before = new.get(key, known.get(key))
        if before is not None and json.loads(before) != json.loads(value):
            errors.append(f"param {key!r} logged as {value}, but it is {before} in this run")
        elif before is None:
            new[key] = value
    rows = [{"run_id": run_id, "key": k, "stage": stage, "value": v} for k, v in new.items()]
    if rows:
        conn.execute(insert(tp), rows)
        fresh = [{"run_id": run_id, "key": k, "value": v} for k, v in new.items() if k not in known]
        if fresh:
            conn.execute(insert(p), fresh)
    return errors


def _artifacts(conn: Any, run_id: str, stage: str, paths: list[str], root: Path) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for raw in paths:
        path = Path(raw) if os.path.isabs(raw) else root / raw
        try:
            shown = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            shown = str(path)
        if len(shown) > PATH_MAX:  # longer than the column: PostgreSQL would refuse the record
            continue
        digest, size = _digest(path)
        rows[shown] = {
            "run_id": run_id,
            "stage": stage,
            "path": shown,
            "hash": digest,
            "size": size,
        }
    if rows:
        conn.execute(insert(schema.track_artifacts), list(rows.values()))


def _digest(path: Path) -> tuple[str | None, int | None]:
    try:
        size = path.stat().st_size
        return (file_digest(path, size) if path.is_file() else None), size
    except OSError:
        return None, None


def _errors(conn: Any, run_id: str, stage: str, errors: list[str]) -> None:
    if not errors:
        return
    rows = [{"run_id": run_id, "stage": stage, "message": e} for e in errors]
    conn.execute(insert(schema.track_errors), rows)
    s = schema.stage_runs
    where = (s.c.run_id == run_id) & (s.c.stage == stage)
    old = conn.execute(select(s.c.error).where(where)).scalar()
    text = "; ".join([*([old] if old else []), *errors])
    conn.execute(update(s).where(where).values(error=text))
    for error in errors:  # the recorder runs off the main thread: one line, as warnings are
        sys.stderr.write(f"warning: stage {stage or 'script'}: {error}\n")


def copy_restored(conn: Any, run_id: str, stage: str, fingerprint: str, root: Path) -> bool:
    """Give a restored stage the values of the newest run that ran it; whether one had any."""
    s = schema.stage_runs
    query = (
        select(s.c.run_id, s.c.stage)
        .where((s.c.fingerprint == fingerprint) & (s.c.outcome == "ran") & (s.c.run_id != run_id))
        .order_by(s.c.ended_at.desc())
        .limit(1)
    )
    source = conn.execute(query).first()
    if source is None:
        return False
    parsed = _stored(conn, source.run_id, source.stage)
    ingest(conn, run_id, stage, parsed, root)
    return bool(parsed.metrics or parsed.params or parsed.tags or parsed.artifacts)


def _stored(conn: Any, run_id: str, stage: str) -> Parsed:
    """A stage run's logged values read back as if from its track file."""

    def rows(table: Any) -> Any:
        return conn.execute(
            select(table).where((table.c.run_id == run_id) & (table.c.stage == stage))
        )

    parsed = Parsed()
    parsed.metrics = [
        Point(r.key, r.step, r.ts, r.seq, r.value) for r in rows(schema.track_metrics)
    ]
    parsed.params = [(r.key, r.value) for r in rows(schema.track_params)]
    parsed.tags = {r.key: r.value for r in rows(schema.track_tags)}
    parsed.artifacts = [r.path for r in rows(schema.track_artifacts)]
    return parsed


# --- what dead processes left ------------------------------------------------------------------


def ingest_leftovers(store: RunStore, state_dir: Path, root: Path) -> int:
    """Ingest the track folders of runs that ended (or died) and of finished scripts; how many.

    Call it after the store replayed the journals (`RunStore.for_project` does): a run whose
    journal is still there is alive. Never fails the caller: a folder that cannot be ingested
    stays for the next try.
    """
    base = state_dir / TRACK_DIR
    if not base.is_dir():
        return 0
    done = 0
    with (
        contextlib.suppress(OSError, TimeoutError),
        FileLock(str(base / ".ingest.lock"), timeout=30),
    ):
        for folder in sorted(base.iterdir()):
            if folder.name.startswith(".unrecorded-"):
                _drop_if_orphaned(folder)
            elif folder.is_dir() and not folder.name.startswith(".") and _ended(folder, state_dir):
                with contextlib.suppress(Exception):  # a bad folder must not block the rest
                    _ingest_folder(store, folder, root)
                    shutil.rmtree(folder, ignore_errors=True)
                    done += 1
    return done


def _drop_if_orphaned(folder: Path) -> None:
    """A run without a record logs into `.unrecorded-<pid>-<token>`: dropped once that tool died."""
    pid = folder.name.split("-")[1]
    if _pid(pid) and not pid_exists(int(pid)):
        shutil.rmtree(folder, ignore_errors=True)


def _pid(text: str) -> bool:
    """Whether `text` is a process id `os.kill` takes (a larger number raises OverflowError)."""
    return text.isascii() and text.isdigit() and 0 < int(text) < 2**31


def has_leftovers(state_dir: Path) -> bool:
    """Whether some track folder may wait for ingestion (cheap: one directory listing)."""
    try:
        return any(not p.name.startswith(".") for p in (state_dir / TRACK_DIR).iterdir())
    except OSError:
        return False


def _ended(folder: Path, state_dir: Path) -> bool:
    header = folder / "run.json"
    if not header.exists():  # a runner's run: alive while its journal is there
        return not (state_dir / JOURNAL_DIR / f"{folder.name}.jsonl").exists()
    head = _header(folder)
    if head is None:
        return False  # nothing to record it by: left alone, as a folder that cannot be ingested
    if read_file(folder / "script.jsonl", 0).end is not None:
        return True
    return head["host"] != socket.gethostname() or not pid_exists(head["pid"])


def _header(folder: Path) -> dict[str, Any] | None:
    """A script run's `run.json`, when it is one `pipeline.track` could have written.

    Anything in `.pipeline/tmp` can be edited by hand: a header without its fields must not
    fail every command that reads the runs.
    """
    try:
        head = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None  # being written: `run.json` appears whole, so this is rare
    if not isinstance(head, dict) or head.get("id") != folder.name or len(folder.name) > 40:
        return None  # 40 and 200 below: the run store's columns
    pid, started, host = head.get("pid"), head.get("started_at"), head.get("host")
    if type(pid) is not int or not 0 < pid < 2**31 or not isinstance(host, str) or len(host) > 200:
        return None  # 2**31: what `os.kill` takes
    if isinstance(started, bool) or not isinstance(started, (int, float)):
        return None
    return head if math.isfinite(started) else None


def _ingest_folder(store: RunStore, folder: Path, root: Path) -> None:
    if (folder / "run.json").exists():
        head = _header(folder)
        if head is not None:
            _ingest_script(store, folder, head, root)
        return
    run_id = folder.name
    with store.batch() as writer:
        conn = writer.conn
        if conn.execute(select(schema.runs.c.id).where(schema.runs.c.id == run_id)).first():
            for path in sorted(folder.glob("*.jsonl")):
                ingest_file(conn, run_id, stage_of(path), path, root)


def _ingest_script(store: RunStore, folder: Path, head: dict[str, Any], root: Path) -> None:
    """A plain script's run: its row (`script`), its values, and how it ended."""
    track = folder / "script.jsonl"
    parsed = read_file(track, _mtime(track))
    status = (
        RunStatus(parsed.end) if parsed.end in ("succeeded", "failed") else RunStatus.INTERRUPTED
    )
    run = RunRow(
        id=str(head["id"]),
        kind="script",
        command=str(head.get("command") or "script"),
        started_at=float(head["started_at"]),
        status=RunStatus.RUNNING,
        host=head.get("host"),
        pid=head.get("pid"),
    )
    store.drop([run.id])
    with store.batch() as writer:
        writer.start(run, {})
        ingest(writer.conn, run.id, SCRIPT_STAGE, parsed, root)
        note = "" if parsed.end else "the script died; recorded from its track file"
        writer.finish(run.id, status, _mtime(track), {}, note)


def ingest_pending(state_dir: Path, root: Path) -> None:
    """For readers: record what dead runs and finished scripts left, if anything (cheap if not)."""
    if not has_leftovers(state_dir):
        return
    from pipeline.runs.runstore import RunStore  # noqa: PLC0415 - SQLAlchemy only when needed

    store = RunStore.for_project(state_dir)
    try:
        ingest_leftovers(store, state_dir, root)
    finally:
        store.close()


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return time.time()


# --- queries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One logged metric of a stage run: its points, oldest step first."""

    stage: str
    key: str
    points: tuple[tuple[int, float, float | None], ...]  # step, ts, value

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "points": [list(p) for p in self.points]}


@dataclass(frozen=True)
class Logged:
    """Everything a run's code logged besides metric histories."""

    params: dict[str, Any]
    tags: dict[str, dict[str, str]]  # stage -> key -> value
    artifacts: tuple[dict[str, Any], ...]
    errors: tuple[dict[str, str], ...]
    metric_counts: dict[str, int]  # key -> points

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "tags": self.tags,
            "artifacts": list(self.artifacts),
            "errors": list(self.errors),
            "metric_points": self.metric_counts,
        }


def history(store: RunStore, run_id: str, keys: Sequence[str] = ()) -> list[Series]:
    """The full history of `keys` (default: every logged metric) of one run."""
    t = schema.track_metrics
    query = select(t.c.stage, t.c.key, t.c.step, t.c.ts, t.c.value).where(t.c.run_id == run_id)
    if keys:
        query = query.where(t.c.key.in_(list(keys)))
    query = query.order_by(t.c.stage, t.c.key, t.c.step, t.c.ts, t.c.seq)
    series: dict[tuple[str, str], list[tuple[int, float, float | None]]] = {}
    with store.engine.connect() as conn:
        for stage, key, step, ts, value in conn.execute(query):
            series.setdefault((stage, key), []).append((step, ts, value))
    return [Series(s, k, tuple(p)) for (s, k), p in series.items()]


def logged(store: RunStore, run_id: str) -> Logged:
    """A run's logged params, tags, artifacts, errors, and how many points each metric has."""

    def rows(table: Any) -> list[Any]:
        return list(conn.execute(select(table).where(table.c.run_id == run_id)))

    t = schema.track_metrics
    counts = select(t.c.key, func.count()).where(t.c.run_id == run_id).group_by(t.c.key)
    with store.engine.connect() as conn:
        params = {r.key: json.loads(r.value) for r in rows(schema.track_params)}
        tags: dict[str, dict[str, str]] = {}
        for r in rows(schema.track_tags):
            tags.setdefault(r.stage, {})[r.key] = r.value
        artifacts = tuple(
            {"stage": r.stage, "path": r.path, "hash": r.hash, "size": r.size}
            for r in rows(schema.track_artifacts)
        )
        errors = tuple({"stage": r.stage, "message": r.message} for r in rows(schema.track_errors))
        metric_counts = {key: int(n) for key, n in conn.execute(counts)}
    return Logged(params, tags, artifacts, errors, dict(sorted(metric_counts.items())))


# --- for commands: one run's logged values, by reference --------------------------------------


@contextlib.contextmanager
def reading(root: Path | str) -> Iterator[RunStore]:
    """The project's run store for reading (every command's), after recording what dead runs
    and finished scripts left. Reading never creates files: without a store an empty one in
    memory answers, unless a killed run's journal must be stored first."""
    from pipeline.runs.journal import pending  # noqa: PLC0415 - with the store
    from pipeline.runs.runstore import RunStore, has_store  # noqa: PLC0415 - SQLAlchemy on demand

    top = project_root(Path(root))
    state_dir = top / STATE_DIR
    ingest_pending(state_dir, top)
    exists = has_store(state_dir) or pending(state_dir)
    store = RunStore.for_project(state_dir) if exists else RunStore("sqlite://")
    try:
        yield store
    finally:
        store.close()


def run_history(
    root: Path | str, ref: str, keys: Sequence[str] = ()
) -> tuple[RunRow, list[Series]]:
    """`pipeline runs metrics RUN [KEY]...`: the run and the histories of its logged metrics."""
    with reading(root) as store:
        run = store.find(ref)
        found = history(store, run.id, keys)
    missing = sorted(set(keys) - {s.key for s in found})
    if missing:
        raise UsageError(
            f"run {run.id} logged no metric {missing[0]!r}",
            "`pipeline runs metrics RUN` lists the metrics it logged",
        )
    return run, found


def run_logged(root: Path | str, ref: str) -> Logged:
    """What RUN's code logged besides metric histories (for `runs show`)."""
    with reading(root) as store:
        return logged(store, store.find(ref).id)
