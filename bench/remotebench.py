"""Remote benchmarks (issue 11): `pipeline push/pull/status --remote` beside `dvc` and bare s3fs.

One moto S3 server, started by the bench as its own process on loopback (so the bench's GIL
does not slow it) and stopped by its PID at the end, serves every tool; each tool gets its own
buckets, and every timed push goes to a new, empty bucket. The data are the same bytes for all:

- `small`: a git project whose `data/` holds 10,000 files of 1 KiB (`pipeline add data/`; DVC:
  `dvc add data`). Timed: the push into an empty bucket; then, against that bucket, a no-op
  `push`, `pull` and `status --remote` (DVC: `dvc push`, `dvc pull`, `dvc status -c`), and
  `status --remote` again with the known-on-remote index deleted (what a fresh clone sees);
- `big`: one file of 1 GiB (`--big-mb`), pushed to an empty bucket and pulled into an empty
  cache, beside a bare s3fs `put_file` / `get_file` of the same file to the same server, run in
  its own interpreter by this script (`remotebench.py s3fs put|get ...`), and DVC;
- `clone`: a 500-stage grid (`gen_grid`, 25x20, 10 files per stage) reproduced and pushed with
  its run-cache, committed; then `git clone` into a new directory with its own HOME and
  XDG_CACHE_HOME, `pipeline pull`, and `pipeline repro`, which must run nothing.

    python bench/remotebench.py [--dvc /tmp/dvc-venv/bin/dvc] [--repeat N] [--quick]
                                [--only small big clone] [--big-mb M] [--files N]
                                [--json FILE] [--workdir DIR] [--keep]

Without `--dvc` the DVC cells are empty. Every timing is `time.perf_counter()` around one
`subprocess.run`, interpreter start-up included, as in `bench/run.py`; each value is the median
of `--repeat` rounds, and a round times the tools one after another, so they share the noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import gen_grid  # `python bench/remotebench.py` puts bench/ on sys.path
    import run as house
except ModuleNotFoundError:  # imported as `bench.remotebench` from the repository root
    from bench import gen_grid  # type: ignore[no-redef]
    from bench import run as house  # type: ignore[no-redef]

log = house.log
MIB = 1 << 20
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
MANIFEST = "name: remotebench\nstages: {}\n"
SECTIONS = ("small", "big", "clone")
STARTUP_SECONDS = 30.0


# --- results ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: samples of ours, DVC's and the bare-s3fs baseline.

    `check` decides the verdict: "dvc_speedup" (median DVC / median ours >= target),
    "max" (median ours <= target seconds), "vs_s3fs" (median throughput ours / s3fs >=
    target) or "" (a figure to quote, no verdict).
    """

    name: str
    what: str
    unit: str  # "s" or "MiB/s"
    check: str = ""
    target: float = 0.0
    ours: list[float] = field(default_factory=list)
    dvc: list[float] = field(default_factory=list)
    s3fs: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""

    @staticmethod
    def _median(samples: list[float]) -> float | None:
        return statistics.median(samples) if samples else None

    @property
    def medians(self) -> dict[str, float | None]:
        return {k: self._median(getattr(self, k)) for k in ("ours", "dvc", "s3fs")}

    @property
    def ratio(self) -> float | None:
        """DVC / ours for times (how many times faster), ours / s3fs for throughput."""
        med = self.medians
        if self.check == "vs_s3fs":
            ours, base = med["ours"], med["s3fs"]
            return ours / base if ours is not None and base else None
        ours, dvc = med["ours"], med["dvc"]
        return dvc / ours if ours and dvc is not None else None

    @property
    def target_text(self) -> str:
        return {
            "dvc_speedup": f"≥ {self.target:g}x faster than DVC",
            "max": f"≤ {self.target:g} s",
            "vs_s3fs": f"≥ {self.target:g}x s3fs",
        }.get(self.check, "quote")

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        ours = self.medians["ours"]
        if not self.check:
            return "—"
        if self.check == "max":
            return "—" if ours is None else ("PASS" if ours <= self.target else "FAIL")
        ratio = self.ratio
        if ratio is None:
            return "NO BASELINE"
        return "PASS" if ratio >= self.target else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "unit": self.unit,
            "target": self.target_text,
            "samples": {"ours": self.ours, "dvc": self.dvc, "s3fs": self.s3fs},
            "medians": self.medians,
            "ratio": self.ratio,
            "verdict": self.verdict,
            "note": self.note,
            "error": self.error,
        }


