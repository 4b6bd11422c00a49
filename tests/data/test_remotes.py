"""Remote configuration through the API (`pipeline.api.remote_*`, as `pipeline remote` uses it):
where each setting is written, what is refused, how the two config files merge, and what a
remote whose backend is missing or whose scheme is unknown says. No server is needed: these
check the configuration, not transfers (tests/cli/test_remote.py runs the commands).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from pipeline import api
from pipeline.core.config import RemoteSettings, load_config
from pipeline.errors import ManifestError, UsageError
from pipeline.store.remote import Remote
from tests.conftest import Project


@pytest.fixture
def proj(project: Project) -> Project:
    project.manifest({"name": "remotes"})
    return project


def config(project: Project) -> dict:
    return yaml.safe_load(project.read(".pipeline/config.yaml")) or {}


def local_config(project: Project) -> dict:
    return yaml.safe_load(project.read(".pipeline/config.local.yaml")) or {}


def settings(project: Project, name: str | None = None) -> RemoteSettings:
    return load_config(project.root / ".pipeline").remote(name)


def test_the_first_remote_is_the_default_and_d_makes_another_one(proj: Project) -> None:
    api.remote_add(proj.root, "origin", "s3://bucket/store")
    api.remote_add(proj.root, "backup", "/mnt/nas/store")
    assert config(proj)["core"]["remote"] == "origin"
    assert settings(proj).name == "origin"
    api.remote_add(proj.root, "fast", "ssh://me@host/srv/store", default=True)
    assert settings(proj).name == "fast"
    api.remote_default(proj.root, "backup")
    assert settings(proj).url == "/mnt/nas/store"
    assert config(proj)["remotes"] == {
        "origin": {"url": "s3://bucket/store"},
        "backup": {"url": "/mnt/nas/store"},
        "fast": {"url": "ssh://me@host/srv/store"},
    }


def test_adding_a_name_twice_needs_force_and_names_must_be_names(proj: Project) -> None:
    api.remote_add(proj.root, "origin", "s3://bucket/a")
    with pytest.raises(UsageError, match=r"remote 'origin' exists \(s3://bucket/a\)") as info:
        api.remote_add(proj.root, "origin", "s3://bucket/b")
    assert "--force" in (info.value.hint or "")
    api.remote_add(proj.root, "origin", "s3://bucket/b", force=True)
    assert settings(proj, "origin").url == "s3://bucket/b"
    with pytest.raises(UsageError, match="is not a remote name"):
        api.remote_add(proj.root, "../evil", "s3://bucket/c")


def test_secrets_go_only_to_the_local_file_which_git_ignores(proj: Project) -> None:
    api.remote_add(proj.root, "origin", "s3://bucket/store")
    with pytest.raises(UsageError, match="secret_access_key is a secret") as info:
        api.remote_modify(proj.root, "origin", "secret_access_key", "s3cr3t")
    assert info.value.hint == "pipeline remote modify --local origin secret_access_key VALUE"
    assert "secret_access_key" not in proj.read(".pipeline/config.yaml")

    written = api.remote_modify(proj.root, "origin", "secret_access_key", "s3cr3t", local=True)
    assert written.name == "config.local.yaml"
    assert local_config(proj)["remotes"]["origin"] == {"secret_access_key": "s3cr3t"}
    proj.git("add", "-A")
    staged = proj.git("diff", "--cached", "--name-only").split()
    assert ".pipeline/config.yaml" in staged
    assert ".pipeline/config.local.yaml" not in staged
    assert settings(proj).options["secret_access_key"] == "s3cr3t"

    listed = {r.name: r for r in api.remote_list(proj.root)}
    assert listed["origin"].options["secret_access_key"] == "***"
    assert "s3cr3t" not in str(listed["origin"].to_json())


def test_a_secret_written_by_hand_in_the_committed_file_is_refused(proj: Project) -> None:
    proj.write(
        ".pipeline/config.yaml",
        "remotes:\n  origin:\n    url: s3://bucket/store\n    password: hunter2\n",
    )
    with pytest.raises(ManifestError) as info:
        load_config(proj.root / ".pipeline")
    assert "password is a secret and config.yaml is committed to git" in info.value.message
    assert "config.yaml:4" in info.value.message  # where it is
    assert "--local origin password" in (info.value.hint or "")


def test_the_local_file_wins_key_by_key(proj: Project) -> None:
    api.remote_add(proj.root, "origin", "s3://bucket/store")
    api.remote_modify(proj.root, "origin", "endpoint_url", "http://shared:9000")
    api.remote_modify(proj.root, "origin", "region", "eu-west-1")
    api.remote_modify(proj.root, "origin", "jobs", "4")
    api.remote_modify(proj.root, "origin", "endpoint_url", "http://mine:9000", local=True)
    merged = settings(proj)
    assert merged.url == "s3://bucket/store"
    assert merged.options == {
        "endpoint_url": "http://mine:9000",  # this machine's
        "region": "eu-west-1",  # everyone's, untouched by the local file
        "jobs": 4,  # a whole number stays one
    }
    assert config(proj)["remotes"]["origin"]["endpoint_url"] == "http://shared:9000"
    api.remote_modify(proj.root, "origin", "endpoint_url", None, local=True)  # --unset
    assert settings(proj).options["endpoint_url"] == "http://shared:9000"


def test_an_unknown_option_suggests_the_near_one(proj: Project) -> None:
    api.remote_add(proj.root, "origin", "s3://bucket/store")
    with pytest.raises(UsageError, match="unknown option 'endpoint' for remote 'origin'") as info:
        api.remote_modify(proj.root, "origin", "endpoint", "http://x")
    assert info.value.hint == "did you mean 'endpoint_url'?"
    with pytest.raises(UsageError) as info:
        api.remote_modify(proj.root, "origin", "zzz", "1")
    assert "known: " in (info.value.hint or "")
    assert "endpoint_url" in (info.value.hint or "")
    # Options are per backend: an ssh option on an s3 remote is unknown too.
    with pytest.raises(UsageError, match="unknown option 'keyfile'"):
        api.remote_modify(proj.root, "origin", "keyfile", "~/.ssh/id")


def test_remove_forgets_both_files_and_the_default(proj: Project) -> None:
    api.remote_add(proj.root, "origin", "s3://bucket/store")
    api.remote_modify(proj.root, "origin", "access_key_id", "AKIA", local=True)
    api.remote_add(proj.root, "backup", "/mnt/nas")
    api.remote_remove(proj.root, "origin")
    assert "origin" not in config(proj)["remotes"]
    assert "origin" not in (local_config(proj).get("remotes") or {})
    assert "remote" not in config(proj).get("core", {})
    assert settings(proj).name == "backup"  # the only remote left is the default
    with pytest.raises(UsageError, match="no remote named 'bakup'") as info:
        api.remote_remove(proj.root, "bakup")
    assert info.value.hint == "did you mean 'backup'?"


def test_no_remote_configured_says_how_to_add_one(proj: Project) -> None:
    with pytest.raises(UsageError, match="no remote is configured") as info:
        settings(proj)
    assert "pipeline remote add" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("gs://bucket/store", "gcsfs", "gs"),
        ("azure://container/store", "adlfs", "azure"),
        ("hdfs://namenode/store", "pyarrow", "hdfs"),
    ],
)
def test_a_missing_backend_names_the_pip_install(
    proj: Project, url: str, module: str, extra: str
) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here: nothing is missing")
    api.remote_add(proj.root, "cloud", url)  # configuring needs no backend
    (listed,) = api.remote_list(proj.root)
    assert listed.backend == module
    with pytest.raises(UsageError) as info:
        Remote(settings(proj), proj.root)
    assert f"remotes need {module}, which is not installed" in info.value.message
    assert info.value.hint == f"pip install 'pipeline[{extra}]'"


def test_an_unknown_scheme_is_refused_when_added(proj: Project) -> None:
    with pytest.raises(UsageError, match="unsupported remote url 'ftp://host/store'") as info:
        api.remote_add(proj.root, "old", "ftp://host/store")
    assert "s3://" in (info.value.hint or "")
    assert load_config(proj.root / ".pipeline").remotes == {}


def test_a_relative_directory_is_relative_to_the_project(proj: Project, tmp_path: Path) -> None:
    api.remote_add(proj.root, "nas", "../shared-store")
    remote = Remote(settings(proj), proj.root)
    assert remote.protocol == "file"
    assert Path(remote.base) == (proj.root.parent / "shared-store").resolve()


def test_a_bad_jobs_value_is_a_clear_error(proj: Project) -> None:
    """Refused when set, or else one clear error when used: never an internal error."""
    from pipeline.errors import PipelineError

    api.remote_add(proj.root, "origin", str(proj.root.parent / "store"))
    try:
        api.remote_modify(proj.root, "origin", "jobs", "many")
    except UsageError as exc:
        assert "jobs" in exc.message
        return
    with pytest.raises(PipelineError, match="jobs"):
        Remote(settings(proj), proj.root)
