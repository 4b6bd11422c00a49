"""Stage environments built as venvs (DESIGN §6): `python_env` and `requirements` specs.

Everything installs offline from wheels built here (`envkit.build_wheel`), found through pip's
own settings (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), which pipeline hands to uv. Each test gets its
own env cache (`XDG_CACHE_HOME`), so nothing is shared between tests unless a test says so.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import envkit
import pytest
from conftest import Project, cli_env, reasons
from filelock import FileLock
from test_env_common import (
    SHOW_PY,
    EnvCache,
    build_counting_sdist,
    builds_in,
    copy_tree,
    counted,
    isolate,
    leaky_parent_env,
    ok,
    other_python,
    output,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

from pipeline import api

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")


def venv_project(
    project: Project,
    deps: tuple[str, ...] = ("alpha",),
    stages: dict[str, object] | None = None,
) -> Project:
    """A project whose default env is `python_env.yaml` with `deps`; stage `a` imports them."""
    project.write("show.py", SHOW_PY)
    write_yaml(project, "python_env.yaml", {"dependencies": list(deps)})
    project.manifest(
        {"python_env": "python_env.yaml", "stages": stages or {"a": show_stage("a", *deps)}},
        commit=False,
    )
    project.commit()
    return project


def env_json(project: Project, *args: str) -> object:
    return json.loads(ok(project.cli("env", *args, "--json")).stdout)


# -- 1. a venv from local wheels, and nothing of the outer environment leaks in ----------------


def test_venv_from_offline_wheels_runs_the_stage_isolated(
    project: Project, cache: EnvCache, tmp_path: Path
) -> None:
    assert importlib.util.find_spec("alpha") is None, "alpha must only exist inside the env"
    venv_project(project, deps=("alpha",), stages={"a": show_stage("a", "alpha", "beta")})
    parent = leaky_parent_env(tmp_path)

    done = ok(project.cli("repro", env=parent))

    assert builds_in(output(done), "default") == 1
    info = shown(project, "a")
    assert info["modules"] == {"alpha": "1.0", "beta": "1.0"}  # beta came as alpha's dependency
    assert cache.contains(info["prefix"]), info["prefix"]
    assert cache.contains(info["executable"]), info["executable"]
    environ = info["environ"]
    assert environ["VIRTUAL_ENV"] is not None
    assert Path(environ["VIRTUAL_ENV"]).resolve() == Path(info["prefix"]).resolve()
    assert environ["PYTHONPATH"] is None
    assert not info["leaked_importable"]
    assert environ["CONDA_PREFIX"] is None

    # The store: one build dir, published under the digest the lock records for the stage.
    digest = project.lock()["stages"]["a"]["env"]
    hexdigest = digest.rsplit(":", 1)[-1]
    published = cache.published()
    assert list(published) == [hexdigest]
    assert cache.store_dirs() == [published[hexdigest]]
    assert published[hexdigest].name.startswith(hexdigest + ".")
    assert Path(info["prefix"]).resolve() == published[hexdigest]
    meta = cache.meta(digest)
    assert meta["name"] == "default"
    assert meta["kind"] == "python_env"
    assert meta["builder"] == "uv"
    assert meta["digest"] == digest
    assert ["alpha", "1.0"] in meta["packages"]
    assert ["beta", "1.0"] in meta["packages"]
    assert meta["python"]["version"] == platform.python_version()

    again = ok(project.cli("repro", env=parent))
    assert builds_in(output(again)) == 0
    assert project.executions() == ["a"]


# -- 2. another Python version ------------------------------------------------------------------


def test_stage_runs_with_the_requested_python_version(project: Project, cache: EnvCache) -> None:
    other = other_python()
    if other is None:
        pytest.skip(
            "needs an installed CPython 3.9+ with another X.Y than the running "
            f"{sys.version_info[0]}.{sys.version_info[1]} (pyenv versions or python3.X on PATH)"
        )
    version, _ = other
    want = [int(part) for part in version.split(".")]
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/other.yaml", {"python": version, "dependencies": ["alpha"]})
    project.write("envs/plain.txt", "beta\n")
    project.manifest(
        {
            "environments": {
                "other": {"python_env": "envs/other.yaml"},
                "plain": {"requirements": "envs/plain.txt", "python": version},
            },
            "stages": {
                "a": show_stage("a", "alpha", env="other"),
                "b": show_stage("b", "beta", env="plain"),
                "c": show_stage("c"),
            },
        }
    )

    repro_ok(project)

    for stage, module in (("a", "alpha"), ("b", "beta")):
        info = shown(project, stage)
        assert info["version"] == want, stage
        assert info["modules"][module] == "1.0"
        assert cache.contains(info["prefix"])
        digest = project.lock()["stages"][stage]["env"]
        assert cache.meta(digest)["python"]["version"].startswith(version + ".")
    system = shown(project, "c")  # no env: the interpreter on PATH, not from the env cache
    assert not cache.contains(system["prefix"])


# -- 4. lock files: pins, rebuild from the lock, stale warning ----------------------------------


def test_pip_lock_pins_versions_in_a_fresh_cache(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheels: Path
) -> None:
    links = copy_tree(wheels, tmp_path / "links")  # this test adds a newer wheel
    isolate(monkeypatch, tmp_path, links)
    venv_project(project, deps=("alpha",))
    repro_ok(project)

    done = ok(project.cli("env", "lock"))
    lock = project.root / "pylock.python_env.toml"
    assert "pylock.python_env.toml" in output(done)
    text = lock.read_text()
    assert any(line.startswith("# pipeline-spec-digest: ") for line in text.splitlines()[:3])
    pinned = {p["name"]: p["version"] for p in tomllib.loads(text)["packages"]}
    assert pinned == {"alpha": "1.0", "beta": "1.0"}

    # A newer alpha appears, and a colleague starts with an empty cache.
    envkit.build_wheel(links, "alpha", "2.0", requires=["beta>=1"])
    fresh = isolate(monkeypatch, tmp_path, links, "xdg-fresh")
    status = ok(project.cli("status"))
    assert "env default changed" in status.stdout  # built from the lock now: a new digest
    done = ok(project.cli("repro"))
    assert builds_in(output(done), "default") == 1
    assert "pylock.python_env.toml" in output(done)  # the build says it uses the lock
    info = shown(project, "a")
    assert info["modules"]["alpha"] == "1.0"
    assert fresh.contains(info["prefix"])
    shown_env = env_json(project, "show", "a")
    assert isinstance(shown_env, dict)
    assert ["alpha", "1.0"] in shown_env["packages"]
    assert shown_env["lock"] == "locked"
    repro_ok(project)
    assert project.executions() == ["a", "a"]  # reran once for the lock, then up to date

    # Control: without the lock the same spec resolves to the newer wheel (the run-cache
    # would restore the first run's output, made in the same unlocked env digest).
    lock.unlink()
    ok(project.cli("repro", "--no-run-cache"))
    assert shown(project, "a")["modules"]["alpha"] == "2.0"


def test_spec_edited_after_its_lock_warns_until_locked_again(project: Project) -> None:
    venv_project(project, deps=("alpha",))
    api.env_lock(project.root)  # in-process where the output does not matter: faster
    assert "changed after" not in ok(project.cli("status")).stderr

    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha", "gamma"]})
    status = ok(project.cli("status"))
    assert "changed after" in status.stderr
    assert "env lock" in status.stderr
    assert "python_env.yaml" in status.stderr
    assert [e.lock for e in api.env_list(project.root)] == ["stale"]
    project.repro()  # still built from the old lock: no gamma
    assert "gamma" not in _package_names(project, "a")

    ok(project.cli("env", "lock"))
    assert "changed after" not in ok(project.cli("status")).stderr
    project.repro()
    assert "gamma" in _package_names(project, "a")


def _package_names(project: Project, stage: str) -> list[str]:
    report = api.env_show(project.root, stage)
    assert report is not None
    assert report.built is not None
    return [row[0] for row in report.built.packages]


# -- 5. one env for identical specs, wherever they are -----------------------------------------


def test_identical_specs_in_different_projects_share_one_env(
    make_project: Callable[..., Project], cache: EnvCache
) -> None:
    projects: list[Project] = [make_project(n) for n in ("one", "two", "three")]
    spec = {"dependencies": ["alpha"]}
    for i, p in enumerate(projects):
        p.write("show.py", SHOW_PY)
        if i < 2:
            write_yaml(p, "python_env.yaml", spec)
            where = "python_env.yaml"
        else:  # a spec outside the project root
            (p.root.parent / "envs").mkdir()
            (p.root.parent / "envs" / "python_env.yaml").write_text(
                (projects[0].root / "python_env.yaml").read_text()
            )
            where = "../envs/python_env.yaml"
        name = f"s{i}"
        p.manifest({"python_env": where, "stages": {name: show_stage(name, "alpha", "beta")}})

    first = ok(projects[0].cli("repro"))
    assert builds_in(output(first)) == 1
    for p in projects[1:]:
        done = ok(p.cli("repro"))
        assert builds_in(output(done)) == 0, output(done)
    prefixes = {shown(p, f"s{i}")["prefix"] for i, p in enumerate(projects)}
    assert len(prefixes) == 1
    assert len(cache.store_dirs()) == 1


# -- 6. failures: exit 3, the installer's message, nothing left in the cache -------------------

FAILURES = {
    "missing-package": (
        "dependencies:\n  - no-such-package-xyz\n",
        ["no-such-package-xyz", "env 'default'"],
    ),
    "unknown-key": (
        'python: "3"\ndependencies:\n  - alpha\nbuild_dependencie:\n  - uv\n',
        ["python_env.yaml:4:", "build_dependencie"],
    ),
    "python-3.99": (
        'python: "3.99"\ndependencies:\n  - alpha\n',
        ["3.99", "found:", platform.python_version()],
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_broken_spec_fails_with_the_reason_and_leaves_no_env(
    project: Project, cache: EnvCache, case: str
) -> None:
    text, expected = FAILURES[case]
    project.write("show.py", SHOW_PY)
    project.write("python_env.yaml", text)
    project.manifest({"python_env": "python_env.yaml", "stages": {"a": show_stage("a")}})

    done = project.cli("repro")

    # A malformed spec is a usage error (2) naming its own line; a failed build is 3.
    assert done.returncode == (2 if case == "unknown-key" else 3), output(done)
    assert "Traceback" not in output(done)
    assert "error:" in done.stderr
    for part in expected:
        assert part in done.stderr, f"{part!r} not in:\n{done.stderr}"
    assert not project.exists("out/a.json")
    assert cache.published() == {}
    assert cache.store_dirs() == []
    assert project.executions() == []


def test_missing_spec_file_exits_3_naming_it(project: Project, cache: EnvCache) -> None:
    project.write("show.py", SHOW_PY)
    project.manifest({"python_env": "envs/nope.yaml", "stages": {"a": show_stage("a")}})
    done = project.cli("repro")
    assert done.returncode == 3, output(done)
    assert "nope.yaml" in done.stderr
    assert "Traceback" not in output(done)
    assert cache.published() == {}


# -- 7. built exactly once: -j 2 in one process, and two processes at once ---------------------


def test_two_stages_on_one_env_under_j2_build_it_once(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheels: Path
) -> None:
    links = copy_tree(wheels, tmp_path / "links")
    counter = tmp_path / "installs.txt"
    # The build takes >= 1 s, so both stages (started together under -j 2) want it at once.
    build_counting_sdist(links, tmp_path, "counted", counter, sleep=1.0)
    cache = isolate(monkeypatch, tmp_path, links)
    monkeypatch.setenv("UV_NO_CACHE", "1")  # uv builds the sdist on every install: a counter
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/shared.yaml", {"dependencies": ["counted", "alpha"]})
    project.manifest(
        {
            "environments": {"shared": {"python_env": "envs/shared.yaml"}},
            "stages": {
                "a": show_stage("a", "counted", env="shared"),
                "b": show_stage("b", "counted", env="shared"),
            },
        }
    )

    done = ok(project.cli("repro", "-j", "2"))

    assert counted(counter) == 1
    assert builds_in(output(done), "shared") == 1, output(done)
    assert shown(project, "a")["prefix"] == shown(project, "b")["prefix"]
    assert len(cache.store_dirs()) == 1
    assert sorted(project.executions()) == ["a", "b"]


def test_two_processes_sharing_a_spec_build_it_once(
    make_project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    wheels: Path,
) -> None:
    links = copy_tree(wheels, tmp_path / "links")
    counter = tmp_path / "installs.txt"
    build_counting_sdist(links, tmp_path, "counted", counter)
    cache = isolate(monkeypatch, tmp_path, links)
    monkeypatch.setenv("UV_NO_CACHE", "1")
    projects: list[Project] = [make_project(n) for n in ("one", "two")]
    for p in projects:
        p.write("show.py", SHOW_PY)
        write_yaml(p, "envs/shared.yaml", {"dependencies": ["counted"]})
        p.manifest(
            {
                "environments": {"shared": {"python_env": "envs/shared.yaml"}},
                "stages": {"a": show_stage("a", "counted", env="shared")},
            }
        )
    listed = json.loads(ok(projects[0].cli("env", "list", "--json")).stdout)
    hexdigest = listed[0]["digest"].rsplit(":", 1)[-1]

    # Hold the env's build lock (as a third builder would) until both processes wait on it,
    # so they are guaranteed to contend; then let them race.
    lock_file = cache.root / ".locks" / f"{hexdigest}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(str(lock_file))
    held.acquire()
    logs = [tmp_path / f"{p.root.parent.name}.log" for p in projects]
    procs = []
    try:
        for p, log in zip(projects, logs, strict=True):
            with open(log, "w") as sink:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "pipeline", "-C", str(p.root), "repro"],
                        cwd=p.root,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        env=cli_env(),
                    )
                )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = ["waiting for another process" in log.read_text() for log in logs]
            if all(waiting) or any(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.05)
    finally:
        held.release()
        codes = [proc.wait(timeout=60) for proc in procs]
    texts = [log.read_text() for log in logs]

    assert codes == [0, 0], texts
    assert all("waiting for another process" in t for t in texts), texts
    assert sum(builds_in(t, "shared") for t in texts) == 1, texts
    assert counted(counter) == 1
    assert len(cache.store_dirs()) == 1
    assert shown(projects[0], "a")["prefix"] == shown(projects[1], "a")["prefix"]


# -- 8. a changed requirement reruns exactly the stages using that env -------------------------


def test_changing_a_requirement_reruns_exactly_the_stages_using_that_env(
    project: Project,
) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/one.yaml", {"dependencies": ["alpha"]})
    project.write("envs/two.txt", "-r base.txt\n")
    project.write("envs/base.txt", "beta\n")
    project.manifest(
        {
            "environments": {
                "one": {"python_env": "envs/one.yaml"},
                "two": {"requirements": "envs/two.txt"},
            },
            "stages": {
                "a": show_stage("a", "alpha", env="one"),
                "b": show_stage("b", "beta", env="one"),
                "c": show_stage("c", "beta", env="two"),
                "d": show_stage("d", env="system"),
                "e": show_stage("e"),
            },
        }
    )
    project.repro()
    assert sorted(project.executions()) == ["a", "b", "c", "d", "e"]
    project.clear_executions()

    write_yaml(project, "envs/one.yaml", {"dependencies": ["alpha", "gamma"]})
    status = json.loads(ok(project.cli("status", "--json")).stdout)
    by_stage = {s["stage"]: s for s in status["stages"]}
    for name in ("a", "b"):
        assert by_stage[name]["action"] == "run"
        assert {"kind": "env changed", "text": "env one changed", "subject": "one"} in by_stage[
            name
        ]["reasons"]
    for name in ("c", "d", "e"):
        assert by_stage[name]["action"] != "run", by_stage[name]
        assert not any(r["kind"] == "env changed" for r in by_stage[name]["reasons"])
    text = ok(project.cli("status")).stdout
    assert text.count("env one changed") == 2
    assert "env two changed" not in text

    project.repro()
    assert sorted(project.executions()) == ["a", "b"]
    assert shown(project, "b")["prefix"] != shown(project, "c")["prefix"]
    project.clear_executions()

    # A file the spec includes (`-r base.txt`) is part of the env too.
    project.write("envs/base.txt", "beta\ngamma\n")
    plan = project.plan()
    assert reasons(plan, "c") == ["env two changed"]
    for name in ("a", "b", "d", "e"):
        assert reasons(plan, name) == [], name
    project.repro()
    assert project.executions() == ["c"]


# -- 9. --env-manager local ---------------------------------------------------------------------


def test_env_manager_local_uses_the_current_interpreter_and_builds_nothing(
    project: Project, cache: EnvCache
) -> None:
    venv_project(project, deps=("alpha",), stages={"a": show_stage("a")})

    done = ok(project.cli("repro", "--env-manager", "local"))

    assert builds_in(output(done)) == 0
    info = shown(project, "a")
    assert not cache.contains(info["prefix"])
    assert info["environ"]["VIRTUAL_ENV"] is None
    assert cache.published() == {}
    assert cache.store_dirs() == []
    assert "env" not in project.lock()["stages"]["a"]
    local = json.loads(ok(project.cli("status", "--env-manager", "local", "--json")).stdout)
    assert local["up_to_date"] is True
    declared = json.loads(ok(project.cli("status", "--json")).stdout)
    assert declared["stages"][0]["reasons"][0]["kind"] == "env changed"
    assert cache.published() == {}  # status never builds


# -- 12. the pip installer ----------------------------------------------------------------------


@pytest.mark.slow
def test_pip_installer_builds_a_working_venv_offline(project: Project, cache: EnvCache) -> None:
    venv_project(project, deps=("alpha",), stages={"a": show_stage("a", "alpha", "beta")})
    project.write(".pipeline/config.yaml", "env:\n  installer: pip\n")

    ok(project.cli("repro"))

    info = shown(project, "a")
    assert info["modules"] == {"alpha": "1.0", "beta": "1.0"}
    assert cache.contains(info["prefix"])
    meta = cache.meta(project.lock()["stages"]["a"]["env"])
    assert meta["builder"] == "virtualenv"
    assert ["alpha", "1.0"] in meta["packages"]
