"""`pipeline serve` against `mlflow models serve` on the same scikit-learn model (issue 15).

The model is a StandardScaler + LogisticRegression fitted on scikit-learn's wine data, saved
twice from the same fit: by `pipeline.models.save` (in this interpreter) and by
`mlflow.sklearn.save_model` (in the MLflow venv of `tests/mlflowenv.py`, built once and cached;
both packages are skops files). Both servers run with `--env-manager local` and one worker
process, on loopback, from envs already built. Each round starts each server in turn and takes:

- cold start: seconds from starting the command to the first answer of `POST /invocations`
  (polling `/ping` every 5 ms until it answers 200, then one request);
- latency: one client, keep-alive, `REQUESTS` single-row `dataframe_split` requests one after
  another (after a warm-up); p50 and p99 in ms;
- throughput: `CLIENTS` threads, each with its own keep-alive `http.client` connection, sending
  `REQUESTS` requests between them; requests per second of wall time (p50/p99 under that load
  are kept too).

Rounds alternate which server goes first; the medians of the rounds are reported, and the
ratio pipeline / MLflow comes from the same rounds. Run alone it prints a markdown table:

    python bench/serve.py [--rounds 5] [--clients 8] [--requests 2000] [--json FILE]

`bench/run.py` runs it as the `serve_*` benchmarks (one measurement shared by the four).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 5
CLIENTS = 8
REQUESTS = 2000
WARMUP = 200
READY_SECONDS = 180.0
#: One wine, as every client sends it (MLflow's `dataframe_split`).
COLUMNS = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280/od315_of_diluted_wines", "proline",
]  # fmt: skip
ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]
BODY = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}).encode()

FIT = """
import sys
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
features, labels = load_wine(return_X_y=True, as_frame=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
"""
SAVE_OURS = (
    FIT + "import pipeline.models\npipeline.models.save(model, sys.argv[1], sample=features[:5])\n"
)
SAVE_MLFLOW = FIT + (
    "import logging, warnings\nlogging.disable(logging.WARNING)\nwarnings.simplefilter('ignore')\n"
    "import mlflow.sklearn\n"
    "mlflow.sklearn.save_model(model, sys.argv[1], input_example=features[:5])\n"
)


class Unavailable(Exception):
    """A server cannot be run here (no MLflow venv, no `pipeline serve`)."""


@dataclass
class Sample:
    """One server in one round."""

    cold_start_s: float
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    loaded_p50_ms: float
    loaded_p99_ms: float


@dataclass
class Report:
    """Every round of both servers, and the settings they ran with."""

    clients: int
    requests: int
    ours: list[Sample] = field(default_factory=list)
    mlflow: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def series(self, who: str, key: str) -> list[float]:
        return [float(getattr(s, key)) for s in getattr(self, who)]

    def median(self, who: str, key: str) -> float:
        return statistics.median(self.series(who, key))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- the MLflow venv and the two packages --------------------------------------------------------


def mlflowenv() -> ModuleType:
    """`tests/mlflowenv.py`, imported by path (it needs nothing else of the test suite)."""
    loaded = sys.modules.get("mlflowenv")
    if loaded is not None:
        return loaded
    path = REPO / "tests" / "mlflowenv.py"
    spec = importlib.util.spec_from_file_location("mlflowenv", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise Unavailable(f"no module at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlflowenv"] = module
    spec.loader.exec_module(module)
    return module


def mlflow_python() -> Path:
    env = mlflowenv()
    try:
        return Path(env.mlflow_python())
    except env.MLflowUnavailable as exc:
        raise Unavailable(str(exc)) from exc


def save_models(workdir: Path, mlflow: Path) -> tuple[Path, Path]:
    """The same fit saved by pipeline (in this interpreter) and by MLflow (in its venv)."""
    ours, theirs = workdir / "model-pipeline", workdir / "model-mlflow"
    for python, script, dest in ((sys.executable, SAVE_OURS, ours), (mlflow, SAVE_MLFLOW, theirs)):
        if not (dest / "MLmodel").is_file():
            done = subprocess.run(
                [str(python), "-c", script, str(dest)],
                capture_output=True,
                text=True,
                check=False,
                env=_python_env(),
            )
            if done.returncode != 0:
                raise Unavailable(f"saving {dest.name} failed: {done.stderr.strip()[-500:]}")
    return ours, theirs


def _python_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, str(REPO)]))  # installed wins
    return env


def server_commands(ours: Path, theirs: Path, mlflow: Path, port: int) -> dict[str, list[str]]:
    """The two servers, each with one worker, on `port`, in envs that need no building."""
    mlflow_bin = mlflow.parent / "mlflow"
    return {
        "ours": [sys.executable, "-m", "pipeline", "serve", str(ours), "--env-manager", "local",
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        "mlflow": [str(mlflow_bin), "models", "serve", "-m", str(theirs), "--env-manager",
                   "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
    }  # fmt: skip


def server_env(mlflow: Path) -> dict[str, str]:
    """MLflow starts `uvicorn` from PATH: its venv's bin comes first. No telemetry calls."""
    env = _python_env()
    env["PATH"] = os.pathsep.join([str(mlflow.parent), env.get("PATH", "")])
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


# -- one server, one round -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server process, in its own group, stopped (SIGTERM, then SIGKILL) at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def cold_start(process: subprocess.Popen[bytes], port: int, log: Path) -> float:
    """Seconds from the process start to its first prediction; polls /ping every 5 ms."""
    start = time.perf_counter()  # Popen returned just before: its fork/exec is included
    deadline = start + READY_SECONDS
    url = f"http://127.0.0.1:{port}/ping"
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"server exited with {process.returncode}: {' | '.join(tail)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as answer:
            if answer.status == 200:
                predict(http.client.HTTPConnection("127.0.0.1", port, timeout=30))
                return time.perf_counter() - start
        time.sleep(0.005)
    raise RuntimeError(f"no answer on port {port} within {READY_SECONDS:.0f} s")


def predict(conn: http.client.HTTPConnection) -> float:
    """One single-row request on a kept-alive connection; its latency in seconds."""
    start = time.perf_counter()
    conn.request("POST", "/invocations", BODY, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    elapsed = time.perf_counter() - start
    if answer.status != 200 or b"predictions" not in data:
        raise RuntimeError(f"/invocations answered {answer.status}: {data[:200]!r}")
    return elapsed


def latencies(port: int, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(WARMUP):
            predict(conn)
        return [predict(conn) for _ in range(count)]
    finally:
        conn.close()


def under_load(port: int, clients: int, total: int) -> tuple[float, list[float]]:
    """`clients` threads sending `total` requests between them: requests/s and latencies."""
    per_client = max(1, total // clients)
    found: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    gate = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            predict(conn)  # connected before the clock starts
            gate.wait()
            found[i] = [predict(conn) for _ in range(per_client)]
        except BaseException as exc:  # reported after the join
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]}")
    return per_client * clients / wall, [x for lat in found for x in lat]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_round(argv: list[str], env: dict[str, str], port: int, log: Path, cfg: Report) -> Sample:
    with running(argv, env, log) as process:
        cold = cold_start(process, port, log)
        single = latencies(port, cfg.requests)
        rps, loaded = under_load(port, cfg.clients, cfg.requests)
    return Sample(
        cold_start_s=cold,
        p50_ms=percentile(single, 0.50) * 1000,
        p99_ms=percentile(single, 0.99) * 1000,
        throughput_rps=rps,
        loaded_p50_ms=percentile(loaded, 0.50) * 1000,
        loaded_p99_ms=percentile(loaded, 0.99) * 1000,
    )


def measure(
    workdir: Path,
    rounds: int = ROUNDS,
    clients: int = CLIENTS,
    requests: int = REQUESTS,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> Report:
    """Both servers, `rounds` times, alternating which goes first."""
    workdir.mkdir(parents=True, exist_ok=True)
    mlflow = mlflow_python()
    ours, theirs = save_models(workdir, mlflow)
    report = Report(clients, requests)
    build = mlflowenv().build_seconds()
    report.notes.append(f"MLflow venv build (cached after the first run): {build or 0:.1f} s")
    env = server_env(mlflow)
    for i in range(rounds):
        order = ("ours", "mlflow") if i % 2 == 0 else ("mlflow", "ours")
        for who in order:
            port = free_port()
            argv = server_commands(ours, theirs, mlflow, port)[who]
            sample = one_round(argv, env, port, workdir / f"{who}-{i}.log", report)
            getattr(report, who).append(sample)
            log(
                f"  round {i + 1}/{rounds} {who:6}: cold {sample.cold_start_s:.2f} s,"
                f" p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms,"
                f" {sample.throughput_rps:.0f} req/s ({clients} clients)"
            )
    return report


# -- the table -------------------------------------------------------------------------------------

ROWS = (
    ("latency p50 (1 client)", "p50_ms", "ms", "≤ 2 ms"),
    ("latency p99 (1 client)", "p99_ms", "ms", "≤ 10 ms"),
    ("throughput", "throughput_rps", "req/s", "≥ 2x MLflow"),
    ("cold start to first answer", "cold_start_s", "s", "≤ 1.5 s"),
    ("latency p50 under load", "loaded_p50_ms", "ms", ""),
    ("latency p99 under load", "loaded_p99_ms", "ms", ""),
)


def table(report: Report) -> str:
    lines = [
        "| measure | pipeline serve | mlflow models serve | ratio | budget |",
        "|---|---|---|---|---|",
    ]
    for label, key, unit, budget in ROWS:
        ours, theirs = report.median("ours", key), report.median("mlflow", key)
        ratio = ours / theirs if theirs else float("nan")
        lines.append(
            f"| {label} | {ours:.3g} {unit} | {theirs:.3g} {unit} | {ratio:.2f}x | {budget} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--json", type=Path, help="also write every sample as JSON")
    parser.add_argument("--workdir", type=Path, help="keep the packages and logs here")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        try:
            report = measure(workdir, args.rounds, args.clients, args.requests)
        except Unavailable as exc:
            print(f"unavailable: {exc}", file=sys.stderr)
            return 2
    print(table(report))
    print(
        f"\nmedians of {args.rounds} rounds; {args.clients} clients share {args.requests}"
        f" requests for throughput; " + "; ".join(report.notes)
    )
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
