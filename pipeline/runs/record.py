"""Turn one `repro` (or `run`) into a run record, written off the critical path.

The executor reports each finished stage; `RunRecorder` queues the rows and a writer thread
commits them (importing SQLAlchemy there too, so a command never waits for it). The run row is
written `running` first; `finish` writes the final status and metrics and waits for the queue
to drain. What the recorder needs from the rest of the program arrives as plain values.

So that a killed process still leaves its record, every row also goes at once into the run's
journal (`runs/journal.py`) when the recorder is given a state directory: the next command
that opens the run store replays it. `finish` may stop waiting for the writer (Ctrl-C must
end the tool within seconds): the journal then stays, and completes the record later.
"""

from __future__ import annotations

import getpass
import os
import queue
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.load.params import DEFAULT_PARAMS_FILE, flatten_all, load_params_file
from pipeline.load.project import Project
from pipeline.runs.gitinfo import git_state
from pipeline.runs.journal import Journal
from pipeline.runs.model import Artifact, RunRow, RunStatus, StageRow
from pipeline.runs.trackfile import run_track_dir

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore, Writer

Job = Callable[["Writer"], None]


def new_run_id() -> str:
    """Sortable and readable: `20261130-091500-a1b2c3`."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def param_key(file: str, key: str) -> str:
    """How a param is named in records and tables: `train.lr`, or `other.yaml:train.lr`."""
    return key if file == DEFAULT_PARAMS_FILE else f"{file}:{key}"


def effective_params(project: Project) -> dict[str, Any]:
    """Every param any stage uses, with the value the run used, and every leaf of the files
    listed in the top-level `params:` (DVC shows those even when no stage reads them)."""
    found = {k: v for file in project.params_files for k, v in _file_params(project, file).items()}
    for stage in project.stages.values():
        for file, values in stage.params.items():
            for key, value in values.items():
                found[param_key(file, key)] = value
    return dict(sorted(found.items()))


def _file_params(project: Project, file: str) -> dict[str, Any]:
    try:
        data = load_params_file(project.root, file)
    except PipelineError:  # nothing runs on it: a broken file just shows no values
        return {}
    values = flatten_all(data.data) if data is not None else {}
    return {param_key(file, key): value for key, value in values.items()}


def read_metrics(project: Project, stages: Collection[str] | None = None) -> dict[str, Any]:
    """The leaves of the metrics files of `stages` (default: all) that exist now, as `path:key`.

    A run passes the stages whose outputs it stands for (ran, restored, up to date), so a
    failed or skipped stage's old metrics are never credited to it.
    """
    found: dict[str, Any] = {}
    for path in metrics_paths(project, stages):
        try:
            data = load_params_file(project.root, path)
        except Exception:  # a metrics file is the stage's business; unreadable: skipped
            continue
        if data is not None:
            for key, value in flatten_all(data.data).items():
                found[f"{path}:{key}"] = value
    return dict(sorted(found.items()))


def metrics_paths(project: Project, stages: Collection[str] | None = None) -> list[str]:
    """Stage `metrics:` outs of `stages`, then the top-level `metrics:` files (as DVC reads).

    A top-level file inside some stage's out (example-get-started's `eval/metrics.json` in
    `eval`) belongs to that stage; one that no stage writes is credited to every run.
    """
    paths = [
        out.path
        for stage in project.stages.values()
        if stages is None or stage.name in stages
        for out in stage.outs
        if out.kind == "metrics"
    ]
    for path in project.declared.metrics:
        writers = project.outputs.producers(path)
        if path not in paths and (stages is None or not writers or writers & set(stages)):
            paths.append(path)
    return paths


@dataclass(frozen=True)
class RunInfo:
    """What a run is before it starts: its id, kind, command line and family."""

    kind: str = "repro"
    name: str | None = None
    parent_id: str | None = None
    command: str = ""
    id: str = ""


class RunRecorder:
    """Records one run; every method is cheap on the calling thread."""

    def __init__(
        self,
        open_store: Callable[[], RunStore],
        root: Path,
        info: RunInfo,
        journal_dir: Path | None = None,
    ) -> None:
        self.id = info.id or new_run_id()
        self.info = info
        self.root = root
        self._journal = None if journal_dir is None else Journal(journal_dir, self.id)
        self.state_dir = journal_dir
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._error: BaseException | None = None
        self._open = open_store
        self._thread = threading.Thread(target=self._write_all, name="run-recorder", daemon=True)
        self._thread.start()

    def begin(self, params: Mapping[str, Any]) -> None:
        """The run, `running`: in the journal now, in the store as soon as it is open."""
        from_git = git_state(self.root)
        run = RunRow(
            id=self.id,
            kind=self.info.kind,
            command=self.info.command or f"pipeline.api ({self.info.kind})",
            started_at=time.time(),
            status=RunStatus.RUNNING,
            name=self.info.name,
            parent_id=self.info.parent_id,
            user=_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            git_commit=from_git.commit,
            git_branch=from_git.branch,
            git_dirty=from_git.dirty,
        )
        if self._journal is not None:
            self._journal.begin(run, params)
        self._jobs.put(lambda store: store.start(run, params))

    def stage(self, row: StageRow) -> None:
        if self._journal is not None:
            self._journal.stage(row)
        self._jobs.put(lambda store: store.record_stage(self.id, row))

    def track(self, stage: str, path: Path | None, restored_from: str | None = None) -> None:
        """Ingest the values `stage` logged (its track file), or, for a stage restored from the
        run-cache, copy those of the run that ran it (`restored_from`: its fingerprint)."""

        def job(writer: Writer) -> None:
            from pipeline.runs import tracking  # noqa: PLC0415 - SQLAlchemy loads off-thread

            if restored_from is not None:
                tracking.copy_restored(writer.conn, self.id, stage, restored_from, self.root)
            elif path is not None and path.exists():
                tracking.ingest_file(writer.conn, self.id, stage, path, self.root)

        self._jobs.put(job)

    def files(self, artifacts: list[Artifact]) -> None:
        """Files the run wrote that belong to no stage: its params files and lock."""
        if self._journal is not None:
            self._journal.files(artifacts)
        self._jobs.put(lambda store: store.record_files(self.id, artifacts))

    def finish(
        self,
        status: RunStatus,
        metrics: Mapping[str, Any],
        note: str = "",
        *,
        wait: float | None = None,
    ) -> None:
        """Queue the final status and wait until everything is written (at most `wait` s).

        Past `wait`, the writer is left to finish in the background and the journal (if any)
        is kept: the record is complete in the store either way, now or at the next command.
        """
        ended = time.time()
        if self._journal is not None:
            self._journal.finish(status, ended, metrics, note)
        self._jobs.put(lambda store: store.finish(self.id, status, ended, metrics, note))
        self._jobs.put(None)
        self._thread.join(wait)
        stored = not self._thread.is_alive() and self._error is None
        if self._journal is not None:
            self._journal.close(remove=stored)
        if stored and self.state_dir is not None:  # the store holds every logged value now
            shutil.rmtree(run_track_dir(self.state_dir, self.id), ignore_errors=True)
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Forget the run (a `repro` that did nothing): its row goes, and so does its journal."""
        self._jobs.put(lambda store: store.drop([self.id]))
        self._jobs.put(None)
        self._thread.join()
        if self._journal is not None:
            self._journal.close(remove=True)
        if self.state_dir is not None:
            shutil.rmtree(run_track_dir(self.state_dir, self.id), ignore_errors=True)
        if self._error is not None:
            raise self._error

    def _write_all(self) -> None:
        """Write whatever is queued, each batch in one transaction, until `finish`."""
        store: RunStore | None = None
        done = False
        try:
            store = self._open()
            self._leftovers(store)
            while not done:
                jobs = self._pending()
                done = jobs[-1] is None
                with store.batch() as writer:
                    for job in jobs:
                        if job is not None:
                            job(writer)
        except BaseException as exc:  # reported by finish(), on the caller's thread
            self._error = exc
            while not done and self._jobs.get() is not None:  # so finish() never blocks
                pass
        finally:
            if store is not None:
                store.close()

    def _leftovers(self, store: RunStore) -> None:
        """What killed runs and plain scripts logged, recorded before this run's rows."""
        if self.state_dir is not None:
            from pipeline.runs.tracking import ingest_leftovers  # noqa: PLC0415 - off-thread

            ingest_leftovers(store, self.state_dir, self.root)

    def _pending(self) -> list[Job | None]:
        """The next job (waiting for one) and every job queued behind it."""
        jobs = [self._jobs.get()]
        while jobs[-1] is not None:
            try:
                jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                break
        return jobs


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
