"""A remote on each backend (a directory, S3 on moto, SSH on sshd, read-only HTTP): where things
go, reads and writes, atomic writes, options and extras, and backend errors as one `DataError`
(a network error is never taken for "absent").
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.config import RemoteSettings, load_config
from pipeline.core.hashing import ALGORITHM, digest_bytes
from pipeline.errors import DataError, UsageError
from pipeline.store import remote as remote_module
from pipeline.store.remote import MARKER, Remote, explain
from tests.conftest import Project
from tests.servers import (
    RemoteSpec,
    S3Server,
    SshServer,
    closed_port,
    configure,
    isolate_aws,
    serve_directory,
    start_moto,
)

DIGEST = digest_bytes(b"an object")


def opened(spec: RemoteSpec, root: Path) -> Remote:
    return Remote(spec.settings(), root)


def raw_names(remote: Remote) -> list[str]:
    """Every file under the remote's base, as the backend lists it (temp names included)."""
    try:
        return [str(p) for p in remote.fs.find(remote.base)]
    except FileNotFoundError:
        return []


def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# --- where things go -----------------------------------------------------------------------


def test_layout_of_objects_runs_packs_and_records(local_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(local_remote, tmp_path)
    hexdigest = DIGEST.partition(":")[2]
    assert ALGORITHM == "xxh3_128"
    assert remote.object_path(DIGEST) == f"{remote.base}/files/xxh3/{hexdigest[:2]}/{hexdigest[2:]}"
    assert (
        remote.run_path(DIGEST) == f"{remote.base}/runs/xxh3/{hexdigest[:2]}/{hexdigest[2:]}.json"
    )
    assert remote.pack_path("abc", "idx") == f"{remote.base}/packs/abc.idx"
    assert remote.record_path("proj", "r1") == f"{remote.base}/records/proj/r1.json"
    assert remote.relative(remote.object_path(DIGEST)).startswith("files/xxh3/")
    assert remote.base == str(tmp_path / "local-remote" / "store")
    with pytest.raises(DataError, match="not an object hash"):
        remote.object_path("md5:" + hexdigest)


def test_a_relative_directory_is_relative_to_the_project(tmp_path: Path) -> None:
    remote = Remote(RemoteSettings("o", "../shared"), tmp_path / "proj")
    assert remote.protocol == "file"
    assert remote.base == str(tmp_path / "shared")
    assert Remote(RemoteSettings("o", f"file://{tmp_path}/nas"), tmp_path).base.endswith("/nas")


def test_unsupported_url_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unsupported remote url"):
        Remote(RemoteSettings("o", "ftp://example.com/x"), tmp_path)


# --- reads and writes on every backend ------------------------------------------------------


def test_write_read_find_size_delete(any_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(any_remote, tmp_path)
    path = remote.object_path(DIGEST)
    assert remote.size(path) is None
    assert remote.find("files") == []  # a prefix never written: empty, not an error
    remote.write_bytes(path, b"an object")
    remote.write_bytes(f"{remote.base}/records/p/empty.json", b"")
    assert remote.size(path) == 9
    assert remote.size(f"{remote.base}/records/p/empty.json") == 0  # empty is not absent
    assert remote.read_bytes(path) == b"an object"
    assert sorted(remote.find("")) == [remote.relative(path), "records/p/empty.json"]
    assert remote.find("records") == ["records/p/empty.json"]
    with pytest.raises(FileNotFoundError):
        remote.read_bytes(f"{remote.base}/absent")
    remote.delete([path])
    assert remote.size(path) is None


def test_ranged_reads_return_only_the_range(any_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(any_remote, tmp_path)
    path = remote.pack_path("p", "pack")
    remote.write_bytes(path, b"0123456789")
    assert remote.read_bytes(path, 2, 5) == b"234"
    assert remote.read_bytes(path, 0, 10) == b"0123456789"


def test_put_file_uploads_and_overwrites(any_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(any_remote, tmp_path)
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(300_000))
    path = remote.object_path(DIGEST)
    remote.put_file(str(source), path)
    assert remote.read_bytes(path) == source.read_bytes()
    source.write_bytes(b"second")
    remote.put_file(str(source), path)
    assert remote.read_bytes(path) == b"second"
    assert not [n for n in raw_names(remote) if ".tmp-" in n]


def test_a_failed_upload_leaves_nothing_behind(any_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(any_remote, tmp_path)
    path = remote.object_path(DIGEST)
    with pytest.raises(DataError) as caught:
        remote.put_file(str(tmp_path / "vanished.bin"), path)
    one_line(caught.value)
    assert remote.size(path) is None
    assert not [n for n in raw_names(remote) if ".tmp-" in n]


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_writes_replace_files_whole_on_directories_and_ssh(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A reader that opened the old file keeps reading it whole: the new bytes go to a temp
    name that is renamed over it, never written into the file a reader may hold."""
    remote = opened(request.getfixturevalue(f"{kind}_remote"), tmp_path)
    target = Path(remote.object_path(DIGEST))  # both remotes are directories on this machine
    remote.write_bytes(str(target), b"old bytes")
    source = tmp_path / "new.bin"
    source.write_bytes(b"uploaded bytes")
    with open(target, "rb") as reader:
        remote.write_bytes(str(target), b"new bytes")
        assert reader.read() == b"old bytes"
    assert target.read_bytes() == b"new bytes"
    with open(target, "rb") as reader:
        remote.put_file(str(source), str(target))
        assert reader.read() == b"new bytes"
    assert target.read_bytes() == b"uploaded bytes"
    assert not [n for n in raw_names(remote) if ".tmp-" in n]


def test_find_skips_unfinished_temp_files(local_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(local_remote, tmp_path)
    remote.write_bytes(f"{remote.base}/packs/a.idx", b"[]")
    remote.fs.pipe_file(f"{remote.base}/packs/b.idx.tmp-0123456789ab", b"[]")
    assert remote.find("packs") == ["packs/a.idx"]


# --- the generation marker -------------------------------------------------------------------


def test_generation_starts_absent_and_is_renewed(any_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(any_remote, tmp_path)
    assert remote.generation() is None
    first = remote.renew_generation()
    assert remote.generation() == first
    second = remote.renew_generation()
    assert second != first
    assert opened(any_remote, tmp_path).generation() == second


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "is damaged"), (b'{"format": "pipeline-remote 9"}', "not in this version")],
)
def test_a_damaged_or_foreign_marker_is_a_data_error(
    local_remote: RemoteSpec, tmp_path: Path, body: bytes, message: str
) -> None:
    remote = opened(local_remote, tmp_path)
    remote.write_bytes(f"{remote.base}/{MARKER}", body)
    with pytest.raises(DataError, match=message):
        remote.generation()


# --- read-only HTTP ----------------------------------------------------------------------------


def test_http_remotes_serve_reads_and_refuse_writes(
    local_remote: RemoteSpec, tmp_path: Path
) -> None:
    writer = opened(local_remote, tmp_path)
    writer.write_bytes(writer.object_path(DIGEST), b"an object")
    generation = writer.renew_generation()
    with serve_directory(Path(writer.base).parent) as url:
        remote = Remote(RemoteSettings("web", f"{url}/store"), tmp_path)
        assert remote.read_only
        assert remote.generation() == generation
        assert remote.read_bytes(remote.object_path(DIGEST)) == b"an object"
        assert remote.size(remote.object_path(DIGEST)) == 9
        assert remote.size(remote.object_path(digest_bytes(b"absent"))) is None
        for write in (
            lambda: remote.write_bytes(remote.object_path(DIGEST), b"x"),
            lambda: remote.put_file(__file__, remote.object_path(DIGEST)),
            remote.renew_generation,
        ):
            with pytest.raises(UsageError, match="read-only") as caught:
                write()
            assert caught.value.hint is not None
    assert writer.read_bytes(writer.object_path(DIGEST)) == b"an object"


# --- options and extras ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "option", "meant"),
    [
        ("s3://bucket/x", "endpont_url", "endpoint_url"),
        ("ssh://host/x", "key_file", "keyfile"),
        ("s3://bucket/x", "secret_acces_key", "secret_access_key"),
    ],
)
def test_an_unknown_option_is_refused_with_a_suggestion(
    tmp_path: Path, url: str, option: str, meant: str
) -> None:
    with pytest.raises(UsageError, match=f"unknown option '{option}'") as caught:
        Remote(RemoteSettings("o", url, {option: "x"}), tmp_path)
    assert caught.value.hint == f"did you mean {meant!r}?"


def test_an_option_of_another_backend_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown option 'zzz' for s3") as caught:
        Remote(RemoteSettings("o", "s3://bucket/x", {"zzz": 3}), tmp_path)
    assert str(caught.value.hint).startswith("known: ")
    assert "endpoint_url" in str(caught.value.hint)
    assert "keyfile" not in str(caught.value.hint)


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("s3://bucket/x", "s3fs", "s3"),
        ("gs://bucket/x", "gcsfs", "gs"),
        ("azure://container/x", "adlfs", "azure"),
        ("ssh://host/x", "sshfs", "ssh"),
        ("hdfs://namenode/x", "pyarrow", "hdfs"),
        ("https://example.com/x", "aiohttp", "http"),
    ],
)
def test_a_missing_extra_names_the_pip_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if absent
    with pytest.raises(UsageError) as caught:
        Remote(RemoteSettings("o", url), tmp_path)
    assert f"need {module}, which is not installed" in one_line(caught.value)
    assert caught.value.hint == f"pip install 'pipeline[{extra}]'"
    assert remote_module.backend_module(url) == module


def test_a_directory_needs_no_extra(tmp_path: Path) -> None:
    assert remote_module.backend_module(str(tmp_path)) is None
    assert remote_module.family_of("sftp://h/x") == "ssh"


# --- errors: unknown is never absent ----------------------------------------------------------


def test_s3_that_does_not_answer_raises_and_never_says_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast: the server is not there at all
    endpoint = f"http://127.0.0.1:{closed_port()}"
    remote = Remote(RemoteSettings("o", "s3://data/store", {"endpoint_url": endpoint}), tmp_path)
    for call in (
        lambda: remote.size(remote.object_path(DIGEST)),
        lambda: remote.find("packs"),
        remote.generation,
    ):
        with pytest.raises(DataError, match="did not answer") as caught:
            call()
        assert "remote 'o' (s3://data/store)" in one_line(caught.value)


def test_a_network_error_is_not_taken_for_a_missing_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint is down; the bucket's name happens to contain "bucket"."""
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    remote = Remote(
        RemoteSettings("o", "s3://team-bucket/store", {"endpoint_url": endpoint}), tmp_path
    )
    with pytest.raises(DataError) as caught:
        remote.size(remote.object_path(DIGEST))
    assert "did not answer" in one_line(caught.value)
    assert "does not exist" not in str(caught.value)


def test_a_server_that_stops_answering_is_an_error_not_absence(
    moto_process: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    remote = opened(moto_process.spec(moto_process.new_bucket()), tmp_path)
    remote.write_bytes(remote.object_path(DIGEST), b"an object")
    assert remote.size(remote.object_path(DIGEST)) == 9
    moto_process.stop()
    with pytest.raises(DataError, match="did not answer"):
        remote.size(remote.object_path(DIGEST))
    with pytest.raises(DataError, match="did not answer"):
        remote.size(remote.object_path(digest_bytes(b"never pushed")))


def test_ssh_that_does_not_answer_is_a_data_error(sshd: SshServer, tmp_path: Path) -> None:
    spec = sshd.spec(tmp_path / "store")
    url = spec.url.replace(f":{sshd.port}/", f":{closed_port()}/")
    remote = Remote(RemoteSettings("o", url, spec.options), tmp_path)  # connects on first use
    with pytest.raises(DataError, match="did not answer") as caught:
        remote.size(remote.object_path(DIGEST))
    one_line(caught.value)


# --- errors: buckets, credentials, disks ------------------------------------------------------


def test_writing_to_a_missing_bucket_says_so(
    moto_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    remote = opened(moto_server.spec("no-such-bucket-here"), tmp_path)
    with pytest.raises(DataError, match="the bucket does not exist") as caught:
        remote.renew_generation()
    assert caught.value.hint == "create it, or fix the url"
    with pytest.raises(DataError, match="the bucket does not exist"):
        remote.put_file(__file__, remote.object_path(DIGEST))


def test_missing_credentials_name_what_was_tried(
    moto_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    bucket = moto_server.new_bucket()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    remote = opened(moto_server.spec(bucket), tmp_path)
    with pytest.raises(DataError, match="refused access") as caught:
        remote.size(remote.object_path(DIGEST))  # unknown, not absent
    one_line(caught.value)
    hint = str(caught.value.hint)
    assert "AWS_ACCESS_KEY_ID" in hint
    assert "~/.aws/credentials" in hint
    assert "config.local.yaml" in hint


def test_wrong_s3_keys_are_refused_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks keys once its first (unchecked) request, creating the bucket, is spent."""
    isolate_aws(monkeypatch, tmp_path)
    server = start_moto(tmp_path, {"INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    try:
        remote = opened(server.spec(server.new_bucket()), tmp_path)
        with pytest.raises(DataError, match="refused access") as caught:
            remote.write_bytes(remote.object_path(DIGEST), b"x")
        assert "AWS_ACCESS_KEY_ID" in str(caught.value.hint)
        with pytest.raises(DataError, match="refused access"):
            remote.size(remote.object_path(DIGEST))
    finally:
        server.stop()


def test_a_wrong_ssh_key_is_refused_access(sshd: SshServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
        check=True,
        capture_output=True,
    )
    spec = sshd.spec(tmp_path / "store")
    options = {**spec.options, "keyfile": str(stranger)}
    remote = Remote(RemoteSettings("o", spec.url, options), tmp_path)
    with pytest.raises(DataError, match="refused access") as caught:
        remote.size(remote.object_path(DIGEST))
    assert "keyfile" in str(caught.value.hint)


def test_a_full_disk_while_downloading_says_so(any_remote: RemoteSpec, tmp_path: Path) -> None:
    remote = opened(any_remote, tmp_path)
    remote.write_bytes(remote.object_path(DIGEST), os.urandom(200_000))
    with pytest.raises(DataError, match="disk full") as caught:
        remote.get_file(remote.object_path(DIGEST), "/dev/full")  # every write: ENOSPC
    assert caught.value.hint == "free some space"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full while trying to pull"),
        (ModuleNotFoundError("No module named 's3fs'"), "No module named 's3fs'"),
        (PermissionError("Access Denied"), "refused access"),
        (RuntimeError("An error occurred (SignatureDoesNotMatch)"), "refused access"),
        (OSError("The specified bucket does not exist (NoSuchBucket)"), "bucket does not exist"),
        (FileNotFoundError("files/xxh3/ab/cd"), "not found while trying to pull"),
        (ConnectionResetError("Connection reset by peer"), "did not answer while trying to pull"),
        (TimeoutError(), "did not answer while trying to pull: TimeoutError"),
    ],
)
def test_explain_maps_backend_errors(error: BaseException, message: str) -> None:
    explained = explain(error, "remote 'o' (s3://b/x)", "s3", "pull")
    assert isinstance(explained, DataError)
    assert message in one_line(explained)
    assert explained.message.startswith(("remote 'o' (s3://b/x)", "disk full"))
    assert explained.hint or isinstance(error, FileNotFoundError)


# --- configured as a user would ----------------------------------------------------------------


def test_a_configured_remote_opens_from_the_project_config(
    p: Project, any_remote: RemoteSpec
) -> None:
    configure(p.root, any_remote)
    state = p.root / ".pipeline"
    config = load_config(state)
    settings = config.remote()
    assert (settings.name, settings.url, settings.options) == (
        "origin",
        any_remote.url,
        any_remote.options,
    )
    committed = yaml.safe_load((state / "config.yaml").read_text())
    assert committed["core"]["remote"] == "origin"
    assert "keyfile" not in committed["remotes"]["origin"]  # this machine's: config.local.yaml
    remote = Remote(settings, p.root)
    remote.write_bytes(remote.object_path(DIGEST), b"configured")
    assert remote.read_bytes(remote.object_path(DIGEST)) == b"configured"


def test_opening_an_ssh_remote_prints_no_warnings() -> None:
    """A fresh process (as `pipeline push` is): importing the ssh backend must stay quiet."""
    script = (
        "from pathlib import Path\n"
        "from pipeline.core.config import RemoteSettings\n"
        "from pipeline.errors import DataError\n"
        "from pipeline.store.remote import Remote\n"
        f"remote = Remote(RemoteSettings('o', 'ssh://127.0.0.1:{closed_port()}/srv'), Path('.'))\n"
        "try:\n"
        "    remote.size('/srv/x')\n"
        "except DataError as exc:\n"
        "    print(exc.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert "did not answer" in done.stdout
    assert done.stderr == ""
