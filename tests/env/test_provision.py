"""Making sure a stage's env exists and activating it: built at most once (two stages under
`-j 2`, two processes, two threads), and the outer environment never leaks into a stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from pipeline import api
from pipeline.env.envstore import BuiltEnv, EnvStore
from pipeline.execute.options import ReproOptions
from tests.conftest import Project, cli_env
from tests.env.support import (
    SHOW_PY,
    build_counting_sdist,
    builds_in,
    copy_tree,
    counted,
    isolate,
    ok,
    repro_ok,
    show_stage,
    shown,
    write_yaml,
)

# Every test here gets its own env cache and offline pip settings (conftest's `cache`).
pytestmark = pytest.mark.usefixtures("cache")

# Hang guards only: every wait below ends as soon as what it waits for has happened.
WAIT = 30.0


# -- activation: nothing of the outer environment leaks in -------------------------------------


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


# -- two envs built at once in one process -----------------------------------------------------


RACE = """
import json, sys, sysconfig, threading
from pathlib import Path
from pipeline.load.environments import EnvDecl
from pipeline.env import uvbin
from pipeline.env.provision import Provisioner
from pipeline.env.resolve import resolve_env

root, wait = Path(sys.argv[1]), float(sys.argv[2])
envs = [resolve_env(root, EnvDecl(n, "requirements", f"{n}.txt")) for n in ("one", "two")]
provisioner = Provisioner()  # what the executor holds; `-j 2` workers call ensure()

# CPython 3.10/3.11 fill sysconfig's variables on first use without a lock. The first thread
# to do so pauses half-way until the other thread has come to use sysconfig too: either it is
# held at the lock pipeline takes around its sysconfig use (the race is prevented), or it has
# read the half-filled variables (a torn read: the race happened).
state = threading.Condition()
filling = set()   # threads inside sysconfig's first-use initialisation
came = set()      # threads that came to pipeline's lock, or read sysconfig during a fill
torn = []         # reads that returned while another thread was filling
paused = []       # per initialisation: did the other thread come before it went on?
original_init, original_vars = sysconfig._init_posix, sysconfig.get_config_vars

def others(group):
    return group - {threading.get_ident()}

def init(config):
    with state:
        filling.add(threading.get_ident())
        paused.append(bool(state.wait_for(lambda: others(came), timeout=wait)))
    try:
        original_init(config)
    finally:
        with state:
            filling.discard(threading.get_ident())

def config_vars(*args):
    found = original_vars(*args)
    with state:
        if others(filling):
            torn.append(threading.current_thread().name)
            came.add(threading.get_ident())
            state.notify_all()
    return found

class Gate:  # pipeline's lock around its first use of sysconfig (through uv's find_uv_bin)
    def __init__(self, lock):
        self.lock = lock
    def __enter__(self):  # whoever passes it fills sysconfig, unless a thread is filling it
        with state:
            came.add(threading.get_ident())
            state.notify_all()
        return self.lock.__enter__()
    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

sysconfig._init_posix = init
sysconfig.get_config_vars = config_vars
uvbin._UV_LOCK = Gate(uvbin._UV_LOCK)
uvbin.uv_binary.cache_clear()
sysconfig._CONFIG_VARS = None  # as in a fresh `pipeline repro`: nothing has read it yet
errors = []

def work(env):
    try:
        provisioner.ensure(env)
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(env,), name=env.name) for env in envs]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"errors": errors, "paused": paused, "torn": torn}))
"""


def test_two_envs_building_in_parallel_threads_on_a_cold_sysconfig(project: Project) -> None:
    import sysconfig

    if hasattr(sysconfig, "_CONFIG_VARS_LOCK") or not hasattr(sysconfig, "_init_posix"):
        pytest.skip("this Python's sysconfig initialises under a lock")
    project.write("one.txt", "alpha\n")
    project.write("two.txt", "gamma\n")
    done = subprocess.run(
        [sys.executable, "-c", RACE, str(project.root), str(WAIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=4 * WAIT,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # sysconfig was filled once, and the other thread came to it meanwhile: the race was on.
    assert seen["paused"] == [True], seen
    assert seen["torn"] == [], seen  # and no thread read half-filled variables
    assert seen["errors"] == [], seen


# -- 7. built exactly once: -j 2 in one process, and two processes at once ---------------------


def test_two_stages_on_one_env_under_j2_build_it_once(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheels: Path
) -> None:
    links = copy_tree(wheels, tmp_path / "links")
    counter = tmp_path / "installs.txt"
    build_counting_sdist(links, tmp_path, "counted", counter)
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
    # The build holds until both stages have asked the store for the env and not found it
    # (each must then wait for the build lock), so the two are known to want it at once.
    inside = threading.local()
    missed: set[int] = set()
    both_missed = threading.Event()
    contended: list[bool] = []
    real_ensure, real_lookup = EnvStore.ensure, EnvStore.lookup

    def lookup(self: EnvStore, digest: str) -> BuiltEnv | None:
        found = real_lookup(self, digest)
        if found is None and getattr(inside, "ensuring", False):
            missed.add(threading.get_ident())
            if len(missed) == 2:
                both_missed.set()
        return found

    def ensure(
        self: EnvStore, digest: str, build: Callable[[Path], dict[str, Any]], *args: Any
    ) -> tuple[BuiltEnv, bool]:
        def held_build(prefix: Path) -> dict[str, Any]:
            contended.append(both_missed.wait(WAIT))
            return build(prefix)

        inside.ensuring = True
        try:
            return real_ensure(self, digest, held_build, *args)
        finally:
            inside.ensuring = False

    monkeypatch.setattr(EnvStore, "lookup", lookup)
    monkeypatch.setattr(EnvStore, "ensure", ensure)

    result = api.repro(ReproOptions(root=project.root, jobs=2))

    assert result.failed is None, result.failed.error if result.failed else None
    assert contended, "nothing was built"
    assert all(contended), "the two stages never wanted the env at the same time"
    assert len(contended) == 1, "the env was built twice"
    assert counted(counter) == 1
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