@dataclass
class Settings:
    """What one run of the bench does, and with what."""

    repeat: int
    quick: bool
    files: int  # small files in `small`
    big_mb: int  # size of the "1 GB" file, in MiB
    layers: int
    width: int
    workdir: Path
    cli: list[str]
    env: dict[str, str]
    dvc: str | None
    keep: bool


# --- the S3 server --------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on now (the server may still lose a race for it: retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class MotoServer:
    """`python -m moto.server` on a free loopback port, as its own process."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "moto.log"
        tmp = workdir / "moto-tmp"  # moto spools large objects to temp files: keep them here
        tmp.mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(tmp)}
        for attempt in range(3):
            self.port = free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
            with open(self.log_path, "wb") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline and self.proc.poll() is None:
                if answers(self.endpoint + "/moto-api/"):
                    log(f"moto server pid {self.proc.pid} on {self.endpoint}")
                    self._client = None
                    return
                time.sleep(0.05)
            self.stop()
            if attempt == 2:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"moto server did not start: {tail}")

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # noqa: PLC0415 - only the bench process needs it

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            )
        return self._client

    def new_bucket(self, kind: str) -> str:
        name = f"{kind}-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def drop_bucket(self, name: str) -> None:
        """Delete a bucket and what it holds (moto keeps it all in memory or temp files)."""
        client = self.client
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)

    def count(self, bucket: str) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(len(p.get("Contents", [])) for p in pages)


# --- running commands -----------------------------------------------------------------------------


def run_cmd(
    cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, str]:
    """Seconds and stdout of one `subprocess.run(cmd, check=True)`."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), check=True, capture_output=True, cwd=cwd, env=env)
    return time.perf_counter() - start, proc.stdout.decode(errors="replace")


def rmtree(path: Path) -> None:
    """Remove a tree, read-only cache files and directories included."""

    def writable(func: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o755)
            os.chmod(name, 0o755)
        func(name)

    if path.exists():
        shutil.rmtree(path, onerror=writable)


