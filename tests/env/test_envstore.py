"""The shared env cache: one build per digest, atomic publish, nothing left by failures, and one
env for identical specs wherever they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.env.envstore import META, EnvStore
from tests.conftest import Project
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    builds_in,
    ok,
    output,
    show_stage,
    shown,
    write_yaml,
)

DIGEST = "xxh3_128:0123456789abcdef0123456789abcdef"


# Hang guards only: every wait below ends as soon as what it waits for has happened.
WAIT = 30.0


def _builder(calls: list[Path]):  # type: ignore[no-untyped-def]
    def build(prefix: Path) -> dict[str, Any]:
        calls.append(prefix)
        (prefix / "bin").mkdir()
        return {"name": "e", "kind": "python_env", "packages": [["six", "1.0"]]}

    return build


def test_concurrent_threads_build_once(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "envs")
    calls: list[Path] = []
    results = []
    errors: list[BaseException] = []
    threads_n = 4
    # Threads that looked the env up on their way into `ensure` and did not find it: each of
    # them must go through the build lock. The build holds until all have, so they contend.
    missed: set[int] = set()
    everyone_missed = threading.Event()
    real_lookup = store.lookup

    def lookup(digest: str) -> Any:
        found = real_lookup(digest)
        if found is None:
            missed.add(threading.get_ident())
            if len(missed) == threads_n:
                everyone_missed.set()
        return found

    store.lookup = lookup  # type: ignore[method-assign]
    contended: list[bool] = []

    def build(prefix: Path) -> dict[str, Any]:
        contended.append(everyone_missed.wait(WAIT))
        return _builder(calls)(prefix)

    def worker() -> None:
        try:
            results.append(store.ensure(DIGEST, build))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=2 * WAIT)
    assert not any(t.is_alive() for t in threads), "a worker hangs"
    assert errors == []
    assert contended, "nothing was built"
    assert all(contended), "the threads never wanted the env at the same time"
    assert len(calls) == 1, calls
    assert sorted(fresh for _, fresh in results) == [False, False, False, True]
    assert {built.prefix for built, _ in results} == {calls[0]}
    assert (tmp_path / "envs" / DIGEST.split(":")[1]).is_symlink()


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    waiting = tmp_path / "waiting"
    waiting.mkdir()
    others = 2  # processes besides the builder
    # The builder holds until every other process waits for its build lock (`on_wait` leaves
    # a marker file), so they are known to contend; a guard ends the wait if they never do.
    script = f"""
import os, sys, time
from pathlib import Path
from pipeline.env.envstore import EnvStore
waiting = Path({str(waiting)!r})
def build(prefix):
    with open({str(tmp_path / "builds.txt")!r}, "a") as fh:
        fh.write(str(prefix) + "\\n")
    deadline = time.monotonic() + {WAIT!r}
    while len(list(waiting.iterdir())) < {others} and time.monotonic() < deadline:
        time.sleep(0.01)
    return {{"name": "e", "waiters_seen": len(list(waiting.iterdir()))}}
def on_wait():
    (waiting / str(os.getpid())).touch()
built, fresh = EnvStore(Path(sys.argv[1])).ensure({DIGEST!r}, build, on_wait)
print(os.getpid(), built.prefix, fresh, built.meta["waiters_seen"])
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "envs")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(others + 1)
    ]
    done = [p.communicate(timeout=4 * WAIT) for p in procs]
    assert [p.returncode for p in procs] == [0] * (others + 1), done
    outputs = [out.split() for out, _ in done]
    assert len((tmp_path / "builds.txt").read_text().splitlines()) == 1
    assert len({prefix for _, prefix, _, _ in outputs}) == 1
    assert {seen for _, _, _, seen in outputs} == {str(others)}, "no process waited in time"
    assert sorted(fresh for _, _, fresh, _ in outputs) == ["False", "False", "True"]
    waiters = {pid for pid, _, fresh, _ in outputs if fresh == "False"}
    assert {p.name for p in waiting.iterdir()} == waiters  # exactly the others waited


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "envs")

    def broken(prefix: Path) -> dict[str, Any]:
        (prefix / "half").write_text("x")
        raise RuntimeError("installer died")

    with pytest.raises(RuntimeError):
        store.ensure(DIGEST, broken)
    assert store.lookup(DIGEST) is None
    assert list((tmp_path / "envs" / ".store").iterdir()) == []
    assert not (tmp_path / "envs" / DIGEST.split(":")[1]).exists()


def test_a_crashed_build_is_cleaned_by_the_next(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "envs")
    leftover = tmp_path / "envs" / ".store" / f"{DIGEST.split(':')[1]}.dead"
    leftover.mkdir(parents=True)
    assert store.orphans() == [leftover]
    built, fresh = store.ensure(DIGEST, _builder([]))
    assert fresh and not leftover.exists() and store.orphans() == []
    meta = json.loads((built.prefix / META).read_text())
    assert meta["digest"] == DIGEST and meta["packages"] == [["six", "1.0"]]


def test_remove_and_orphan_removal(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "envs")
    built, _ = store.ensure(DIGEST, _builder([]))
    assert store.all()[0].digest == DIGEST
    store.remove(DIGEST)
    assert store.lookup(DIGEST) is None and not built.prefix.exists() and store.all() == []
    orphan = tmp_path / "envs" / ".store" / "abc.123"
    orphan.mkdir()
    assert store.remove_orphan(orphan) and not orphan.exists()


# -- corrupt metadata --------------------------------------------------------------------------


def _fake_env(root: Path, hexdigest: str, meta_text: str) -> Path:
    prefix = root / ".store" / f"{hexdigest}.cafe0001"
    prefix.mkdir(parents=True)
    (prefix / META).write_text(meta_text)
    (root / hexdigest).symlink_to(os.path.relpath(prefix, root))
    return prefix


def test_metadata_that_is_not_an_object_counts_as_missing(cache: EnvCache) -> None:
    _fake_env(cache.root, "ab" * 16, "null\n")
    assert EnvStore(cache.root).all() == []


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
