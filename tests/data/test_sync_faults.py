"""Faults while syncing with a remote (issue 11, Deliver 4): each one ends a real CLI subprocess
with exit code 4 (130 for Ctrl-C), one clear error line and no traceback, and leaves nothing
half-written: no partial object in `.pipeline/cache` (its `tmp/` is empty, every object hashes to
its name) and no `.tmp-` file on a directory or SSH remote.

- the remote dies mid-push (a moto process is SIGKILLed once the bucket holds some objects) or
  mid-pull (once the clone's cache holds some);
- credentials missing or wrong (S3 with moto checking IAM credentials; SSH with a key the
  server does not know): the hint names what was tried;
- the bucket does not exist;
- an object (and a pack member) is corrupt on the remote: `pull` rejects it, reports it, and
  places it neither in the cache nor in the workspace;
- the disk is full: a clone on a 1 MB tmpfs pulls more than fits;
- Ctrl-C mid-push: exit 130, the next push sends only what is missing, and a file being uploaded
  when it comes is not left half-written on the remote;
- an unreachable remote is an error, never "absent".

Every wait is on an observable state (objects on the remote, the process's end), never a sleep.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.store.objects import ObjectStore
from tests.conftest import Project, cli_env
from tests.servers import (
    RemoteSpec,
    S3Server,
    closed_port,
    configure,
    isolate_aws,
    s3_client,
    start_moto,
)

# --- checks -----------------------------------------------------------------------------------


def one_error(done: subprocess.CompletedProcess[str], code: int = 4) -> tuple[str, str]:
    """The command failed with `code`, and its stderr is one error line and its hint, nothing
    else (no traceback, no crash report); returns (error line, hint line)."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert [line.split(":", 1)[0] for line in lines] in (["error"], ["error", "hint"]), lines
    return lines[0], (lines[1] if len(lines) > 1 else "")


def cache_intact(root: Path) -> ObjectStore:
    """Nothing half-written in the project's cache: no temp file, every object whole."""
    store = ObjectStore(root / ".pipeline" / "cache")
    leftovers = sorted(p.name for p in store.tmp.iterdir()) if store.tmp.is_dir() else []
    assert leftovers == [], f"partial downloads left in {store.tmp}"
    damaged = [digest for digest, intact in store.fsck() if not intact]
    assert damaged == []
    return store


def no_temp_files(directory: Path) -> None:
    """No `.tmp-` upload left on a directory (or SSH) remote."""
    assert sorted(str(p) for p in directory.rglob("*.tmp-*")) == []


def remote_objects(directory: Path) -> int:
    """Objects under a directory remote's `files/` (finished uploads only)."""
    files = directory / "files"
    if not files.is_dir():
        return 0
    return sum(1 for p in files.rglob("*") if p.is_file() and ".tmp-" not in p.name)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll an observable state while `proc` runs; fail if it ends first."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended ({proc.returncode}) before {what}:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


# --- projects ---------------------------------------------------------------------------------


def data_project(project: Project, spec: RemoteSpec, files: dict[str, bytes]) -> Project:
    """A project with no stages: `files` tracked by `pipeline add` (one `add` per top-level
    path), remote `origin` (the default), committed."""
    from pipeline import api

    project.manifest({"name": "faults"}, commit=False)
    configure(project.root, spec)
    project.commit(message="project")
    for rel, data in files.items():
        project.write(rel, data)
    tops = sorted({rel.split("/", 1)[0] for rel in files})
    api.add(project.root, [str(project.root / top) for top in tops])
    project.commit(message="data")
    return project


def many_files(count: int, size: int, seed: int = 0, folder: str = "data") -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"{folder}/f{i:03}.bin": rng.randbytes(size) for i in range(count)}


LOOSE = 300_000  # bytes: above the packing threshold (256 KB), so each file is its own upload


def clone_of(project: Project, dest: Path) -> Project:
    """A teammate's `git clone` of `project` (no cache, no git-ignored data)."""
    subprocess.run(
        ["git", "clone", "-q", str(project.root), str(dest)], check=True, capture_output=True
    )
    return Project(dest.resolve())


# `python -m pipeline`, with Ctrl-C's default handler restored first: a process that ignores
# SIGINT (pytest started in the background by a non-interactive shell, nohup, some CI runners)
# passes SIG_IGN on to its children, and Python then never raises KeyboardInterrupt.
_MAIN_WITH_CTRL_C = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['pipeline', *sys.argv[1:]]; "
    "runpy.run_module('pipeline', run_name='__main__', alter_sys=True)"
)


