"""A remote: the cache's objects, run-cache entries and run records on any fsspec URL.

    <url>/files/xxh3/ab/cdef…        one object, as in the local cache (files, trees, logs)
    <url>/packs/<id>.pack, .idx      many small objects in one file, and where each one lies
    <url>/runs/xxh3/ab/cdef….json    a run-cache entry
    <url>/records/<project>/<id>.json  a run record (`push --runs`)
    <url>/pipeline-remote.json       the format, and a generation that `gc --remote` renews

Backends are fsspec's: a local path or `file://`, `s3://` (s3fs), `gs://` (gcsfs), `azure://`
(adlfs), `ssh://` (sshfs), `hdfs://` (pyarrow), `http(s)://` (read-only). Each is an extra; a
missing one is an error naming the `pip install`. Every failure of the backend becomes one
`DataError` (exit 4) saying what went wrong and what was tried; a network error is never taken
for "absent" (`size` raises instead of answering None).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import importlib.util
import json
import os
import secrets
import threading
import urllib.parse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.config import RemoteSettings
from pipeline.core.hashing import ALGORITHM
from pipeline.core.suggest import suggest_name
from pipeline.errors import DataError, UsageError

T = TypeVar("T")
MARKER = "pipeline-remote.json"
FORMAT = "pipeline-remote 1"

# protocol → (module the backend needs, the extra that installs it)
_BACKENDS = {
    "s3": ("s3fs", "s3"),
    "gs": ("gcsfs", "gs"),
    "gcs": ("gcsfs", "gs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "ssh": ("sshfs", "ssh"),
    "sftp": ("sshfs", "ssh"),
    "hdfs": ("pyarrow", "hdfs"),
    "http": ("aiohttp", "http"),
    "https": ("aiohttp", "http"),
}
_ALIASES = {"azure": "az", "file": "file", "local": "file"}
# config option → the backend's keyword, per protocol family ("client:" goes in client_kwargs)
_OPTIONS: dict[str, dict[str, str]] = {
    "s3": {
        "endpoint_url": "endpoint_url",
        "region": "client:region_name",
        "profile": "profile",
        "access_key_id": "key",
        "secret_access_key": "secret",
        "session_token": "token",
        "use_ssl": "use_ssl",
        "ssl_verify": "client:verify",
        "anon": "anon",
    },
    "gs": {"project": "project", "credentialpath": "token", "token": "token", "anon": "anon"},
    "az": {
        "account_name": "account_name",
        "account_key": "account_key",
        "connection_string": "connection_string",
        "sas_token": "sas_token",
        "anon": "anon",
    },
    "ssh": {
        "user": "username",
        "port": "port",
        "keyfile": "client_keys",
        "password": "password",
        "known_hosts": "known_hosts",
    },
    "hdfs": {"host": "host", "port": "port", "user": "user"},
    "http": {},
    "file": {},
}
_COMMON = {"jobs", "recheck"}
# How long what this machine knows a remote holds is trusted before the remote's generation is
# read again (a `gc --remote` elsewhere renews it): meanwhile a no-op command sends no request.
RECHECK_SECONDS = 600
_FAMILY = {"gcs": "gs", "abfs": "az", "sftp": "ssh", "https": "http"}
_ATOMIC_RENAME = {"file", "ssh", "hdfs"}  # object stores write whole objects atomically anyway


class Remote:
    """One opened remote: its fsspec filesystem, where things go on it, and error translation."""

    def __init__(self, settings: RemoteSettings, project_root: Path) -> None:
        self.name = settings.name
        self.protocol, location = _split(settings.url, project_root)
        self.family = _FAMILY.get(self.protocol, self.protocol)
        self.url = settings.url
        self.read_only = self.family == "http"
        self.jobs = _jobs(settings, self.family)
        self.recheck = _whole(settings, "recheck", RECHECK_SECONDS, least=0)
        self._location = location
        self._kwargs = _kwargs(self.name, self.family, settings.options)
        _require(self.protocol)  # a missing extra is said at once, not at the first request
        self.base = _base(self.protocol, location)
        self.key = f"{self.protocol}://{self.base}"  # what the known-objects index is keyed by
        self._fs: Any = None
        self._opening = threading.Lock()
        self._writing: set[str] = set()  # temp names of uploads under way

    @property
    def fs(self) -> Any:
        """The backend's filesystem, opened on first use: a command the known-objects index
        answers never imports or connects to it."""
        with self._opening:
            if self._fs is None:
                self._fs = self._open()
        return self._fs

    @fs.setter
    def fs(self, value: Any) -> None:
        self._fs = value

    def _open(self) -> Any:
        import fsspec  # noqa: PLC0415 - fsspec and its backends load only for remote commands

        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*DSA.*")  # see _require
                fs, path = fsspec.core.url_to_fs(self._location, **self._kwargs)
        except Exception as exc:  # the backend's own errors: connection, login, options
            raise self.explain(exc, "connect") from None
        if str(path).rstrip("/") != self.base:
            raise DataError(
                f"remote {self.name!r}: {self.url} opens as {path!r}, not {self.base!r}",
                "report this: the url's form is not understood",
            )
        if getattr(fs, "async_impl", False):
            _quiet_orphans()
        return fs

    # --- where things are ----------------------------------------------------------------

    def object_path(self, digest: str) -> str:
        hexdigest = _hex(digest)
        return f"{self.base}/files/{ALGORITHM.split('_')[0]}/{hexdigest[:2]}/{hexdigest[2:]}"

    def run_path(self, fingerprint: str) -> str:
        hexdigest = _hex(fingerprint)
        return f"{self.base}/runs/{ALGORITHM.split('_')[0]}/{hexdigest[:2]}/{hexdigest[2:]}.json"

    def pack_path(self, pack: str, suffix: str) -> str:
        return f"{self.base}/packs/{pack}.{suffix}"

    def record_path(self, project: str, run_id: str) -> str:
        return f"{self.base}/records/{project}/{run_id}.json"

    def relative(self, path: str) -> str:
        return path[len(self.base) + 1 :] if path.startswith(self.base + "/") else path

    # --- operations ----------------------------------------------------------------------

    def size(self, path: str) -> int | None:
        """The size of `path`, None when it is absent; a network error raises (unknown)."""
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        except (DataError, UsageError):
            raise
        except Exception as exc:
            raise self.explain(exc, f"look up {self.relative(path)}") from None
        return int(info.get("size") or 0)

    def put_file(self, local: str, path: str) -> None:
        """Upload a file; where a reader could see a partial file, via a temp name and rename."""
        self._call(lambda: self._put(local, path), f"upload {self.relative(path)}")

    def _put(self, local: str, path: str) -> None:
        self._check_writable()
        self._atomically(path, lambda target: self.fs.put_file(local, target))

    def write_bytes(self, path: str, data: bytes) -> None:
        """A small file (an entry, a record, an index), written whole."""

        def write() -> None:
            self._check_writable()
            self._atomically(path, lambda target: self.fs.pipe_file(target, data))

        self._call(write, f"write {self.relative(path)}")

    def _atomically(self, path: str, write: Callable[[str], None]) -> None:
        """`write(target)`, where a reader could see a partial file via a temp name then a
        rename (object stores write whole objects anyway)."""
        if self.protocol not in _ATOMIC_RENAME:
            write(path)
            return
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp-{secrets.token_hex(6)}"
        self._writing.add(tmp)
        try:
            write(tmp)
            self.fs.mv(tmp, path)
        except BaseException:
            self._forget(tmp)
            raise
        finally:
            self._writing.discard(tmp)

    def abandon(self) -> None:
        """Remove the temp files of uploads under way (Ctrl-C: the process ends before its
        transfer threads can clean up after themselves)."""
        for tmp in list(self._writing):
            self._forget(tmp)

    def get_file(self, path: str, local: str) -> None:
        self._call(lambda: self.fs.get_file(path, local), f"download {self.relative(path)}")

    def read_bytes(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        """A file's bytes (or `start:end` of them); FileNotFoundError when it is absent."""
        try:
            if (start is not None or end is not None) and self.family == "ssh":
                data = self._read_range(path, start or 0, end)
            else:
                data = self.fs.cat_file(path, start=start, end=end)
        except (FileNotFoundError, DataError, UsageError):
            raise
        except Exception as exc:
            raise self.explain(exc, f"read {self.relative(path)}") from None
        return data

    def _read_range(self, path: str, start: int, end: int | None) -> bytes:
        """sshfs's cat_file ignores a range: seek and read instead."""
        with self.fs.open(path, "rb") as handle:
            handle.seek(start)
            data: bytes = handle.read(-1 if end is None else end - start)
        return data

    def check_root(self) -> None:
        """A remote never written to: make sure its bucket exists (else a pull finds nothing and
        would call every object missing)."""
        if self.family not in ("s3", "gs", "az"):
            return
        bucket = self.base.split("/", 1)[0]
        try:
            exists = self.fs.exists(bucket)
        except Exception as exc:
            raise self.explain(exc, f"look up the bucket {bucket}") from None
        if not exists:
            raise DataError(
                f"remote {self.name!r} ({self.url}): the bucket does not exist ({bucket})",
                "create it, or fix the url (`pipeline remote modify NAME url URL`)",
            )

    def find(self, prefix: str) -> list[str]:
        """Every file below `prefix` (a path relative to the remote), as relative paths."""
        base = f"{self.base}/{prefix}".rstrip("/")
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        except (DataError, UsageError):
            raise
        except Exception as exc:
            raise self.explain(exc, f"list {prefix}") from None
        return [self.relative(str(p).rstrip("/")) for p in found if ".tmp-" not in str(p)]

    def find_sizes(self, prefix: str) -> dict[str, int]:
        """Every file below `prefix` with its size, as relative paths."""
        base = f"{self.base}/{prefix}".rstrip("/")
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        except (DataError, UsageError):
            raise
        except Exception as exc:
            raise self.explain(exc, f"list {prefix}") from None
        return {
            self.relative(str(p).rstrip("/")): int(info.get("size") or 0)
            for p, info in found.items()
            if ".tmp-" not in str(p)
        }

    def delete(self, paths: list[str]) -> None:
        if paths:
            self._call(lambda: self.fs.rm(paths), f"delete {len(paths)} files")

    def _forget(self, path: str) -> None:
        with contextlib.suppress(Exception):  # cleanup after a failure, which is what we report
            self.fs.rm_file(path)

    def _check_writable(self) -> None:
        if self.read_only:
            raise UsageError(
                f"remote {self.name!r} ({self.url}) is read-only: http(s) remotes serve pulls",
                "push to another remote (s3://, gs://, ssh://, a directory…)",
            )

    def _call(self, action: Callable[[], T], what: str) -> T:
        try:
            return action()
        except (DataError, UsageError):
            raise
        except Exception as exc:
            raise self.explain(exc, what) from None

    # --- the generation marker -----------------------------------------------------------

    def generation(self) -> str | None:
        """The remote's generation (renewed by `gc --remote`), None on a remote never pushed."""
        try:
            data = json.loads(self.read_bytes(f"{self.base}/{MARKER}"))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            raise DataError(
                f"remote {self.name!r}: {MARKER} is damaged", "restore it or rewrite it by a push"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(
                f"remote {self.name!r} ({self.url}) is not in this version's format",
                f"its {MARKER} says {data.get('format') if isinstance(data, dict) else data!r}",
            )
        return str(data.get("generation"))

    def renew_generation(self) -> str:
        """Start a new generation: every client's list of known objects becomes stale."""
        token = secrets.token_hex(8)
        body = json.dumps({"format": FORMAT, "generation": token}).encode()
        self.write_bytes(f"{self.base}/{MARKER}", body)
        return token

    # --- errors --------------------------------------------------------------------------

    def explain(self, exc: BaseException, what: str) -> DataError:
        """One line for what went wrong, with what was tried and what to do."""
        return explain(exc, f"remote {self.name!r} ({self.url})", self.family, what)


def explain(exc: BaseException, who: str, family: str, what: str) -> DataError:
    """A backend's exception as a `DataError`: absent bucket, credentials, network, disk."""
    kind, text = type(exc).__name__, str(exc) or type(exc).__name__
    local = _local_cause(exc, who, what, text)
    if local is not None:
        return local
    if _is_network(exc, kind):
        return _unreachable(who, what, kind, text)
    if _is_credentials(kind, text) or isinstance(exc, PermissionError):
        return DataError(f"{who} refused access: {text}", _CREDENTIALS.get(family, _NO_CRED))
    if _is_missing_bucket(kind, text):
        return DataError(f"{who}: the bucket does not exist ({text})", "create it, or fix the url")
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{who}: not found while trying to {what}: {text}")
    return _unreachable(who, what, kind, text)


def _local_cause(exc: BaseException, who: str, what: str, text: str) -> DataError | None:
    """This machine's fault, not the remote's: a full disk, a backend's missing module."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DataError(f"disk full while trying to {what} from {who}", "free some space")
    if isinstance(exc, ModuleNotFoundError):
        return DataError(f"{who}: {text}", "install the remote's extra (see pipeline remote list)")
    return None


def _unreachable(who: str, what: str, kind: str, text: str) -> DataError:
    return DataError(
        f"{who} did not answer while trying to {what}: {kind}: {text}",
        "check the url and the network; nothing was half-written, run the command again",
    )


def _is_network(exc: BaseException, kind: str) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    names = {k.__name__ for k in type(exc).__mro__}
    markers = ("EndpointConnectionError", "ConnectTimeout", "ReadTimeout", "ClientConnectorError")
    return any(m in names for m in markers) or kind in ("ServerDisconnectedError",)


def _is_missing_bucket(kind: str, text: str) -> bool:
    lowered = text.lower()
    return (
        "NoSuchBucket" in kind
        or "NoSuchBucket" in text
        or "specified bucket does not exist" in lowered
        or "ContainerNotFound" in text
        or "bucket does not exist" in lowered
    )


def _is_credentials(kind: str, text: str) -> bool:
    markers = ("NoCredentials", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")
    return any(m in kind or m in text for m in markers) or "PermissionDenied" in kind


_NO_CRED = "check the remote's credentials in .pipeline/config.local.yaml"
_CREDENTIALS = {
    "s3": (
        "tried, in order: access_key_id/secret_access_key in .pipeline/config.local.yaml, "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile option or AWS_PROFILE, "
        "~/.aws/credentials and ~/.aws/config, then the instance's role"
    ),
    "gs": (
        "tried: credentialpath in .pipeline/config.local.yaml, GOOGLE_APPLICATION_CREDENTIALS, "
        "gcloud's application-default login, then the instance's account"
    ),
    "az": (
        "tried: connection_string, account_key or sas_token in .pipeline/config.local.yaml, "
        "AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_KEY, then Azure's default credential"
    ),
    "ssh": (
        "tried: keyfile/password in .pipeline/config.local.yaml, then ssh-agent and "
        "~/.ssh/id_* keys; check the user in the url"
    ),
}


_CLIENTS = ("aiohttp", "asyncssh", "botocore", "aiobotocore")


@functools.cache
def _quiet_orphans() -> None:
    """An aborted transfer leaves the backend's request tasks to die on fsspec's event loop,
    which logs each ("Task exception was never retrieved"); the transfer's own error is what
    the user gets, in one line."""
    from fsspec.asyn import get_loop  # noqa: PLC0415 - remote commands only

    loop = get_loop()

    def handle(loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        network = isinstance(exc, OSError) or type(exc).__module__.startswith(_CLIENTS)
        if not network:
            loop.default_exception_handler(context)

    loop.call_soon_threadsafe(loop.set_exception_handler, handle)


def _split(url: str, project_root: Path) -> tuple[str, str]:
    """(protocol, location for fsspec): a plain path is a directory, relative to the project."""
    if "://" not in url:
        path = Path(os.path.expanduser(url))
        return "file", str(path if path.is_absolute() else (project_root / path).resolve())
    protocol, rest = url.split("://", 1)
    protocol = _ALIASES.get(protocol.lower(), protocol.lower())
    if protocol not in _BACKENDS and protocol != "file":
        raise UsageError(
            f"unsupported remote url {url!r}",
            "use a directory, file://, s3://, gs://, azure://, ssh://, hdfs:// or http(s)://",
        )
    return protocol, f"{protocol}://{rest}"


def _base(protocol: str, location: str) -> str:
    """The remote's root as its backend names paths (without importing the backend)."""
    if protocol == "file":
        return os.path.abspath(location.removeprefix("file://")).rstrip("/") or "/"
    if protocol in ("http", "https"):
        return location.rstrip("/")
    if protocol in ("ssh", "sftp", "hdfs"):
        return urllib.parse.urlsplit(location).path.rstrip("/")
    rest = location.split("://", 1)[1]
    container, _, path = rest.partition("/")
    return f"{container.split('@')[0]}/{path}".rstrip("/")  # abfs://container@account/path


def _require(protocol: str) -> None:
    """The backend's module is installed, or one line names the `pip install`; importing the
    module itself waits for the first request (see `Remote.fs`)."""
    if protocol == "file":
        return
    module, extra = _BACKENDS[protocol]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):  # e.g. blocked in sys.modules
        found = False
    if not found:
        raise UsageError(
            f"{protocol}:// remotes need {module}, which is not installed",
            f"pip install 'pipeline[{extra}]'",
        ) from None


