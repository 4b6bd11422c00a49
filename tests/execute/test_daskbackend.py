"""`DaskBackend`'s decisions, against a stand-in client (the real cluster is test_dask.py's):
which failures are retried, what a cancelled task means, how Ctrl-C on another thread (a
sweep's) reaches the submitted tasks, and when resources are checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.errors import ClusterError, DataError, DiskError, Interrupted
from pipeline.execute.daskexec import DaskBackend
from pipeline.execute.stagejob import JobResult, StageJob

JOB = StageJob(
    fingerprint="xxh3_128:0123456789abcdef0123456789abcdef", stage="s", cmd=("true",),
    wdir=".", deps=(), outs=(), source=None, remote=None, workspace="/p", log_file="/p/s.log",
)  # fmt: skip
DONE = JobResult(JOB.fingerprint, "box", 0).to_dict()
STAGE = SimpleNamespace(name="s", resources={}, cpus=1)


class Future:
    """What `future.result(timeout)` does, one behaviour per call."""

    def __init__(self, *behaviours: Callable[[], Any]) -> None:
        self.behaviours = list(behaviours)
        self.finished = False
        self.cancelled = False

    def result(self, timeout: float | None = None) -> Any:
        behaviour = self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]
        found = behaviour()
        self.finished = True
        return found

    def done(self) -> bool:
        return self.finished

    def cancel(self) -> None:
        self.cancelled = True


class Client:
    def __init__(self, futures: list[Future], workers: dict[str, Any] | None = None) -> None:
        self.futures = futures
        self.submitted: list[Future] = []
        self.cancelled: list[Any] = []
        self.workers = {"w": {"resources": {}}} if workers is None else workers

    def submit(self, *args: Any, **kwargs: Any) -> Future:
        self.submitted.append(self.futures[len(self.submitted)])
        return self.submitted[-1]

    def cancel(self, futures: list[Any]) -> None:
        self.cancelled += futures

    def scheduler_info(self, n_workers: int = 5) -> dict[str, Any]:
        assert n_workers == -1  # every worker, not the first five
        return {"workers": self.workers}

    def close(self) -> None:
        pass


def backend(client: Client, retries: int = 2) -> DaskBackend:
    found = DaskBackend("tcp://127.0.0.1:1", retries=retries)
    found._client = client  # connected already: `open` keeps it
    return found


def raising(exc: BaseException) -> Callable[[], Any]:
    def behaviour() -> Any:
        raise exc

    return behaviour


def test_a_task_cancelled_without_ctrl_c_means_the_scheduler_was_lost() -> None:
    client = Client([Future(raising(CancelledError()))])
    with pytest.raises(ClusterError, match=r"lost the Dask scheduler at tcp://127\.0\.0\.1:1"):
        backend(client).run(JOB, STAGE, threading.Event())  # type: ignore[arg-type]


def test_ctrl_c_on_another_thread_cancels_the_submitted_task() -> None:
    stop = threading.Event()

    def waiting() -> Any:
        stop.set()  # a sweep's main thread got Ctrl-C while this one waited
        raise TimeoutError

    client = Client([Future(waiting)])
    with pytest.raises(Interrupted):
        backend(client).run(JOB, STAGE, stop)  # type: ignore[arg-type]
    assert client.cancelled == client.submitted  # the task was called back


def test_a_full_disk_on_a_worker_is_retried_elsewhere() -> None:
    full = DiskError("on worker w1: no space left on device")
    client = Client([Future(raising(full)), Future(lambda: DONE)])
    result = backend(client).run(JOB, STAGE, threading.Event())  # type: ignore[arg-type]
    assert result.succeeded and len(client.submitted) == 2


def test_a_system_failure_is_retried_and_then_named_with_the_count() -> None:
    lost = OSError("worker lost")
    client = Client([Future(raising(lost)) for _ in range(3)])
    with pytest.raises(ClusterError, match="failed it on 3 submissions: OSError: worker lost"):
        backend(client, retries=2).run(JOB, STAGE, threading.Event())  # type: ignore[arg-type]
    assert len(client.submitted) == 3
    assert all(f.cancelled for f in client.submitted)  # none left running, unwatched


def test_an_error_of_the_job_itself_is_not_retried() -> None:
    client = Client([Future(raising(DataError("remote refused access")))])
    with pytest.raises(DataError, match="remote refused access"):
        backend(client).run(JOB, STAGE, threading.Event())  # type: ignore[arg-type]
    assert len(client.submitted) == 1


def test_resources_are_checked_only_once_a_worker_has_joined() -> None:
    gpu = SimpleNamespace(name="train", resources={"gpus": 1.0}, cpus=1)
    waiting = backend(Client([Future(lambda: DONE)], workers={}))  # a batch queue starting
    assert waiting.run(JOB, gpu, threading.Event()).succeeded  # type: ignore[arg-type]
    joined = backend(Client([Future(lambda: DONE)], workers={"w": {"resources": {}}}))
    with pytest.raises(ClusterError, match="needs gpus=1, and no worker"):
        joined.run(JOB, gpu, threading.Event())  # type: ignore[arg-type]
