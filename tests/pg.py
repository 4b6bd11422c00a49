"""A real PostgreSQL server for tests: Debian's binaries, a cluster in tmp, a unix socket only.

Use it from a test module by importing the fixtures:

    from tests.pg import pg_server, pg_url  # noqa: F401 (fixtures)

`pg_server` is one server per test session (per xdist worker): `initdb` into a fresh directory
under /tmp, `postgres` started as our child listening on a unix socket in that directory and on
no TCP port at all, stopped by its PID at the end of the session. `pg_url` is a new, empty
database on it for each test, as a `postgresql://` URL. Without Debian's `postgresql` package
(`/usr/lib/postgresql/*/bin`, installed by `.ci/run`) or psycopg, tests using them skip.

As root, `initdb` refuses to run: the cluster then belongs to the `postgres` user the package
creates (or `nobody`), in a /tmp directory that user owns; tmp_path's 0700 parents would shut
it out.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PORT = 5432  # only names the socket file: there is no TCP listener
SUPERUSER = "postgres"
_databases = itertools.count()


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> tuple[int, ...]:
    part = Path(path).parent.parent.name
    return tuple(int(p) for p in part.split(".") if p.isdigit())


@dataclass(frozen=True)
class PgServer:
    """A running server: its socket directory and the process serving it."""

    socket_dir: Path
    process: subprocess.Popen[bytes]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={PORT}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _owner() -> pwd.struct_passwd | None:
    """Who runs the server: us, unless we are root (then `postgres`, or `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.skip("running as root and there is no postgres or nobody user to run PostgreSQL")


def _run_as(owner: pwd.struct_passwd | None) -> dict[str, Any]:
    if owner is None:
        return {}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _start(bindir: Path, root: Path, owner: pwd.struct_passwd | None) -> PgServer:
    data, log = root / "data", root / "server.log"
    as_owner = _run_as(owner)
    env = {**os.environ, "LC_ALL": "C", "HOME": str(root)}
    subprocess.run(
        [bindir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "-N", "-E", "UTF8"],
        cwd=root, env=env, check=True, capture_output=True, **as_owner,
    )  # fmt: skip
    settings = {
        "listen_addresses": "",  # no TCP at all: only the socket below
        "unix_socket_directories": str(root),
        "port": str(PORT),
        "fsync": "off",  # a throwaway cluster: durability costs time and proves nothing here
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "60",
    }
    args = [f"-c{k}={v}" for k, v in settings.items()]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [bindir / "postgres", "-D", data, *args],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, **as_owner,
        )  # fmt: skip
    server = PgServer(root, process)
    _wait_ready(server, log)
    return server


def _wait_ready(server: PgServer, log: Path) -> None:
    """Until the server accepts a connection (it dies, or a minute passes: fail with its log)."""
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}")
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.05)


def _stop(server: PgServer) -> None:
    """A fast shutdown (SIGINT) of our own child, by its PID."""
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGINT)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session; skips without Debian's binaries."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql package: .ci/run)")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    try:
        server = _start(bindir, root, owner)
        try:
            yield server
        finally:
            _stop(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A new, empty database on the session's server, as a `postgresql://` URL."""
    return pg_server.create_database()
