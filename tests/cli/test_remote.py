"""`pipeline remote add | list | modify | remove | default` as a user types them (real
subprocesses), and the one-line errors of remote configuration: a secret refused in the
committed file, an unknown option with a did-you-mean, an unknown scheme, a missing backend
naming its `pip install`, and an http(s) remote that serves pulls but refuses pushes.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli.support import _error, _json, _ok
from tests.conftest import Project
from tests.servers import RemoteSpec, configure, serve_directory


@pytest.fixture
def proj(project: Project) -> Project:
    project.manifest({"name": "remotes"})
    return project


def test_remote_commands_as_a_user_types_them(proj: Project) -> None:
    assert (
        "added remote origin: s3://bucket/store"
        in _ok(proj.cli("remote", "add", "origin", "s3://bucket/store")).stdout
    )
    _ok(proj.cli("remote", "add", "-d", "nas", "/mnt/nas/store"))
    done = _ok(proj.cli("remote", "modify", "origin", "endpoint_url", "http://minio:9000"))
    assert "set origin.endpoint_url in .pipeline/config.yaml" in done.stdout
    done = _ok(proj.cli("remote", "modify", "--local", "origin", "secret_access_key", "s3cr3t"))
    assert "set origin.secret_access_key in .pipeline/config.local.yaml" in done.stdout

    listed = {r["name"]: r for r in _json(proj.cli("remote", "list", "--json"))}
    assert listed["nas"]["default"] is True
    assert listed["origin"]["default"] is False
    assert listed["origin"]["options"] == {
        "endpoint_url": "http://minio:9000",
        "secret_access_key": "***",
    }
    text = _ok(proj.cli("remote", "list")).stdout
    assert "nas (default)  /mnt/nas/store" in text
    assert "secret_access_key: ***" in text
    assert "s3cr3t" not in text

    assert "default remote: origin" in _ok(proj.cli("remote", "default", "origin")).stdout
    assert "removed remote nas" in _ok(proj.cli("remote", "remove", "nas")).stdout
    done = _ok(proj.cli("remote", "modify", "origin", "--unset", "endpoint_url"))
    assert "unset origin.endpoint_url" in done.stdout
    committed = yaml.safe_load(proj.read(".pipeline/config.yaml"))
    assert committed == {
        "core": {"remote": "origin"},
        "remotes": {"origin": {"url": "s3://bucket/store"}},
    }
    assert "s3cr3t" not in proj.read(".pipeline/config.yaml")


def test_a_secret_for_the_committed_file_is_one_error_line(proj: Project) -> None:
    _ok(proj.cli("remote", "add", "origin", "s3://bucket/store"))
    before = proj.read(".pipeline/config.yaml")
    lines = _error(proj.cli("remote", "modify", "origin", "secret_access_key", "s3cr3t"), 2)
    assert lines == [
        "error: secret_access_key is a secret and .pipeline/config.yaml is committed to git",
        "hint: pipeline remote modify --local origin secret_access_key VALUE",
    ]
    assert proj.read(".pipeline/config.yaml") == before


def test_an_unknown_option_says_did_you_mean(proj: Project) -> None:
    _ok(proj.cli("remote", "add", "origin", "ssh://me@host/srv/store"))
    lines = _error(proj.cli("remote", "modify", "origin", "key_file", "~/.ssh/id"), 2)
    assert lines[0].startswith("error: unknown option 'key_file' for remote 'origin'")
    assert lines[1] == "hint: did you mean 'keyfile'?"


def test_an_unknown_scheme_is_one_error_line(proj: Project) -> None:
    lines = _error(proj.cli("remote", "add", "old", "ftp://host/store"), 2)
    assert lines[0] == "error: unsupported remote url 'ftp://host/store'"
    assert "s3://" in lines[1]
    assert len(lines) == 2


def test_a_missing_backend_names_the_pip_install(proj: Project) -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here: nothing is missing")
    _ok(proj.cli("remote", "add", "-d", "gcs", "gs://bucket/store"))
    assert "needs gcsfs, which is not installed" in _ok(proj.cli("remote", "list")).stdout
    lines = _error(proj.cli("push"), 2)
    assert lines == [
        "error: gs:// remotes need gcsfs, which is not installed",
        "hint: pip install 'pipeline[gs]'",
    ]


def test_an_http_remote_serves_pulls_and_refuses_pushes(
    make_project: Callable[..., Project], local_remote: RemoteSpec, tmp_path: Path
) -> None:
    from pipeline import api

    alice = make_project("alice")
    alice.manifest({"name": "web"}, commit=False)
    configure(alice.root, local_remote)
    alice.commit(message="project")
    alice.write("data/a.txt", "a\n")
    alice.write("data/b.txt", "b\n")
    api.add(alice.root, [str(alice.root / "data")])
    alice.commit(message="data")
    api.push(root=alice.root)

    bob = Project((tmp_path / "bob" / "proj").resolve())
    subprocess.run(["git", "clone", "-q", str(alice.root), str(bob.root)], check=True)
    with serve_directory(Path(local_remote.url).parent) as base:
        _ok(bob.cli("remote", "add", "-f", "-d", "origin", f"{base}/store"))
        pulled = _json(bob.cli("pull", "--json"))
        assert pulled[0]["checkout"]["restored"] == ["data"]
        assert bob.read("data/b.txt") == "b\n"
        bob.write("data/c.txt", "c\n")
        _ok(bob.cli("add", "data"))
        lines = _error(bob.cli("push"), 2)
    assert lines[0].startswith(f"error: remote 'origin' ({base}/store) is read-only")
    assert "push to another remote" in lines[1]


def test_a_bad_url_is_refused_by_modify_too(proj: Project) -> None:
    _ok(proj.cli("remote", "add", "origin", "s3://bucket/store"))
    lines = _error(proj.cli("remote", "modify", "origin", "url", "ftp://host/store"), 2)
    assert lines[0] == "error: unsupported remote url 'ftp://host/store'"
    assert "s3://bucket/store" in _ok(proj.cli("remote", "list")).stdout
    _ok(proj.cli("remote", "modify", "origin", "url", "s3://bucket/other"))