def _kwargs(name: str, family: str, options: dict[str, Any]) -> dict[str, Any]:
    known = _OPTIONS.get(family, {})
    kwargs: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for key, value in options.items():
        if key in _COMMON:
            continue
        if key not in known:
            allowed = sorted([*known, *_COMMON])
            raise UsageError(
                f"remote {name!r}: unknown option {key!r} for {family} remotes",
                suggest_name(key, allowed, "known: " + ", ".join(allowed)),
            )
        target = known[key]
        if target.startswith("client:"):
            client[target.split(":", 1)[1]] = value
        elif target == "client_keys":
            kwargs[target] = [os.path.expanduser(str(value))]
        else:
            kwargs[target] = value
    if client:
        kwargs["client_kwargs"] = client
    if family == "s3":
        kwargs.setdefault("skip_instance_cache", True)
    return kwargs


def option_names(family: str) -> list[str]:
    """The options a remote of this family takes (for `remote modify`'s checks)."""
    return sorted([*_OPTIONS.get(family, {}), *_COMMON, "url"])


def backend_module(url: str) -> str | None:
    """The module a remote at `url` needs (None: a directory needs none)."""
    protocol = _split(url, Path("."))[0]
    return None if protocol == "file" else _BACKENDS[protocol][0]


def family_of(url: str) -> str:
    protocol = _split(url, Path("."))[0]
    return _FAMILY.get(protocol, protocol)


def _jobs(settings: RemoteSettings, family: str) -> int:
    return _whole(settings, "jobs", _default_jobs(family), least=1)


def _whole(settings: RemoteSettings, key: str, default: int, *, least: int) -> int:
    """A whole-number option (a bad value in a config file: one line naming it)."""
    value = settings.options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(
            f"remote {settings.name!r}: {key} must be a whole number of at least {least}, "
            f"not {value!r}",
            f"pipeline remote modify {settings.name} {key} {default}",
        )
    return value


def _default_jobs(family: str) -> int:
    cpus = os.cpu_count() or 1
    return 4 * cpus if family in ("s3", "gs", "az", "http") else min(8, 2 * cpus)


def _hex(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != ALGORITHM or len(hexdigest) < 3:
        raise DataError(f"not an object hash: {digest!r}", "the lock file may be damaged")
    return hexdigest
