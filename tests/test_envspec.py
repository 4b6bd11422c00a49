"""Environment declarations, spec files, pip settings, interpreter lookup and env digests.

The pure, fast parts of issue 5; building real envs is in tests/test_env_*.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.env import interpreters
from pipeline.env.resolve import LOCK_MARK, lock_path, resolve_env
from pipeline.env.specfile import read_spec
from pipeline.env.tools import IndexOptions, pip_index_options
from pipeline.errors import EnvironmentSetupError, ManifestError
from pipeline.load.environments import EnvDecl
from pipeline.load.project import load_project


def _project(tmp_path: Path, manifest: str) -> Path:
    (tmp_path / "MLproject").write_text(manifest)
    return tmp_path


# --- declarations -------------------------------------------------------------------------


def test_default_and_named_envs_are_declared(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "python_env: envs/a.yaml\n"
        "environments:\n"
        "  viz: {conda_env: ../shared/viz.yml}\n"
        "  reqs: {python_env: envs/requirements.txt, python: '3.12'}\n"
        "  locked: {conda_env: envs/x.conda-lock.yml}\n"
        "  host: system\n"
        "stages:\n"
        "  a: {cmd: 'true'}\n"
        "  b: {cmd: 'true', env: viz}\n"
        "  c: {cmd: 'true', env: system}\n"
        "  d: {cmd: 'true', env: host}\n",
    )
    project = load_project(root)
    envs = project.environments
    assert envs["default"] == EnvDecl("default", "python_env", "envs/a.yaml", loc=("python_env",))
    assert envs["viz"].kind == "conda_env" and envs["viz"].file == "../shared/viz.yml"
    assert envs["reqs"].kind == "requirements" and envs["reqs"].python == "3.12"
    assert envs["locked"].kind == "conda_lock"
    assert not envs["host"].isolated
    stages = project.stages
    assert [stages[n].env for n in "abcd"] == ["default", "viz", None, "host"]


def test_declarations_survive_the_project_memo(tmp_path: Path) -> None:
    from pipeline.core.statmemo import StatMemo

    root = _project(
        tmp_path, "environments: {v: {requirements: r.txt}}\nstages:\n  a: {cmd: x, env: v}\n"
    )
    (root / ".pipeline").mkdir()
    for _ in range(2):  # the second load is recalled from the memo
        db = StatMemo(root / ".pipeline" / "state.db")
        try:
            project = load_project(root, memo=db)
        finally:
            db.close()
        assert project.environments["v"].file == "r.txt"
        assert project.stages["a"].env == "v"


@pytest.mark.parametrize(
    ("manifest", "message", "hint"),
    [
        (
            "stages:\n  a: {cmd: x, env: vis}\nenvironments: {viz: system}\n",
            "unknown environment 'vis'",
            "did you mean 'viz'?",
        ),
        ("environments: {system: {requirements: r.txt}}\nstages: {}\n", "reserved", "pick another"),
        ("python_env: a.yaml\nconda_env: b.yaml\nstages: {}\n", "not both", None),
        (
            "environments: {x: {requirements: r.txt, conda_env: e.yml}}\nstages: {}\n",
            "exactly one",
            None,
        ),
        (
            "environments: {x: {pyton_env: r.yaml}}\nstages: {}\n",
            "unknown key 'pyton_env'",
            "did you mean 'python_env'?",
        ),
        (
            "environments: {x: {requirements: r.txt, python: 3.10}}\nstages: {}\n",
            "as a string",
            None,
        ),
        ("environments: {x: envs/r.txt}\nstages: {}\n", "expected `system` or a mapping", None),
    ],
)
def test_bad_declarations_point_at_the_manifest(
    tmp_path: Path, manifest: str, message: str, hint: str | None
) -> None:
    root = _project(tmp_path, manifest)
    with pytest.raises(ManifestError) as info:
        load_project(root)
    assert "MLproject:" in info.value.message
    assert message in info.value.message
    if hint:
        assert hint in (info.value.hint or "")


# --- spec files ---------------------------------------------------------------------------


def test_python_env_spec_with_includes(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "base.txt").write_text("six\n-c pins.txt\n")
    (tmp_path / "envs" / "pins.txt").write_text("six==1.16.0\n")
    spec = tmp_path / "envs" / "env.yaml"
    spec.write_text(
        "python: '3.11'\nbuild_dependencies: [pip]\ndependencies: [attrs>=23, -r base.txt]\n"
    )
    request = read_spec("python_env", spec)
    assert request.python == "3.11"
    assert request.requirements == ("pip", "attrs>=23", f"-r {tmp_path / 'envs' / 'base.txt'}")
    assert [name for name, _ in request.files] == ["<spec>", "-r base.txt", "-c pins.txt"]


def test_include_loops_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(ManifestError, match="includes itself"):
        read_spec("requirements", tmp_path / "a.txt")


def test_conda_spec(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text(
        "name: ignored\nchannels: [conda-forge, ./chan, https://x.org/c]\n"
        "dependencies: [python=3.11, numpy, {pip: [requests, -r extra.txt]}]\n"
        "variables: {A: 1}\n"
    )
    (tmp_path / "extra.txt").write_text("six\n")
    request = read_spec("conda_env", spec)
    assert request.channels == ("conda-forge", (tmp_path / "chan").as_uri(), "https://x.org/c")
    assert request.conda == ("python=3.11", "numpy")
    assert request.pip == ("requests", f"-r {tmp_path / 'extra.txt'}")
    assert request.variables == {"A": "1"}


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("python_env", "python: 3.10\n", "as a string"),
        ("python_env", "dependncies: [x]\n", "unknown key 'dependncies'"),
        ("python_env", "dependencies: numpy\n", "expected a list"),
        ("conda_env", "dependencies: [{pipp: [x]}]\n", "match spec or {pip"),
        ("conda_env", "- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_specs_name_file_and_line(tmp_path: Path, kind: str, text: str, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_spec(kind, spec)
    assert "spec.yaml:" in info.value.message and message in info.value.message


def test_missing_spec_is_an_environment_error(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentSetupError, match="cannot read environment spec"):
        read_spec("requirements", tmp_path / "nope.txt")


# --- pip settings -------------------------------------------------------------------------


def test_pip_settings_follow_pips_order(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.conf"
    explicit.write_text("[global]\nindex-url = https://explicit/simple\nfind-links = /a /b\n")
    home = tmp_path / "xdg"
    (home / "pip").mkdir(parents=True)
    (home / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://user/simple\n[install]\nextra-index-url = https://x https://y\n"
    )
    environ = {
        "PIP_CONFIG_FILE": str(explicit),
        "XDG_CONFIG_HOME": str(home),
        "XDG_CONFIG_DIRS": str(tmp_path / "none"),
    }
    options = pip_index_options(environ)
    # As pip: an existing PIP_CONFIG_FILE replaces the user files and wins over the rest.
    assert options.index_url == "https://explicit/simple"
    assert options.find_links == ("/a", "/b")
    assert options.extra_index_urls == ()  # only the (skipped) user file had them
    environ["PIP_INDEX_URL"] = "https://env/simple"
    environ["PIP_NO_INDEX"] = "yes"
    options = pip_index_options(environ)
    assert options.index_url == "https://env/simple" and options.no_index
    assert options.uv_args() == ["--no-index", "--find-links", "/a", "--find-links", "/b"]


def test_devnull_config_disables_pip_files() -> None:
    assert pip_index_options({"PIP_CONFIG_FILE": os.devnull}) == IndexOptions()


@given(
    st.lists(st.text("abcxyz:/._-", min_size=1, max_size=12), max_size=3),
    st.lists(st.text("abcxyz/._-", min_size=1, max_size=12), max_size=3),
)
def test_uv_args_carry_every_setting(extras: list[str], links: list[str]) -> None:
    options = IndexOptions("https://i/simple", tuple(extras), tuple(links))
    args = options.uv_args()
    assert args[:2] == ["--index-url", "https://i/simple"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--extra-index-url"] == extras
    assert [args[i + 1] for i, a in enumerate(args) if a == "--find-links"] == links
    assert ("--index-strategy" in args) == bool(extras)


# --- interpreters -------------------------------------------------------------------------


def test_no_request_means_the_running_interpreter() -> None:
    found = interpreters.find_python(None)
    assert found.path == sys.executable
    assert found.version.startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")


def test_a_matching_request_finds_the_running_version() -> None:
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert interpreters.find_python(minor).minor == minor


def test_unavailable_version_lists_what_was_found() -> None:
    with pytest.raises(EnvironmentSetupError) as info:
        interpreters.find_python("3.99")
    assert "no Python 3.99" in info.value.message
    current = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
    assert current in (info.value.hint or "")


def test_a_version_request_must_look_like_one() -> None:
    with pytest.raises(EnvironmentSetupError, match="not a version"):
        interpreters.find_python("latest")


# --- digests ------------------------------------------------------------------------------


def _decl(file: str, kind: str = "python_env") -> EnvDecl:
    return EnvDecl("e", kind, file)


def test_digest_ignores_where_the_spec_lives(tmp_path: Path) -> None:
    for project in ("p1", "p2/deeper"):
        (tmp_path / project).mkdir(parents=True)
        (tmp_path / project / "env.yaml").write_text("dependencies: [six]\n")
    one = resolve_env(tmp_path / "p1", _decl("env.yaml"))
    two = resolve_env(tmp_path / "p2" / "deeper", _decl("env.yaml"))
    assert one.digest == two.digest


def test_digest_follows_spec_includes_and_lock(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text("dependencies: [-r reqs.txt]\n")
    (tmp_path / "reqs.txt").write_text("six\n")
    first = resolve_env(tmp_path, _decl("env.yaml"))
    (tmp_path / "reqs.txt").write_text("six==1.16.0\n")
    second = resolve_env(tmp_path, _decl("env.yaml"))
    assert first.digest != second.digest and second.lock is None
    lock = lock_path("python_env", tmp_path / "env.yaml")
    assert lock.name == "pylock.env.toml"
    lock.write_text(f"{LOCK_MARK}{second.spec_digest}\nlock-version = '1.0'\n")
    locked = resolve_env(tmp_path, _decl("env.yaml"))
    assert locked.lock == lock and not locked.lock_stale and locked.digest != second.digest
    (tmp_path / "reqs.txt").write_text("six==1.17.0\n")  # the spec moves on; the lock does not
    stale = resolve_env(tmp_path, _decl("env.yaml"))
    assert stale.lock_stale and stale.digest == locked.digest


def test_lock_names() -> None:
    assert lock_path("requirements", Path("e/requirements.txt")).name == "pylock.requirements.toml"
    assert lock_path("conda_env", Path("e/viz.yaml")).name == "viz.conda-lock.yml"
    assert lock_path("conda_lock", Path("e/x.conda-lock.yml")) == Path("e/x.conda-lock.yml")