class Tools:
    """The pipeline CLI, DVC and git, each run with the bench's environment."""

    def __init__(self, s: Settings, server: MotoServer) -> None:
        self.s = s
        self.server = server

    def env(self, home: Path | None = None) -> dict[str, str]:
        home = home or self.s.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in self.s.env.items() if not k.startswith("AWS_")}
        env.update(CREDENTIALS)
        env.update(GIT_IDENTITY)
        env.update(
            HOME=str(home),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_CONFIG_HOME=str(home / ".config"),
            DVC_NO_ANALYTICS="1",
            DVC_NO_UPDATER="1",
        )
        return env

    def pipeline(self, project: Path, *args: str, home: Path | None = None) -> tuple[float, str]:
        return run_cmd([*self.s.cli, "-C", str(project), *args], env=self.env(home))

    def dvc(self, project: Path, *args: str) -> tuple[float, str]:
        assert self.s.dvc
        return run_cmd([self.s.dvc, *args], cwd=project, env=self.env())

    def git(self, project: Path, *args: str, home: Path | None = None) -> str:
        return run_cmd(["git", *args], cwd=project, env=self.env(home))[1]

    def s3fs(self, op: str, src: str, dst: str) -> tuple[float, float]:
        """Bare s3fs in a fresh interpreter: (wall seconds, seconds inside the call)."""
        cmd = [sys.executable, __file__, "s3fs", op, src, dst, "--endpoint", self.server.endpoint]
        wall, out = run_cmd(cmd, env=self.env())
        return wall, float(json.loads(out)["seconds"])

    def point(self, project: Path, bucket: str, prefix: str = "store") -> None:
        """Point remote `origin` at `s3://bucket/prefix` (added on first use)."""
        url = f"s3://{bucket}/{prefix}"
        config = project / ".pipeline" / "config.yaml"
        if config.exists() and "origin:" in config.read_text(encoding="utf-8"):
            self.pipeline(project, "remote", "modify", "origin", "url", url)
            return
        self.pipeline(project, "remote", "add", "-d", "origin", url)
        self.pipeline(project, "remote", "modify", "origin", "endpoint_url", self.server.endpoint)

    def dvc_point(self, project: Path, bucket: str) -> None:
        url = f"s3://{bucket}/dvc"
        if "s3r" in self.dvc(project, "remote", "list")[1]:
            self.dvc(project, "remote", "modify", "s3r", "url", url)
            return
        self.dvc(project, "remote", "add", "-d", "s3r", url)
        self.dvc(project, "remote", "modify", "s3r", "endpointurl", self.server.endpoint)

    def dvc_init(self, project: Path) -> None:
        self.dvc(project, "init", "-q")
        self.dvc(project, "config", "core.analytics", "false")
        self.dvc(project, "config", "core.site_cache_dir", str(self.s.workdir / "dvc-site"))


def new_project(tools: Tools, root: Path) -> Path:
    """An empty git repository with a manifest of no stages (tracked data only)."""
    root.mkdir(parents=True)
    tools.git(root, "init", "-q")
    (root / "MLproject").write_text(MANIFEST, encoding="utf-8")
    return root


def commit(tools: Tools, root: Path, message: str) -> None:
    tools.git(root, "add", "-A")
    tools.git(root, "commit", "-qm", message)


