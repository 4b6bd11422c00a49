"""Review of the environments feature (issue 5): each test here pins one confirmed bug.

Every test is `xfail(strict=True)`: it fails because of the bug named in its reason and will
pass (and then must lose its marker) once the bug is fixed. All are hermetic: own
`XDG_CACHE_HOME` and uv cache, pip's config files off, no index, wheels from a find-links dir
built here, conda packages from a local channel built here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import envkit
import pytest
from conftest import Project
from test_env_common import (
    EnvCache,
    isolate,
    other_python,
    output,
    repro_ok,
    write_yaml,
)

from pipeline import api
from pipeline.env import interpreters, tools, uvbin
from pipeline.env.envstore import META, EnvStore
from pipeline.env.resolve import resolve_env
from pipeline.env.specfile import read_spec
from pipeline.errors import EnvironmentSetupError, ManifestError, PipelineError, UsageError
from pipeline.load.environments import EnvDecl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


@pytest.fixture
def fresh_interpreter_caches() -> Iterator[None]:
    """Interpreter lookups are memoised per process; a test that changes PATH needs them cold."""

    def clear() -> None:
        for fn in (interpreters._pyenv, interpreters._on_path, interpreters._probe):
            fn.cache_clear()
        uvbin.uv_binary.cache_clear()

    clear()
    yield
    clear()


# -- pip configuration: pip's own precedence rules ---------------------------------------------
#
# Expected values were checked against `pip install`'s parsed options (pip 23.2.1, this
# machine's) for the same files and variables: see the review report.

PIP_CASES: dict[str, tuple[dict[str, str], dict[str, str], str | None, bool]] = {
    # files (relative to the fake $HOME layout), environment, expected index-url, no-index
    "PIP_CONFIG_FILE-suppresses-user-config": (
        {
            "explicit.conf": "[global]\nindex-url = http://explicit.invalid/simple\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user.invalid/simple\n",
        },
        {"PIP_CONFIG_FILE": "@/explicit.conf"},
        "http://explicit.invalid/simple",
        False,
    ),
    "install-section-beats-global-across-files": (
        {
            "xdgdirs/pip/pip.conf": "[install]\nindex-url = http://site-install.invalid/simple\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user-global.invalid/simple\n",
        },
        {},
        "http://site-install.invalid/simple",
        False,
    ),
    "underscore-key-is-normalised": (
        {"home/.config/pip/pip.conf": "[global]\nindex_url = http://user.invalid/simple\n"},
        {},
        "http://user.invalid/simple",
        False,
    ),
    "empty-env-var-is-ignored": (
        {"home/.config/pip/pip.conf": "[global]\nindex-url = http://user.invalid/simple\n"},
        {"PIP_INDEX_URL": ""},
        "http://user.invalid/simple",
        False,
    ),
    "no-index-accepts-strtobool-y": ({}, {"PIP_NO_INDEX": "y"}, None, True),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(name)
        for name in PIP_CASES
    ],
)
def test_pip_index_options_follow_pips_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    files, env, index_url, no_index = PIP_CASES[case]
    base = tmp_path / "pipcfg"
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # Path.home() reads the process environment
    environ = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CONFIG_DIRS": str(base / "xdgdirs"),
        **{k: v.replace("@", str(base)) for k, v in env.items()},
    }
    options = tools.pip_index_options(environ)
    assert (options.index_url, options.no_index) == (index_url, no_index)


def test_a_constraint_in_pip_conf_applies_to_uv_builds(
    project: Project, tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    for wheel in wheels.iterdir():
        (links / wheel.name).write_bytes(wheel.read_bytes())
    envkit.build_wheel(links, "beta", "2.0")
    isolate(monkeypatch, tmp_path, links)
    (tmp_path / "constraints.txt").write_text("beta<2\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {tmp_path / 'constraints.txt'}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    write_yaml(project, "python_env.yaml", {"dependencies": ["beta"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {
                "a": {
                    "cmd": "python -c 'import beta; print(beta.VERSION)' > a.txt",
                    "outs": ["a.txt"],
                }
            },
        }
    )
    repro_ok(project)
    assert project.read("a.txt").strip() == "1.0"


# -- spec parsing -----------------------------------------------------------------------------


def test_a_labelled_channel_name_stays_a_channel_name(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text("channels: [conda-forge/label/dev, ./local]\ndependencies: [hello]\n")
    channels = read_spec("conda_env", spec).channels
    assert channels[0] == "conda-forge/label/dev"
    assert channels[1] == (tmp_path / "local").as_uri()


def test_float_python_hint_repeats_the_version_as_written(tmp_path: Path) -> None:
    spec = tmp_path / "python_env.yaml"
    spec.write_text("python: 3.10\ndependencies: [alpha]\n")
    with pytest.raises(ManifestError) as caught:
        read_spec("python_env", spec)
    assert '"3.10"' in caught.value.message + (caught.value.hint or "")


def test_a_python_range_is_a_spec_error_naming_the_spec(project: Project) -> None:
    project.write("python_env.yaml", 'python: ">=3.10"\ndependencies: [alpha]\n')
    project.manifest({"python_env": "python_env.yaml", "stages": {"a": {"cmd": "true"}}})
    done = project.cli("status")
    assert done.returncode == 2, output(done)
    assert "python_env.yaml:1" in done.stderr


def test_python_2_is_refused_when_resolving() -> None:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not any(root.glob("2.7.*")):
        pytest.skip("no Python 2.7 under pyenv on this machine")
    with pytest.raises(PipelineError):
        interpreters.find_python("2.7")


def test_a_venv_creation_failure_gets_a_hint_about_the_interpreter(tmp_path: Path) -> None:
    from pipeline.env.venv import create_venv

    broken = tmp_path / "python3.99"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    bad = interpreters.Interpreter(str(broken), "3.99.0")
    with pytest.raises(EnvironmentSetupError) as caught:
        create_venv(tmp_path / "venv", bad, lambda _: None, installer="uv")
    assert "index" not in (caught.value.hint or "")


# -- locks ------------------------------------------------------------------------------------


def test_two_specs_with_one_stem_do_not_share_a_lock(tmp_path: Path) -> None:
    (tmp_path / "requirements.cpu.txt").write_text("alpha\n")
    (tmp_path / "requirements.gpu.txt").write_text("gamma\n")
    cpu = EnvDecl("cpu", "requirements", "requirements.cpu.txt")
    gpu = EnvDecl("gpu", "requirements", "requirements.gpu.txt")
    lock = resolve_env(tmp_path, cpu)
    assert lock.lock is None
    from pipeline.env.resolve import lock_path

    lock_path("requirements", lock.spec).write_text("# the cpu env's lock\n")
    assert resolve_env(tmp_path, gpu).lock is None


def test_a_lock_does_not_depend_on_the_env_name(project: Project) -> None:
    write_yaml(project, "envs/shared.yaml", {"dependencies": ["alpha"]})
    project.manifest(
        {
            "environments": {
                "one": {"python_env": "envs/shared.yaml"},
                "two": {"python_env": "envs/shared.yaml"},
            },
            "stages": {"a": {"cmd": "true", "env": "one"}, "b": {"cmd": "true", "env": "two"}},
        }
    )
    (lock,) = api.env_lock(project.root, ("one",))
    first = lock.read_bytes()
    api.env_lock(project.root, ("two",))
    assert lock.read_bytes() == first


def test_pylock_as_requirements_keeps_markers(tmp_path: Path) -> None:
    from pipeline.env.venv import pylock_as_requirements

    lock = tmp_path / "pylock.env.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "uv"\n\n'
        '[[packages]]\nname = "colorama"\nversion = "0.4.6"\n'
        "marker = \"sys_platform == 'win32'\"\n"
        'wheels = [{ url = "https://files.invalid/colorama-0.4.6-py2.py3-none-any.whl", '
        'hashes = { sha256 = "' + "a" * 64 + '" } }]\n'
    )
    text = pylock_as_requirements(lock)
    line = next((x for x in text.splitlines() if x.startswith("colorama")), None)
    assert line is None or "win32" in line, text


def _declared_uv_floor() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for dep in data["project"]["dependencies"]:
        match = re.fullmatch(r"uv\s*>=\s*([\d.]+)", dep.strip())
        if match:
            return match.group(1)
    raise AssertionError("no uv>= dependency in pyproject.toml")


def test_declared_uv_floor_knows_every_flag_we_pass() -> None:
    import inspect

    from packaging.version import Version

    from pipeline.env import venv

    if "--preview-features" in inspect.getsource(venv.install_lock):
        assert Version(_declared_uv_floor()) >= Version("0.8.20")


# -- the store: prune, crashes, corrupt metadata ---------------------------------------------


def _fake_env(root: Path, hexdigest: str, meta_text: str) -> Path:
    prefix = root / ".store" / f"{hexdigest}.cafe0001"
    prefix.mkdir(parents=True)
    (prefix / META).write_text(meta_text)
    (root / hexdigest).symlink_to(os.path.relpath(prefix, root))
    return prefix


def test_metadata_that_is_not_an_object_counts_as_missing(cache: EnvCache) -> None:
    _fake_env(cache.root, "ab" * 16, "null\n")
    assert EnvStore(cache.root).all() == []


def test_prune_removes_a_symlink_to_a_deleted_env(project: Project, cache: EnvCache) -> None:
    project.manifest({"stages": {"a": {"cmd": "true"}}})
    cache.root.mkdir(parents=True)
    dangling = cache.root / ("cd" * 16)
    dangling.symlink_to(f".store/{'cd' * 16}.deadbeef")
    api.env_prune(project.root, days=30)
    assert not dangling.is_symlink()


# -- CLI / API edges -------------------------------------------------------------------------


def test_env_show_of_a_stage_in_a_named_system_env(project: Project) -> None:
    project.manifest(
        {"environments": {"host": "system"}, "stages": {"a": {"cmd": "true", "env": "host"}}}
    )
    done = project.cli("env", "show", "a")
    assert done.returncode == 0, output(done)
    assert "internal error" not in output(done)


def test_env_lock_of_a_named_system_env_says_it_is_system(project: Project) -> None:
    project.manifest(
        {"environments": {"host": "system"}, "stages": {"a": {"cmd": "true", "env": "host"}}}
    )
    with pytest.raises(UsageError) as caught:
        api.env_lock(project.root, ("host",))
    assert "no environment named" not in caught.value.message
    assert "system" in caught.value.message + (caught.value.hint or "")


def test_config_env_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    from pipeline.core.config import load_config

    state = tmp_path / ".pipeline"
    state.mkdir()
    (state / "config.yaml").write_text("env: uv\n")
    with pytest.raises(ManifestError):
        load_config(state)


def test_config_error_names_the_local_file(tmp_path: Path) -> None:
    from pipeline.core.config import load_config

    state = tmp_path / ".pipeline"
    state.mkdir()
    (state / "config.local.yaml").write_text("env: {installer: bogus}\n")
    with pytest.raises(ManifestError) as caught:
        load_config(state)
    assert "config.local.yaml" in caught.value.message


# -- building and running ---------------------------------------------------------------------


def test_a_local_wheel_path_is_relative_to_the_spec(
    project: Project, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = project.root / "dist"
    dist.mkdir()
    wheel = dist / "gamma-1.0-py3-none-any.whl"
    wheel.write_bytes((wheels / wheel.name).read_bytes())
    project.write("envs/pe.yaml", "dependencies:\n  - ../dist/gamma-1.0-py3-none-any.whl\n")
    project.manifest(
        {
            "python_env": "envs/pe.yaml",
            "stages": {"a": {"cmd": "python -c 'import gamma' > a.txt", "outs": ["a.txt"]}},
        }
    )
    monkeypatch.chdir(project.root)  # what the CLI does (`-C`)
    repro_ok(project)


def test_an_outer_venvs_bin_is_not_on_the_stages_path(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = tmp_path / "outer-venv"
    (outer / "bin").mkdir(parents=True)
    tool = outer / "bin" / "outer-tool"
    tool.write_text("#!/bin/sh\necho leaked\n")
    tool.chmod(0o755)
    monkeypatch.setenv("VIRTUAL_ENV", str(outer))
    monkeypatch.setenv("PATH", f"{outer / 'bin'}{os.pathsep}{os.environ['PATH']}")
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {
                "a": {"cmd": "(command -v outer-tool || echo none) > a.txt", "outs": ["a.txt"]}
            },
        }
    )
    repro_ok(project)
    assert project.read("a.txt").strip() == "none"


def test_status_runs_no_subprocess_for_an_interpreter_on_path(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_interpreter_caches: None,
) -> None:
    other = other_python()
    if other is None:
        pytest.skip("needs a second CPython 3.9+ (another X.Y than the running one)")
    version, exe = other
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / f"python{version}").symlink_to(os.path.realpath(exe))
    empty = tmp_path / "no-pyenv"
    (empty / "versions").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    write_yaml(project, "python_env.yaml", {"python": version, "dependencies": ["alpha"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {"a": {"cmd": "echo a > a.txt", "outs": ["a.txt"]}},
        }
    )
    repro_ok(project)
    interpreters._on_path.cache_clear()  # a second `pipeline status` is a new process
    interpreters._probe.cache_clear()
    uvbin.uv_binary.cache_clear()

    calls: list[Any] = []
    real_run, real_popen = subprocess.run, subprocess.Popen

    def run(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else kwargs.get("args"))
        return real_run(*args, **kwargs)

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append(args[0] if args else kwargs.get("args"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    plan = project.plan()
    assert plan.stale == []
    assert calls == []


# -- conda ------------------------------------------------------------------------------------


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    pytest.importorskip("rattler")
    return envkit.make_channel(tmp_path, with_python=True)


def test_the_users_bash_env_still_runs_with_activate_hooks(
    project: Project, channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envkit.build_conda_package(
        channel, "activator", files={"etc/conda/activate.d/act.sh": "export HOOK_VAR=on\n"}
    )
    envkit.index_channel(channel)
    user = tmp_path / "user-bash-env.sh"
    user.write_text("export USER_VAR=yes\n")
    monkeypatch.setenv("BASH_ENV", str(user))
    write_yaml(
        project,
        "environment.yml",
        {"channels": [channel.as_uri()], "dependencies": ["hello", "activator"]},
    )
    project.manifest(
        {
            "conda_env": "environment.yml",
            "stages": {"a": {"cmd": 'echo "$HOOK_VAR $USER_VAR" > a.txt', "outs": ["a.txt"]}},
        }
    )
    repro_ok(project)
    assert project.read("a.txt").split() == ["on", "yes"]


def test_prune_during_a_conda_lock_leaves_the_lock_alone(
    project: Project, channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.env import conda

    write_yaml(
        project,
        "environment.yml",
        {"channels": [channel.as_uri()], "dependencies": ["hello", "python", {"pip": ["alpha"]}]},
    )
    project.manifest({"conda_env": "environment.yml", "stages": {"a": {"cmd": "true"}}})
    real_install = conda.install

    def install_then_prune(records: Any, prefix: Path, cache: Path) -> None:
        real_install(records, prefix, cache)
        if prefix.name.startswith("lock-"):
            api.env_prune(project.root, days=30)  # another terminal, at the wrong moment

    monkeypatch.setattr(conda, "install", install_then_prune)
    (lock,) = api.env_lock(project.root)
    assert "manager: pip" in lock.read_text()


RACE = """
import sys, sysconfig, threading, time
from pathlib import Path
from pipeline.load.environments import EnvDecl
from pipeline.env.provision import Provisioner
from pipeline.env.resolve import resolve_env

