"""Cluster benchmarks (issue 17): `pipeline repro --executor dask` on a loopback Dask cluster.

The bench starts `dask scheduler` and two `dask worker`s (2 threads each, their own HOME) as
processes on 127.0.0.1 and ends them by PID. The projects' default remote is a local directory
(the workers reach it by path; the S3 path is the tests' business). Timed, each the median of
`--repeat` rounds, interpreter start-up included (as in `bench/run.py`):

- `trivial100`: 100 independent stages `echo i > o_i.txt`, `repro -f` on the cluster, beside
  local `repro -f -j 2`; the per-stage overhead is (cluster - local) / 100;
- `sleep4`: 4 independent stages `sleep 2` on the cluster (two workers, two threads each): budget
  ≤ 2.5 s; beside local `repro -f -j 4` of the same stages (what the tool costs without Dask);
- `noop500`: a 500-stage project that is up to date, `repro --executor dask` beside local
  `repro`: nothing is submitted, so it should be as fast (ratio ≈ 1).

    python bench/daskbench.py [--repeat N] [--only trivial100 sleep4 noop500] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # run as a script: bench/ is on sys.path
    import run as house
except ModuleNotFoundError:  # imported as bench.daskbench
    from bench import run as house  # type: ignore[no-redef]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
SECTIONS = ("trivial100", "sleep4", "noop500")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cluster(base: Path) -> Iterator[str]:
    """A scheduler and two workers on loopback; ended by PID."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    py = [sys.executable, "-m"]
    scheduler = ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
    procs = [_spawn([*py, *scheduler, "--no-dashboard"], base / "scheduler")]
    for name in ("w1", "w2"):
        worker = ["distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "2"]
        args = [*worker, "--no-dashboard", "--name", name, "--local-directory", str(base / name)]
        procs.append(_spawn([*py, *args], base / name))
    try:
        import distributed  # noqa: PLC0415 - only the driver side of the bench needs it

        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=60)


def _spawn(args: list[str], home: Path) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    with open(home / "log.txt", "wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def project(root: Path, stages: dict[str, str], remote: Path) -> Path:
    """A git project of independent stages `name: cmd` (each writes `<name>.txt`)."""
    root.mkdir(parents=True)
    lines = ["name: bench", "stages:"]
    for name, cmd in stages.items():
        lines += [f"  {name}:", f"    cmd: {cmd}", f"    outs: [{name}.txt]"]
    (root / "MLproject").write_text("\n".join(lines) + "\n")
    run(root, "git", "init", "-q")
    pipeline(root, "remote", "add", "-d", "origin", str(remote))
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "bench")
    return root


def run(root: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        args, cwd=root, check=True, capture_output=True, env={**os.environ, **GIT_IDENTITY}
    )
    return time.perf_counter() - started


def pipeline(root: Path, *args: str) -> float:
    exe = shutil.which("pipeline") or str(Path(sys.executable).with_name("pipeline"))
    return run(root, exe, "-C", str(root), *args)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def bench_trivial(base: Path, address: str, repeat: int) -> dict[str, float]:
    stages = {f"t{i}": f"echo {i} > t{i}.txt" for i in range(100)}
    root = project(base / "trivial", stages, base / "remote")
    pipeline(root, "repro", "-j", "2")  # warm: the env of nothing, the memo
    local, remote = [], []
    for _ in range(repeat):
        local.append(pipeline(root, "repro", "-f", "-j", "2"))
        remote.append(pipeline(root, "repro", "-f", "--executor", "dask", "--scheduler", address))
    lo, hi = median(local), median(remote)
    return {"local_j2_s": lo, "dask_s": hi, "overhead_per_stage_ms": (hi - lo) / 100 * 1000}


def bench_sleep(base: Path, address: str, repeat: int) -> dict[str, float]:
    root = project(base / "sleep", {f"s{i}": "sleep 2 && touch s{i}.txt".replace("{i}", str(i))
                                    for i in range(4)}, base / "remote")  # fmt: skip
    local, remote = [], []
    for _ in range(repeat):
        local.append(pipeline(root, "repro", "-f", "-j", "4"))
        remote.append(pipeline(root, "repro", "-f", "--executor", "dask", "--scheduler", address))
    lo, hi = median(local), median(remote)
    return {"local_j4_s": lo, "dask_s": hi, "budget_s": 2.5, "ratio": hi / lo}


def bench_noop(base: Path, address: str, repeat: int) -> dict[str, float]:
    stages = {f"n{i}": f"echo {i} > n{i}.txt" for i in range(500)}
    root = project(base / "noop", stages, base / "remote")
    pipeline(root, "repro", "-j", "2")
    local, remote = [], []
    for _ in range(repeat):
        local.append(pipeline(root, "repro"))
        remote.append(pipeline(root, "repro", "--executor", "dask", "--scheduler", address))
    lo, hi = median(local), median(remote)
    return {"local_s": lo, "dask_s": hi, "ratio": hi / lo}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    house.compile_package()  # time the tool, not the compiler (PYTHONDONTWRITEBYTECODE)
    base = Path(tempfile.mkdtemp(prefix="pipeline-daskbench-"))
    results: dict[str, dict[str, float]] = {}
    benches = {"trivial100": bench_trivial, "sleep4": bench_sleep, "noop500": bench_noop}
    try:
        with cluster(base / "cluster") as address:
            for name in options.only:
                log(f"{name}…")
                results[name] = benches[name](base, address, options.repeat)
                log(f"{name}: {results[name]}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("| name | medians |\n|---|---|")
    for name, values in results.items():
        print(f"| `{name}` | " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()) + " |")
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