def write_small_files(root: Path, count: int, size: int = 1024, seed: int = 0) -> None:
    """`count` files of `size` seeded random bytes in `root` (flat, as in DVC's #497/#7607)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"f{i:05d}.bin").write_bytes(rng.randbytes(size))


def push_summary(out: str) -> tuple[int, int]:
    """(objects, bytes) transferred, from `pipeline push/pull --json`."""
    reports = json.loads(out)
    return (
        sum(r["objects"]["transferred"] for r in reports),
        sum(r["objects"]["bytes"] for r in reports),
    )


def spread(samples: list[float]) -> str:
    return f"{min(samples):.3g}-{max(samples):.3g}" if samples else ""


# --- section 1 and 2: 10,000 small files ----------------------------------------------------------


def section_small(s: Settings, tools: Tools, server: MotoServer) -> list[Row]:
    n = s.files
    push = Row("push_small", f"push {n:,} files of 1 KiB to an empty bucket", "s", "dvc_speedup", 5)
    noop_push = Row("noop_push", f"no-op `push` ({n:,} objects on the remote)", "s", "max", 0.5)
    noop_pull = Row(
        "noop_pull", "no-op `pull` (everything in cache and workspace)", "s", "max", 0.5
    )
    status = Row("status_remote", "`status --remote` (DVC: `status -c`)", "s", "max", 0.5)
    cold = Row("status_remote_cold", "`status --remote`, known index deleted", "s")
    floor = Row("startup", "`pipeline --version` (DVC: `dvc --version`)", "s")
    rows = [push, noop_push, noop_pull, status, cold, floor]
    try:
        _small(s, tools, server, rows)
    except Exception as exc:
        error = house.describe_error(exc)
        log(f"  small: {error}")
        for row in rows:
            row.error = row.error or error
    return rows


def paired_projects(
    s: Settings, tools: Tools, name: str, path: str, write: Any
) -> tuple[Path, Path | None, list[str]]:
    """Our project and (with `--dvc`) DVC's, both git repositories holding `write(path)`'s
    bytes, tracked (`pipeline add` / `dvc add`) and committed; notes on how long adding took."""
    ours = new_project(tools, s.workdir / name)
    write(ours / path)
    added, _ = tools.pipeline(ours, "add", path)
    commit(tools, ours, "data")
    notes = [f"`pipeline add` {added:.2f} s"]
    if not s.dvc:
        return ours, None, notes
    theirs = s.workdir / f"{name}-dvc"
    theirs.mkdir()
    tools.git(theirs, "init", "-q")
    tools.dvc_init(theirs)
    write(theirs / path)
    dvc_added, _ = tools.dvc(theirs, "add", "-q", path)
    commit(tools, theirs, "data")
    return ours, theirs, [*notes, f"`dvc add` {dvc_added:.2f} s"]


def _small(s: Settings, tools: Tools, server: MotoServer, rows: list[Row]) -> None:
    ours, theirs, notes = paired_projects(
        s, tools, "small", "data", lambda path: write_small_files(path, s.files)
    )
    log(f"  {s.files:,} files written and added ({'; '.join(notes)})")
    buckets = _small_push(s, tools, server, rows[0], ours=ours, theirs=theirs)
    rows[0].note = "; ".join([rows[0].note, *notes])
    _small_noop(s, tools, rows[1:], ours, theirs)
    for row in rows:
        row.note = "; ".join(filter(None, [f"ours {spread(row.ours)} s", row.note]))
    for bucket in buckets:
        server.drop_bucket(bucket)


def _small_push(
    s: Settings, tools: Tools, server: MotoServer, push: Row, *, ours: Path, theirs: Path | None
) -> list[str]:
    """Each round: both tools push into new buckets; returns the last round's buckets."""
    buckets: list[str] = []
    for i in range(s.repeat):
        for bucket in buckets:  # moto keeps them in memory; the last round's stay for no-ops
            server.drop_bucket(bucket)
        buckets = []
        order = ["ours", "dvc"] if i % 2 == 0 else ["dvc", "ours"]
        for who in order:
            if who == "ours":
                bucket = server.new_bucket("ours")
                buckets.append(bucket)
                tools.point(ours, bucket)
                seconds, out = tools.pipeline(ours, "push", "--json")
                objects, size = push_summary(out)
                if objects < s.files or size < s.files * 1024:  # files, and their listing
                    raise RuntimeError(f"push sent {objects} objects, {size} bytes")
                push.note = f"{server.count(bucket)} S3 objects written by ours"
                push.ours.append(seconds)
            elif theirs is not None:
                bucket = server.new_bucket("dvc")
                buckets.append(bucket)
                tools.dvc_point(theirs, bucket)
                push.dvc.append(tools.dvc(theirs, "push", "-q")[0])
        log(
            f"  push {i + 1}/{s.repeat}: ours {push.ours[-1]:.3f} s"
            + (f", dvc {push.dvc[-1]:.3f} s" if push.dvc else "")
        )
    return buckets