root = Path(sys.argv[1])
envs = [resolve_env(root, EnvDecl(n, "requirements", f"{n}.txt")) for n in ("one", "two")]
provisioner = Provisioner()  # what the executor holds; `-j 2` workers call ensure()
original = sysconfig._init_posix

def slow(config):  # widens CPython 3.10/3.11's unlocked first-use window of sysconfig
    time.sleep(0.3)
    original(config)

sysconfig._init_posix = slow
sysconfig._CONFIG_VARS = None  # as in a fresh `pipeline repro`: nothing has read it yet
errors = []

def work(env):
    try:
        provisioner.ensure(env)
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(env,)) for env in envs]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors)
"""


def test_two_envs_building_in_parallel_threads_on_a_cold_sysconfig(project: Project) -> None:
    import sysconfig

    if hasattr(sysconfig, "_CONFIG_VARS_LOCK") or not hasattr(sysconfig, "_init_posix"):
        pytest.skip("this Python's sysconfig initialises under a lock")
    project.write("one.txt", "alpha\n")
    project.write("two.txt", "gamma\n")
    done = subprocess.run(
        [sys.executable, "-c", RACE, str(project.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_prune_does_not_delete_an_env_a_running_stage_uses(
    make_project: Any, cache: EnvCache, tmp_path: Path
) -> None:
    import time

    from conftest import cli_env

    project = make_project("busy")
    other = make_project("other")
    other.manifest({"stages": {"x": {"cmd": "true"}}})
    started, go = tmp_path / "started", tmp_path / "go"
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    cmd = (
        f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; "
        "python -c 'import sys; print(sys.prefix)' > a.txt"
    )
    project.manifest(
        {"python_env": "python_env.yaml", "stages": {"a": {"cmd": cmd, "outs": ["a.txt"]}}}
    )
    api.env_build(project.root)
    running = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "repro"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), "the stage never started"
        api.env_prune(other.root, days=0)
    finally:
        go.touch()
        out = running.communicate(timeout=60)[0]
    if running.returncode == 0:  # it ran: then it must have run inside the env
        assert cache.contains(project.read("a.txt").strip()), out
