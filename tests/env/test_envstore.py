"""The shared env cache: one build per digest, atomic publish, nothing left by failures, and one
env for identical specs wherever they are.
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


def _builder(calls: list[Path], pause: float = 0.0):  # type: ignore[no-untyped-def]
    def build(prefix: Path) -> dict[str, Any]:
        calls.append(prefix)
        time.sleep(pause)
        (prefix / "bin").mkdir()
        return {"name": "e", "kind": "python_env", "packages": [["six", "1.0"]]}

    return build


def test_concurrent_threads_build_once(tmp_path: Path) -> None:
    store = EnvStore(tmp_path / "envs")
    calls: list[Path] = []
    results = []

    def worker() -> None:
        results.append(store.ensure(DIGEST, _builder(calls, pause=0.2)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(fresh for _, fresh in results) == [False, False, False, True]
    assert {built.prefix for built, _ in results} == {calls[0]}
    assert (tmp_path / "envs" / DIGEST.split(":")[1]).is_symlink()


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    script = f"""
import sys, time
from pathlib import Path
from pipeline.env.envstore import EnvStore
def build(prefix):
    with open({str(tmp_path / "builds.txt")!r}, "a") as fh:
        fh.write(str(prefix) + "\\n")
    time.sleep(0.5)
    return {{"name": "e"}}
built, fresh = EnvStore(Path(sys.argv[1])).ensure({DIGEST!r}, build)
print(built.prefix, fresh)
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "envs")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate()[0].split() for p in procs]
    assert len((tmp_path / "builds.txt").read_text().splitlines()) == 1
    assert len({prefix for prefix, _ in outputs}) == 1
    assert sorted(fresh for _, fresh in outputs) == ["False", "False", "True"]


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
