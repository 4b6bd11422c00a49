"""Stage jobs on an existing Dask distributed cluster (`repro --executor dask --scheduler …`).

One Dask task per stage run, keyed by the stage's fingerprint (`pure=False`: a shell command is
never deduplicated by Dask). The task is `run_on_worker`: the stage job as JSON in, its result
as plain data out; the data moves through the remote, never through the scheduler. A stage's
`resources:` beyond CPUs (gpus, memory, custom names) become Dask resources, so it lands only
on a worker that declares them (`dask worker … --resources "gpus=1"`); `cpus` are asked for
only when some worker declares a `cpus` resource (otherwise a thread is the unit).

A failing command is the job's result, not an error. What raises is a system failure: a
worker killed or lost (`KilledWorker`, a closed connection, out of memory). Those are
submitted again, to whichever worker is free, up to `retries` times. An error of the job itself
(`PipelineError`: the remote, the env build) is not retried. `distributed` is imported only
when a stage must run, so a no-op `repro` never pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
from concurrent.futures import CancelledError
from dataclasses import replace
from typing import Any

from pipeline.errors import ClusterError, DiskError, Interrupted, PipelineError, UsageError
from pipeline.execute.command import ProcessTracker
from pipeline.execute.stagejob import JobResult, StageJob, run_job, worker_home
from pipeline.load.project import Stage

# What waiting with a timeout raises: `asyncio.TimeoutError` is only `TimeoutError` from 3.11.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)
CONNECT_SECONDS = 10.0
STOP_POLL_SECONDS = 1.0  # how often a running job checks whether the driver stopped the run


class DaskBackend:
    """Stage jobs as tasks of the Dask scheduler at `address`."""

    def __init__(self, address: str, *, retries: int = 2, timeout: float = CONNECT_SECONDS) -> None:
        self.address = address
        self.retries = retries
        self.timeout = timeout
        self._client: Any = None
        self._futures: set[Any] = set()
        self._guard = threading.Lock()
        self._cancelled = threading.Event()
        self._stop_name = f"pipeline-stop-{secrets.token_hex(8)}"  # a Dask Event: Ctrl-C

    def open(self) -> None:
        """Connect to the scheduler; one line (exit 4) when it cannot be reached."""
        if self._client is not None:
            return
        distributed = _distributed()
        # the client logs its connection errors as tracebacks; ours are one line each
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
        try:
            self._client = distributed.Client(
                self.address, timeout=self.timeout, set_as_default=False
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {self.address}: {_first_line(exc)}",
                "start it (`dask scheduler`), or check --scheduler / executor.address",
            ) from None

    def run(self, job: StageJob, stage: Stage, stop: threading.Event) -> JobResult:
        """Run `job` on the cluster, again elsewhere after a system failure; `stop` set (by
        Ctrl-C, maybe on another thread) cancels it."""
        self.open()
        resources = self._resources(stage)
        last: BaseException | None = None
        for attempt in range(1, self.retries + 2):
            if stop.is_set() or self._cancelled.is_set():  # Ctrl-C while this was shipping
                raise _interrupted()
            try:
                return self._once(job, resources, attempt, stop)
            except DiskError as exc:  # that worker's disk: another may have room
                last = exc
            except PipelineError:
                raise
            except Exception as exc:  # the cluster's failure, not the stage's
                last = exc
        raise ClusterError(
            f"stage {stage.name}: the cluster failed it on {self.retries + 1} submissions: "
            f"{type(last).__name__}: {_first_line(last)}",
            "check the workers' logs (memory, crashes); `executor.retries` sets the count, "
            "and Dask reruns a task whose worker died (`distributed.scheduler.allowed-failures`)",
        )

    def _once(
        self, job: StageJob, resources: dict[str, float], attempt: int, stop: threading.Event
    ) -> JobResult:
        key = (
            f"{job.stage}-{job.fingerprint.partition(':')[2][:16]}-{attempt}-{secrets.token_hex(3)}"
        )
        future = self._client.submit(
            run_on_worker,
            job.to_json(),
            self._stop_name,
            key=key,
            pure=False,
            resources=resources or None,
        )
        with self._guard:
            self._futures.add(future)
        try:
            return JobResult.from_dict(self._wait(future, stop))
        finally:
            with self._guard:
                self._futures.discard(future)
            if not future.done():  # whatever ended the wait: no task runs on, unwatched
                with contextlib.suppress(Exception):
                    future.cancel()

    def _wait(self, future: Any, stop: threading.Event) -> Any:
        """The task's result; Ctrl-C (`stop`) cancels the run's tasks. A task cancelled
        otherwise was lost with the scheduler: a cluster error, not an interrupt."""
        while True:
            if stop.is_set() or self._cancelled.is_set():
                self.cancel()
                raise _interrupted()
            try:
                return future.result(timeout=STOP_POLL_SECONDS)
            except _TIMEOUTS:
                continue
            except CancelledError:
                if stop.is_set() or self._cancelled.is_set():
                    raise _interrupted() from None
                raise ClusterError(
                    f"lost the Dask scheduler at {self.address} (the task was cancelled)",
                    "check that the scheduler is still running, then run the command again",
                ) from None

    def _resources(self, stage: Stage) -> dict[str, float]:
        """The stage's requests as Dask resources; one no worker declares is an error."""
        declared = [w.get("resources", {}) for w in self._workers().values()]
        wanted = dict(stage.resources)
        if stage.cpus > 1 and any("cpus" in d for d in declared):
            wanted["cpus"] = float(stage.cpus)
        if not declared:  # no worker yet (a batch queue starting them): the task waits
            return wanted
        for name, amount in wanted.items():
            if not any(d.get(name, 0) >= amount for d in declared):
                raise ClusterError(
                    f"stage {stage.name} needs {name}={amount:g}, "
                    f"and no worker of {self.address} declares that much",
                    f'start one with `dask worker {self.address} --resources "{name}={amount:g}"`',
                )
        return wanted

    def _workers(self) -> dict[str, Any]:
        """Every worker the scheduler knows (some versions list only five unless asked)."""
        try:
            info = self._client.scheduler_info(n_workers=-1)
        except TypeError:  # a `distributed` from before the parameter: it lists them all
            info = self._client.scheduler_info()
        workers: dict[str, Any] = info.get("workers", {})
        return workers

    def cancel(self) -> None:
        """Ctrl-C: cancel every task submitted and not finished."""
        self._cancelled.set()
        with self._guard:
            pending = list(self._futures)
        if pending and self._client is not None:
            with contextlib.suppress(Exception):  # a cluster already gone has nothing running
                _distributed().Event(self._stop_name, client=self._client).set()
            self._client.cancel(pending)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def run_on_worker(job_json: str, stop_name: str) -> dict[str, Any]:
    """The task every worker runs: one stage job, in this worker's home (`worker_home`).

    A running task cannot be cancelled by Dask, so a watcher waits on the driver's stop event
    (set on Ctrl-C) and stops the stage's command itself."""
    tracker = ProcessTracker()
    done = threading.Event()
    distributed = _distributed()
    # made here, with the worker's client: only a task's own thread finds them
    stop = distributed.Event(stop_name, client=distributed.get_client())
    watcher = threading.Thread(target=_watch, args=(stop, tracker, done), daemon=True)
    watcher.start()
    try:
        result = run_job(StageJob.from_json(job_json), worker_home(), tracker)
    except PipelineError as exc:  # say where: the driver's own settings did not apply here
        exc.message = f"on worker {_worker_name()} ({socket.gethostname()}): {exc.message}"
        exc.hint = (
            f"{exc.hint or 'see the worker log'} (a worker uses its own environment and "
            "credentials: secrets in your config.local.yaml never reach it)"
        )
        raise
    finally:
        done.set()
    return replace(result, worker=_worker_name()).to_dict()


def _watch(stop: Any, tracker: ProcessTracker, done: threading.Event) -> None:
    """Until the job is done: stop its command once the driver sets the stop event, or once
    the scheduler is gone (then no driver waits for it, and none could stop it later)."""
    while not done.is_set():
        try:
            if not stop.wait(timeout=STOP_POLL_SECONDS):
                continue
        except _TIMEOUTS:
            continue
        except Exception:  # a closed comm, any failure to ask: the driver is gone
            pass
        tracker.stop_all()
        return


def _worker_name() -> str:
    try:
        from distributed import get_worker  # noqa: PLC0415 - only ever on a Dask worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return ""


def _distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415 - loaded only when a stage must run on a cluster
    except ImportError:
        raise UsageError(
            "the dask executor needs the `distributed` package",
            "pip install 'pipeline[dask]'",
        ) from None
    return distributed


def _interrupted() -> Interrupted:
    return Interrupted("interrupted; the cluster's tasks were cancelled", "run it again")


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else "no reason given"