def start(project: Project, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`pipeline -C ROOT ARGS…` as a process the test can signal."""
    return subprocess.Popen(
        [sys.executable, "-c", _MAIN_WITH_CTRL_C, "-C", str(project.root), *args],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# --- the remote dies mid-transfer ------------------------------------------------------------


def test_the_remote_dies_mid_push(
    moto_process: S3Server,
    make_project: Callable[..., Project],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = isolate_aws(monkeypatch, tmp_path)
    bucket = moto_process.new_bucket()
    project = data_project(make_project("alice"), moto_process.spec(bucket), many_files(60, LOOSE))
    client = s3_client(moto_process.endpoint)

    def some_uploaded() -> bool:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="store/files/")
        return int(listed.get("KeyCount", 0)) >= 1

    # One attempt per request: the dead server is reported at once, not after retries.
    proc = start(project, "push", env=cli_env(**env, AWS_MAX_ATTEMPTS="1"))
    try:
        wait_for(some_uploaded, proc, "the first object reached the bucket")
        os.kill(moto_process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    error, hint = one_error(done)
    assert f"remote 'origin' (s3://{bucket}/store) did not answer" in error
    assert "run the command again" in hint
    cache_intact(project.root)


def test_the_remote_dies_mid_pull(
    moto_process: S3Server,
    make_project: Callable[..., Project],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline import api

    env = isolate_aws(monkeypatch, tmp_path)
    bucket = moto_process.new_bucket()
    alice = data_project(make_project("alice"), moto_process.spec(bucket), many_files(40, LOOSE))
    api.push(root=alice.root)
    bob = clone_of(alice, tmp_path / "bob" / "proj")
    objects = bob.root / ".pipeline" / "cache" / "objects"

    def some_downloaded() -> bool:
        return objects.is_dir() and any(p.is_file() for p in objects.rglob("*"))

    proc = start(bob, "pull", "-j", "1", env=cli_env(**env, AWS_MAX_ATTEMPTS="1"))
    try:
        wait_for(some_downloaded, proc, "the first object reached the cache")
        os.kill(moto_process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    error, _ = one_error(done)
    assert f"remote 'origin' (s3://{bucket}/store) did not answer" in error
    cache_intact(bob.root)  # what arrived is whole; nothing half-downloaded
    assert not (bob.root / "data").exists()  # an incomplete directory is not placed


# --- credentials -----------------------------------------------------------------------------


@pytest.fixture
def moto_with_auth(tmp_path: Path) -> Iterator[tuple[S3Server, str, dict[str, str]]]:
    """A moto process that checks IAM credentials after its first 4 requests, which create a
    bucket and a user allowed s3:*; yields (server, bucket, that user's keys)."""
    import boto3

    server = start_moto(tmp_path, env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        bucket = server.new_bucket()  # 1
        iam = boto3.client(
            "iam",
            endpoint_url=server.endpoint,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
            region_name="us-east-1",
        )
        iam.create_user(UserName="alice")  # 2
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(  # 3
            UserName="alice", PolicyName="s3", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="alice")["AccessKey"]  # 4
        yield server, bucket, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        server.stop()


def test_s3_credentials_wrong_or_missing_name_what_was_tried(
    moto_with_auth: tuple[S3Server, str, dict[str, str]],
    make_project: Callable[..., Project],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline import api

    server, bucket, key = moto_with_auth
    env = isolate_aws(monkeypatch, tmp_path)  # keys the server does not know
    project = data_project(make_project("alice"), server.spec(bucket), {"a.txt": b"a\n"})

    def modify(key_name: str, value: str | None) -> None:  # `remote modify --local`
        api.remote_modify(project.root, "origin", key_name, value, local=True)

    # The keys in config.local.yaml win over the environment's: the push works.
    modify("access_key_id", key["id"])
    modify("secret_access_key", key["secret"])
    assert project.cli("push", env=cli_env(**env)).returncode == 0

    modify("secret_access_key", "not-the-secret")
    project.write("b.txt", "b\n")
    api.add(project.root, [str(project.root / "b.txt")])  # something to send
    error, hint = one_error(project.cli("push", env=cli_env(**env)))
    assert "remote 'origin'" in error
    assert "refused access" in error
    assert "config.local.yaml" in hint
    assert "AWS_ACCESS_KEY_ID" in hint
    assert "~/.aws/credentials" in hint

    # No credentials anywhere: a teammate's clone (no config.local.yaml), nothing in the
    # environment, no ~/.aws; the pull has something to fetch.
    bob = clone_of(project, tmp_path / "bob" / "proj")
    bare = {k: v for k, v in cli_env(**env).items() if k not in CREDENTIAL_VARS}
    error, hint = one_error(bob.cli("pull", env=bare))
    assert "refused access" in error
    assert "credentials" in error.lower()
    assert "AWS_ACCESS_KEY_ID" in hint
    cache_intact(bob.root)


CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def test_an_ssh_key_the_server_does_not_know(
    ssh_remote: RemoteSpec, make_project: Callable[..., Project], tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
        check=True,
        capture_output=True,
    )
    spec = RemoteSpec(ssh_remote.url, {**ssh_remote.options, "keyfile": str(stranger)})
    project = data_project(make_project("alice"), spec, {"a.txt": b"a\n"})
    home = tmp_path / "home"  # no ~/.ssh keys, no agent
    home.mkdir()
    env = {k: v for k, v in cli_env(HOME=str(home)).items() if k != "SSH_AUTH_SOCK"}

    error, hint = one_error(project.cli("push", env=env))
    assert "remote 'origin' (ssh://" in error
    assert "refused access" in error
    assert "keyfile" in hint
    assert "ssh-agent" in hint
    no_temp_files(tmp_path / "ssh-remote")


# --- the bucket does not exist ------------------------------------------------------------------


def test_the_bucket_does_not_exist(
    moto_server: S3Server,
    make_project: Callable[..., Project],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = isolate_aws(monkeypatch, tmp_path)
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    project = data_project(make_project("alice"), moto_server.spec(bucket), {"a.txt": b"a\n"})

    bob = clone_of(project, tmp_path / "bob" / "proj")  # a pull with something to fetch
    for where, command in ((project, "push"), (bob, "pull")):
        error, hint = one_error(where.cli(command, env=cli_env(**env)))
        assert f"remote 'origin' (s3://{bucket}/store): the bucket does not exist" in error
        assert "create it" in hint
        cache_intact(where.root)
    names = [b["Name"] for b in s3_client(moto_server.endpoint).list_buckets()["Buckets"]]
    assert bucket not in names  # nothing created behind the user's back


# --- an object is corrupt on the remote -------------------------------------------------------


def test_a_corrupt_object_on_the_remote_is_rejected_and_never_placed(
    s3_remote: RemoteSpec, make_project: Callable[..., Project], tmp_path: Path
) -> None:
    from pipeline import api

    files = {"big.bin": random.Random(1).randbytes(LOOSE), **many_files(20, 100, folder="small")}
    alice = data_project(make_project("alice"), s3_remote, files)
    api.push(root=alice.root)
    data = alice.lock()["data"]
    big = data["big.bin"]["hash"]

    bucket = s3_remote.url.removeprefix("s3://").split("/", 1)[0]
    client = s3_client(s3_remote.options["endpoint_url"])
    hexdigest = big.partition(":")[2]
    client.put_object(  # same size, other bytes: a bit rot, or a forged object
        Bucket=bucket,
        Key=f"store/files/xxh3/{hexdigest[:2]}/{hexdigest[2:]}",
        Body=b"x" * LOOSE,
    )
    packs = client.list_objects_v2(Bucket=bucket, Prefix="store/packs/")["Contents"]
    (index_key,) = [o["Key"] for o in packs if o["Key"].endswith(".idx")]
    members = json.loads(client.get_object(Bucket=bucket, Key=index_key)["Body"].read())
    member, offset, size = members[0]
    pack_key = index_key.removesuffix(".idx") + ".pack"
    body = bytearray(client.get_object(Bucket=bucket, Key=pack_key)["Body"].read())
    body[offset : offset + size] = bytes(b ^ 0xFF for b in body[offset : offset + size])
    client.put_object(Bucket=bucket, Key=pack_key, Body=bytes(body))
    damaged_file = next(
        rel
        for rel, content in files.items()
        if rel.startswith("small/") and _hash(content) == member
    )

    bob = clone_of(alice, tmp_path / "bob" / "proj")
    done = bob.cli("pull")
    error, hint = one_error(done)
    assert "2 objects on the remote did not match their hash" in error
    assert "push it again" in hint
    rejected = [line for line in done.stdout.splitlines() if "rejected, corrupt on origin" in line]
    assert len(rejected) == 2, done.stdout
    for digest, path in ((big, "big.bin"), (member, damaged_file)):
        assert any(digest in line and path in line for line in rejected), (digest, rejected)
    store = cache_intact(bob.root)
    assert not store.has(big)
    assert not store.has(member)
    assert not (bob.root / "big.bin").exists()
    assert not (bob.root / damaged_file).exists()


def _hash(content: bytes) -> str:
    from pipeline.core.hashing import digest_bytes

    return str(digest_bytes(content))


# --- the disk is full --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs mounted in tmp_path (root only); unmounted at the end."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True, capture_output=True)


def test_the_disk_is_full(
    small_disk: Path,
    local_remote: RemoteSpec,
    make_project: Callable[..., Project],
) -> None:
    from pipeline import api

    alice = data_project(make_project("alice"), local_remote, many_files(4, LOOSE))
    api.push(root=alice.root)
    bob = clone_of(alice, small_disk / "bob")  # 1.2 MB of data for a 1 MB disk

    error, hint = one_error(bob.cli("pull"))
    assert error.startswith("error: disk full while trying to download")
    assert "remote 'origin'" in error
    assert "free some space" in hint
    cache_intact(bob.root)
    assert not (bob.root / "data").exists()


# --- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", pytest.param("ssh", marks=pytest.mark.slow)])
def test_ctrl_c_mid_push_exits_130_and_the_next_push_resumes(
    kind: str,
    request: pytest.FixtureRequest,
    make_project: Callable[..., Project],
    tmp_path: Path,
) -> None:
    spec: RemoteSpec = request.getfixturevalue(f"{kind}_remote")
    directory = tmp_path / f"{kind}-remote" / "store"
    files = many_files(60, LOOSE)
    project = data_project(make_project("alice"), spec, files)
    total = len(files) + 1  # and the directory's tree object, sent last

    # One upload at a time: the push is still busy with the rest when Ctrl-C comes.
    proc = start(project, "push", "-j", "1", env=cli_env())
    try:
        wait_for(lambda: remote_objects(directory) >= 2, proc, "objects reached the remote")
        proc.send_signal(signal.SIGINT)
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    error, hint = one_error(done, 130)
    assert "interrupted" in error
    assert "again" in hint
    no_temp_files(directory)
    cache_intact(project.root)
    there = remote_objects(directory)
    assert 2 <= there < total

    resumed = project.cli("push", "--json")
    assert resumed.returncode == 0, resumed.stderr
    (report,) = json.loads(resumed.stdout)
    assert report["objects"]["transferred"] == total - there
    assert report["objects"]["present"] == there
    assert remote_objects(directory) == total
    no_temp_files(directory)


# --- unknown is not absent ---------------------------------------------------------------------


def test_an_unreachable_remote_is_an_error_never_absent(
    make_project: Callable[..., Project], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = isolate_aws(monkeypatch, tmp_path)
    endpoint = f"http://127.0.0.1:{closed_port()}"
    spec = RemoteSpec("s3://some-bucket/store", {"endpoint_url": endpoint})
    project = data_project(make_project("alice"), spec, {"a.txt": b"a\n"})
    quick = cli_env(**env, AWS_MAX_ATTEMPTS="1")

    bob = clone_of(project, tmp_path / "bob" / "proj")  # a pull with something to fetch
    for where, args in ((project, ("status", "--remote")), (bob, ("pull",))):
        error, _ = one_error(where.cli(*args, env=quick))
        assert "did not answer" in error, args
        cache_intact(where.root)


def test_ctrl_c_while_a_file_is_being_uploaded_leaves_no_temp_file(
    local_remote: RemoteSpec, make_project: Callable[..., Project], tmp_path: Path
) -> None:
    """The interrupt lands while one large object is being copied to a directory remote (its
    `.tmp-` name is there): the copy is finished or removed, never left half-written."""
    big = random.Random(2).randbytes(1 << 20) * 64  # 64 MB: a copy that takes a while
    files = {"big.bin": big, **many_files(20, LOOSE)}
    project = data_project(make_project("alice"), local_remote, files)
    directory = Path(local_remote.url)
    hexdigest = project.lock()["data"]["big.bin"]["hash"].partition(":")[2]
    folder = directory / "files" / "xxh3" / hexdigest[:2]

    proc = start(project, "push", "-j", "1", env=cli_env())  # largest first
    try:
        wait_for(lambda: any(folder.glob("*.tmp-*")), proc, "the large object's upload began")
        proc.send_signal(signal.SIGINT)
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    one_error(done, 130)
    no_temp_files(directory)