def _small_noop(
    s: Settings, tools: Tools, rows: list[Row], ours: Path, theirs: Path | None
) -> None:
    """No-op push, pull, status against the bucket just pushed; then without the index."""
    noop_push, noop_pull, status, cold, floor = rows

    def noop(row: Row, args: list[str], dvc_args: list[str]) -> None:
        row.ours.append(tools.pipeline(ours, *args)[0])
        if theirs is not None:
            row.dvc.append(tools.dvc(theirs, *dvc_args)[0])

    tools.pipeline(ours, "status", "--remote")  # warm-up: bytecode, page cache
    if theirs is not None:
        tools.dvc(theirs, "status", "-c")
    known = ours / ".pipeline" / "remotes.db"
    for i in range(s.repeat):
        noop(noop_push, ["push"], ["push", "-q"])
        noop(noop_pull, ["pull"], ["pull", "-q"])
        noop(status, ["status", "--remote"], ["status", "-c"])
        saved = known.with_suffix(".saved")
        shutil.copy2(known, saved)
        known.unlink()
        cold.ours.append(tools.pipeline(ours, "status", "--remote")[0])
        os.replace(saved, known)
        floor.ours.append(run_cmd([*s.cli, "--version"], env=tools.env())[0])
        if s.dvc:
            floor.dvc.append(run_cmd([s.dvc, "--version"], env=tools.env())[0])
        dvc = (
            f"; dvc push {noop_push.dvc[-1]:.3f} s, pull {noop_pull.dvc[-1]:.3f} s,"
            f" status -c {status.dvc[-1]:.3f} s"
            if theirs is not None
            else ""
        )
        log(
            f"  no-op {i + 1}/{s.repeat}: push {noop_push.ours[-1]:.3f} s, pull"
            f" {noop_pull.ours[-1]:.3f} s, status --remote {status.ours[-1]:.3f} s, cold index"
            f" {cold.ours[-1]:.3f} s{dvc}"
        )
    cold.note = "ours lists the remote again; DVC: its `status -c` above always does"


# --- section 3: one big file ----------------------------------------------------------------------


