"""Real remotes on loopback for the remote tests: an S3 server (moto), an sshd, a directory.

The servers are started by the test run and stopped by it, by PID where they are processes:
- `moto_server` (session): moto's `ThreadedMotoServer` on a free port, in this process;
- `moto_process` (function): moto as its own process, for a test that kills it mid-transfer
  (`start_moto(dir, env)` starts another, e.g. one that checks credentials);
- `sshd` (session): Debian's openssh-server as its own `sshd -D` on a free port, with a host
  key and a user key generated for the run (skipped, with the reason, where it is missing).

`s3_remote`, `ssh_remote` and `local_remote` (function) each give a fresh, empty remote as a
`RemoteSpec` (url, options, env for a CLI subprocess); `any_remote` is each of the three in
turn. `configure` writes a spec into a project's config the way a user would (`remote add`,
then `remote modify` per option). `isolate_aws` keeps the developer's AWS settings out,
`serve_directory` serves a directory over HTTP (read-only remotes), and `closed_port` is a
port nothing listens on.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.config import SECRET_KEYS, RemoteSettings

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
STARTUP_SECONDS = 20.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that would point boto at another account, profile, endpoint or certificate store.
_AWS_LEAKS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
# Options that are this machine's (key paths) or secret: `remote modify --local`.
_LOCAL_OPTIONS = frozenset({"keyfile", "known_hosts", "profile"}) | SECRET_KEYS

with warnings.catch_warnings():  # asyncssh's import warns about DSA (filterwarnings = error)
    warnings.simplefilter("ignore")
    with contextlib.suppress(ImportError):
        import asyncssh  # noqa: F401


@dataclass(frozen=True)
class RemoteSpec:
    """A remote as a user configures it: url, options (`remote modify`), and the variables a
    CLI subprocess needs to reach it (the backend's own credential chain), to add to its
    environment: `cli_env(**spec.env)`."""

    url: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    env: dict[str, str] = field(default_factory=dict, hash=False)

    def settings(self, name: str = "origin") -> RemoteSettings:
        return RemoteSettings(name, self.url, dict(self.options))


def configure(
    project_root: Path, spec: RemoteSpec, name: str = "origin", default: bool = True
) -> None:
    """`pipeline remote add NAME URL [-d]`, then `remote modify [--local] NAME KEY VALUE` per
    option (secrets and this machine's key paths go to config.local.yaml)."""
    from pipeline import api

    api.remote_add(project_root, name, spec.url, default=default)
    for key, value in spec.options.items():
        api.remote_modify(project_root, name, key, str(value), local=key in _LOCAL_OPTIONS)


# --- ports and processes ---------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on now (a server started on it may still lose a race: retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port on loopback that refuses connections (nothing listens there)."""
    return free_port()


def stop_process(proc: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    """SIGTERM by PID, then SIGKILL if it lingers; reaps it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(seconds)


def _wait_until(ready: Any, proc: subprocess.Popen[bytes] | None, what: str, log: Path) -> None:
    """Poll `ready()` until it is true; fail with the server's log if it dies or never is."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise _Died(f"{what} exited ({proc.returncode}): {_tail(log)}")
        if ready():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not become ready in {STARTUP_SECONDS} s: {_tail(log)}")


class _Died(RuntimeError):
    """A server process exited while starting (typically: its port was taken meanwhile)."""


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except FileNotFoundError:
        return "(no log)"


# --- S3 (moto) -------------------------------------------------------------------------------


@dataclass
class S3Server:
    """A moto S3 server: its endpoint, and its PID when it runs as its own process."""

    endpoint: str
    pid: int | None = None
    _stop: Any = None

    def stop(self) -> None:
        """Stop the server (a process: by its PID, then reaped)."""
        if self._stop is not None:
            self._stop()
            self._stop = None

    def new_bucket(self) -> str:
        """Create a bucket with a unique name; return the name."""
        name = f"pipeline-{uuid.uuid4().hex[:16]}"
        s3_client(self.endpoint).create_bucket(Bucket=name)
        return name

    def spec(self, bucket: str, prefix: str = "store", home: Path | None = None) -> RemoteSpec:
        """`s3://BUCKET/PREFIX` with this server's `endpoint_url`; `env` is `aws_env(home)`."""
        return RemoteSpec(f"s3://{bucket}/{prefix}", {"endpoint_url": self.endpoint}, aws_env(home))


@functools.cache
def s3_client(endpoint: str) -> Any:
    """A boto3 client for the moto server (for setting up and inspecting buckets); one per
    endpoint, since making one takes most of a second."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def _answers_http(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


def aws_env(home: Path | None = None) -> dict[str, str]:
    """The test credentials, and no ~/.aws: config files that do not exist (in `home`), or
    /dev/null without one; no instance role; loopback never through a proxy."""
    nowhere = home / "no-aws" if home is not None else None
    return {
        **CREDENTIALS,
        "AWS_CONFIG_FILE": str(nowhere / "config") if nowhere else os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere / "credentials") if nowhere else os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance role
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def isolate_aws(monkeypatch: pytest.MonkeyPatch, home: Path) -> dict[str, str]:
    """`aws_env(home)` in this process's environment, and none of the developer's AWS
    variables (profile, token, endpoint…); returns the variables set (for a CLI subprocess)."""
    for key in _AWS_LEAKS:
        monkeypatch.delenv(key, raising=False)
    env = aws_env(home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, in a thread of this process (one per worker)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    running = S3Server(f"http://{host}:{port}", None, server.stop)
    yield running
    running.stop()


def start_moto(directory: Path, env: dict[str, str] | None = None) -> S3Server:
    """moto's S3 server as its own process (`python -m moto.server`) on a free port, ready;
    `env` adds variables (e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to make it check credentials)."""
    log = directory / f"moto-{uuid.uuid4().hex[:8]}.log"
    for _ in range(5):
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        endpoint = f"http://127.0.0.1:{port}"
        try:  # the dashboard answers without counting as an S3 request
            _wait_until(lambda e=endpoint: _answers_http(e + "/moto-api/"), proc, "moto", log)
        except _Died:
            continue  # the port was taken between choosing and binding it: another
        except BaseException:
            stop_process(proc)
            raise
        return S3Server(endpoint, proc.pid, functools.partial(stop_process, proc))
    raise RuntimeError(f"moto server never started: {_tail(log)}")


@pytest.fixture
def moto_process(tmp_path: Path) -> Iterator[S3Server]:
    """moto's S3 server as its own process, which a test may kill by `pid` mid-transfer;
    stopped by PID at the end if it still runs."""
    server = start_moto(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def s3_remote(moto_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RemoteSpec:
    """A fresh bucket on the session's moto server: `s3://BUCKET/store`, `endpoint_url`."""
    isolate_aws(monkeypatch, tmp_path)
    return moto_server.spec(moto_server.new_bucket(), home=tmp_path)


# --- SSH (openssh-server) --------------------------------------------------------------------


@dataclass(frozen=True)
class SshServer:
    """A running sshd: where it listens, who may log in, with which key, and its host key."""

    host: str
    port: int
    user: str
    keyfile: Path
    known_hosts: Path
    pid: int

    def spec(self, directory: Path) -> RemoteSpec:
        return RemoteSpec(
            f"ssh://{self.user}@{self.host}:{self.port}{directory}",
            {"keyfile": str(self.keyfile), "known_hosts": str(self.known_hosts)},
            {},
        )


def _keygen(path: Path) -> str:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "pipeline-tests", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def _sends_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _sshd_config(home: Path, port: int) -> Path:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {home / 'host_key'}",
        f"AuthorizedKeysFile {home / 'authorized_keys'}",
        f"PidFile {home / 'sshd.pid'}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
    ]
    config = home / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """Debian's sshd on a free loopback port, with this run's host and user keys."""
    if not SSHD.exists():
        pytest.skip(
            "openssh-server is not installed: apt-get install -y openssh-server (done by .ci/run)"
        )
    home = tmp_path_factory.mktemp("sshd").resolve()
    host_pub = _keygen(home / "host_key")
    (home / "authorized_keys").write_text(_keygen(home / "user_key") + "\n")
    with contextlib.suppress(OSError):  # privilege separation directory (as root)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = home / "sshd.log"
    for _ in range(5):
        port = free_port()
        config = _sshd_config(home, port)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_until(lambda p=port: _sends_banner(p), proc, "sshd", log)
            break
        except _Died:
            continue
    else:
        raise RuntimeError(f"sshd never started: {_tail(log)}")
    known_hosts = home / "known_hosts"
    key_type, key = host_pub.split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key}\n")
    yield SshServer("127.0.0.1", port, getpass.getuser(), home / "user_key", known_hosts, proc.pid)
    stop_process(proc)


@pytest.fixture
def ssh_remote(sshd: SshServer, tmp_path: Path) -> RemoteSpec:
    """A fresh directory reached over SSH: `ssh://USER@127.0.0.1:PORT/ABS/store`."""
    directory = (tmp_path / "ssh-remote").resolve()
    directory.mkdir()
    return sshd.spec(directory / "store")


# --- a static HTTP server (read-only remotes) -------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A static HTTP server for `directory` on a free loopback port, in a thread of this
    process; yields its base url."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- a directory -----------------------------------------------------------------------------


@pytest.fixture
def local_remote(tmp_path: Path) -> RemoteSpec:
    """A plain directory (a mounted NAS, as far as the project can tell)."""
    directory = (tmp_path / "local-remote").resolve()
    directory.mkdir()
    return RemoteSpec(str(directory / "store"))


@pytest.fixture(params=["local", "s3", "ssh"])
def any_remote(request: pytest.FixtureRequest) -> RemoteSpec:
    """Each kind of remote in turn: a directory, S3 (moto), SSH (sshd)."""
    spec: RemoteSpec = request.getfixturevalue(f"{request.param}_remote")
    return spec