def write_big(path: Path, size_mb: int, seed: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            fh.write(rng.randbytes(MIB))


def section_big(s: Settings, tools: Tools, server: MotoServer) -> list[Row]:
    label = f"{s.big_mb} MiB" if s.big_mb != 1024 else "1 GiB"
    push = Row("push_big", f"push one {label} file (MiB/s)", "MiB/s", "vs_s3fs", 0.8)
    pull = Row("pull_big", "pull it into an empty cache (MiB/s)", "MiB/s", "vs_s3fs", 0.8)
    rows = [push, pull]
    try:
        _big(s, tools, server, push, pull)
    except Exception as exc:
        error = house.describe_error(exc)
        log(f"  big: {error}")
        for row in rows:
            row.error = row.error or error
    return rows


def _big(s: Settings, tools: Tools, server: MotoServer, push: Row, pull: Row) -> None:
    ours, theirs, notes = paired_projects(
        s, tools, "big", "data/big.bin", lambda path: write_big(path, s.big_mb)
    )
    inner: dict[str, list[float]] = {"put": [], "get": [], "fetch": []}
    for i in range(s.repeat):
        _big_round(s, tools, server, rows=(push, pull), projects=(ours, theirs), inner=inner)
        log(
            f"  round {i + 1}/{s.repeat}: push ours {push.ours[-1]:.0f} MiB/s, s3fs"
            f" {push.s3fs[-1]:.0f} (in-call {inner['put'][-1]:.0f})"
            + (f", dvc {push.dvc[-1]:.0f}" if push.dvc else "")
            + f"; pull ours {pull.ours[-1]:.0f} MiB/s (fetch only {inner['fetch'][-1]:.0f}),"
            f" s3fs {pull.s3fs[-1]:.0f} (in-call {inner['get'][-1]:.0f})"
            + (f", dvc {pull.dvc[-1]:.0f}" if pull.dvc else "")
        )
    med = statistics.median
    push.note = (
        f"ours {spread(push.ours)}; s3fs whole process, its put_file call alone:"
        f" {med(inner['put']):.0f} MiB/s; " + "; ".join(notes) + " (untimed)"
    )
    pull.note = (
        f"ours {spread(pull.ours)}; pull = fetch + checkout; `fetch` alone"
        f" {med(inner['fetch']):.0f} MiB/s; s3fs get_file call alone {med(inner['get']):.0f} MiB/s"
    )


def _big_round(
    s: Settings,
    tools: Tools,
    server: MotoServer,
    *,
    rows: tuple[Row, Row],
    projects: tuple[Path, Path | None],
    inner: dict[str, list[float]],
) -> None:
    """Push into new buckets, then pull into empty caches; the buckets are dropped after."""
    push, pull = rows
    ours, theirs = projects
    size = s.big_mb * MIB
    fetched = s.workdir / "s3fs-get.bin"

    def rate(seconds: float) -> float:
        return size / MIB / seconds

    buckets = [server.new_bucket("ours"), server.new_bucket("s3fs")]
    tools.point(ours, buckets[0])
    seconds, out = tools.pipeline(ours, "push", "--json")
    if push_summary(out)[1] < size:
        raise RuntimeError(f"push of the big file sent {push_summary(out)} (objects, bytes)")
    push.ours.append(rate(seconds))
    wall, call = tools.s3fs("put", str(ours / "data" / "big.bin"), f"{buckets[1]}/big.bin")
    push.s3fs.append(rate(wall))
    inner["put"].append(rate(call))
    if theirs is not None:
        buckets.append(server.new_bucket("dvc"))
        tools.dvc_point(theirs, buckets[2])
        push.dvc.append(rate(tools.dvc(theirs, "push", "-q")[0]))

    # pull: empty cache, no workspace file; ours and DVC also check the file out
    rmtree(ours / ".pipeline" / "cache")
    (ours / "data" / "big.bin").unlink()
    seconds, out = tools.pipeline(ours, "pull", "--json")
    if (ours / "data" / "big.bin").stat().st_size != size:
        raise RuntimeError("pull did not restore data/big.bin")
    pull.ours.append(rate(seconds))
    fetched.unlink(missing_ok=True)
    wall, call = tools.s3fs("get", f"{buckets[1]}/big.bin", str(fetched))
    if fetched.stat().st_size != size:
        raise RuntimeError("s3fs get_file returned a short file")
    pull.s3fs.append(rate(wall))
    inner["get"].append(rate(call))
    fetched.unlink()
    rmtree(ours / ".pipeline" / "cache")  # `fetch` alone (no checkout), into an empty cache
    inner["fetch"].append(rate(tools.pipeline(ours, "fetch")[0]))
    if theirs is not None:
        rmtree(theirs / ".dvc" / "cache")
        (theirs / "data" / "big.bin").unlink()
        pull.dvc.append(rate(tools.dvc(theirs, "pull", "-q")[0]))
    for bucket in buckets:
        server.drop_bucket(bucket)


# --- section 4: a 500-stage project on a fresh clone ----------------------------------------------


def section_clone(s: Settings, tools: Tools, server: MotoServer) -> list[Row]:
    stages = s.layers * s.width
    clone = Row("clone_git", "`git clone` of the project", "s")
    pull = Row("clone_pull", f"`pull` of {stages} stages' outputs and run-cache", "s")
    repro = Row("clone_repro", "`repro` then runs nothing", "s")
    total = Row("clone_total", "clone + pull + repro", "s")
    rows = [clone, pull, repro, total]
    try:
        _clone(s, tools, server, rows)
    except Exception as exc:
        error = house.describe_error(exc)
        log(f"  clone: {error}")
        for row in rows:
            row.error = row.error or error
    return rows


def _clone(s: Settings, tools: Tools, server: MotoServer, rows: list[Row]) -> None:
    clone, pull, repro, total = rows
    origin = s.workdir / "grid"
    gen_grid.generate(origin, layers=s.layers, width=s.width, files=10, input_mb=1)
    tools.git(origin, "init", "-q")
    tools.pipeline(origin, "add", gen_grid.INPUT)
    built, _ = tools.pipeline(origin, "repro", "-j", "2")
    bucket = server.new_bucket("grid")
    tools.point(origin, bucket)
    pushed, out = tools.pipeline(origin, "push", "--json")
    objects, size = push_summary(out)
    runs = sum(r["runs"] for r in json.loads(out))
    commit(tools, origin, "grid")
    log(
        f"  {s.layers * s.width} stages: repro {built:.2f} s, push {pushed:.2f} s"
        f" ({objects} objects, {size / MIB:.1f} MiB, {runs} run-cache entries,"
        f" {server.count(bucket)} S3 objects)"
    )
    pulled = ""
    for i in range(s.repeat):
        home = s.workdir / f"clone-home-{i}"
        rmtree(home)
        target = s.workdir / f"clone-{i}"
        rmtree(target)
        start = time.perf_counter()
        run_cmd(["git", "clone", "-q", str(origin), str(target)], env=tools.env(home))
        clone.ours.append(time.perf_counter() - start)
        seconds, out = tools.pipeline(target, "pull", "--json", home=home)
        pull.ours.append(seconds)
        got = json.loads(out)
        pulled = (
            f"{sum(r['objects']['transferred'] for r in got)} objects,"
            f" {sum(r['runs'] for r in got)} run-cache entries"
        )
        seconds, out = tools.pipeline(target, "repro", home=home)
        repro.ours.append(seconds)
        if "up to date" not in out or " ran " in out:
            raise RuntimeError(f"repro on the clone ran stages: {out.strip()[-300:]}")
        total.ours.append(clone.ours[-1] + pull.ours[-1] + repro.ours[-1])
        log(
            f"  clone {i + 1}/{s.repeat}: git clone {clone.ours[-1]:.3f} s, pull"
            f" {pull.ours[-1]:.3f} s ({pulled}), repro {repro.ours[-1]:.3f} s"
        )
        if not s.keep:
            rmtree(target)
            rmtree(home)
    pull.note = f"ours {spread(pull.ours)} s; {pulled}"
    repro.note = f"ours {spread(repro.ours)} s; it printed: {out.strip().splitlines()[-1]}"
    clone.note = f"ours {spread(clone.ours)} s"
    total.note = (
        f"ours {spread(total.ours)} s; origin: repro {built:.1f} s, push {pushed:.1f} s"
        f" ({objects} objects, {runs} run-cache entries); no DVC row: its cold repro of"
        " 500 stages takes ~700 s (bench/README.md)"
    )
    server.drop_bucket(bucket)


# --- reporting ------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "MiB/s":
        return f"{value:.0f} MiB/s"
    return f"{value:.3f} s"


def render(rows: Sequence[Row]) -> str:
    head = ["benchmark", "what", "ours", "DVC", "bare s3fs", "ratio", "target", "result", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        med = row.medians
        ratio = row.ratio
        if ratio is None:
            ratio_text = "—"
        elif row.check == "vs_s3fs":
            ratio_text = f"{ratio:.2f}x (ours/s3fs)"
        else:
            ratio_text = f"{ratio:.1f}x (DVC/ours)"
        note = (row.error or row.note).replace("|", "\\|")
        cells = [
            row.name,
            row.what,
            fmt(med["ours"], row.unit),
            fmt(med["dvc"], row.unit),
            fmt(med["s3fs"], row.unit),
            ratio_text,
            row.target_text,
            row.verdict,
            note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def meta(s: Settings, dvc_version: str | None, started: float, load: float) -> dict[str, Any]:
    return {
        "loadavg_start": load,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "cli": s.cli,
        "dvc": s.dvc,
        "dvc_version": dvc_version,
        "repeat": s.repeat,
        "quick": s.quick,
        "files": s.files,
        "big_mb": s.big_mb,
        "stages": s.layers * s.width,
        "seconds": round(time.perf_counter() - started, 1),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "revision": revision(),
    }


def revision() -> str:
    """This checkout's commit, with `+dirty` when pipeline/ has uncommitted changes."""
    git = ["git", "-C", str(house.REPO)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
        diff = [*git, "diff", "--quiet", "HEAD", "--", "pipeline"]
        dirty = subprocess.run(diff, check=False).returncode
    except OSError:
        return "?"
    return head.stdout.strip() + ("+dirty" if dirty else "")


# --- the bare s3fs baseline, run in its own interpreter -------------------------------------------


def s3fs_driver(argv: Sequence[str]) -> int:
    """`remotebench.py s3fs put|get SRC DST --endpoint URL`: prints {"seconds": ...}."""
    parser = argparse.ArgumentParser(prog="remotebench.py s3fs")
    parser.add_argument("op", choices=["put", "get"])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    import s3fs  # noqa: PLC0415

    fs = s3fs.S3FileSystem(endpoint_url=args.endpoint, skip_instance_cache=True)
    start = time.perf_counter()
    if args.op == "put":
        fs.put_file(args.src, args.dst)
    else:
        fs.get_file(args.src, args.dst)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


# --- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dvc", metavar="EXE", help="the dvc executable (with dvc[s3])")
    parser.add_argument("--repeat", type=int, help="rounds per measurement (5; 3 with --quick)")
    parser.add_argument(
        "--quick", action="store_true", help="200 files, 16 MiB, 20 stages: about a minute"
    )
    parser.add_argument("--files", type=int, help="small files (10,000; 200 with --quick)")
    parser.add_argument("--big-mb", type=int, help="size of the big file in MiB (1024; 16)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument("--workdir", type=Path, help="where projects go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the projects")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    args.files = args.files or (200 if args.quick else 10_000)
    args.big_mb = args.big_mb or (16 if args.quick else 1024)
    return args


@contextlib.contextmanager
def workdir_for(args: argparse.Namespace) -> Iterator[Path]:
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            raise SystemExit(f"--workdir {args.workdir} is not empty")
        yield args.workdir.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="pipeline-remotebench-", dir="/tmp"))
    try:
        yield path
    finally:
        if args.keep:
            log(f"kept {path}")
        else:
            rmtree(path)


def dvc_version(exe: str | None) -> str | None:
    if not exe:
        log("no --dvc given: DVC columns stay empty (e.g. --dvc /tmp/dvc-venv/bin/dvc)")
        return None
    try:
        out = subprocess.run([exe, "--version"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"--dvc {exe} does not run: {exc}") from None
    return out.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["s3fs"]:
        return s3fs_driver(argv[1:])
    args = parse_args(argv)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    version = dvc_version(args.dvc)
    house.compile_package()
    cli, cli_env = house.resolve_cli()
    layers, width = (2, 10) if args.quick else (25, 20)
    rows: list[Row] = []
    with workdir_for(args) as workdir:
        s = Settings(
            args.repeat,
            args.quick,
            args.files,
            args.big_mb,
            layers,
            width,
            workdir,
            cli,
            dict(cli_env or os.environ),
            args.dvc,
            args.keep,
        )
        server = MotoServer(workdir)
        try:
            tools = Tools(s, server)
            sections = {"small": section_small, "big": section_big, "clone": section_clone}
            for name in args.only or SECTIONS:
                log(f"{name} ...")
                rows += sections[name](s, tools, server)
        finally:
            server.stop()
            log(f"moto server pid {server.proc.pid} stopped")
    info = meta(s, version, started, load)
    print(
        f"pipeline remote benchmarks — {info['cpus']} CPUs, Python {info['python']},"
        f" repeat {s.repeat}{', quick' if s.quick else ''}, {s.files:,} small files,"
        f" {s.big_mb} MiB big file, {layers * width} stages; moto {moto_version()};"
        f" {version or 'no DVC'}; load average {load:.2f} at the start,"
        f" {info['loadavg'][0]:.2f} at the end; {info['seconds']:.0f} s; {info['revision']}\n"
    )
    print(render(rows))
    if args.json:
        payload = {"meta": info, "rows": [row.to_json() for row in rows]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if any(row.error for row in rows) else 0


def moto_version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("moto")
    except Exception:  # only for the header
        return "?"


if __name__ == "__main__":
    sys.exit(main())
