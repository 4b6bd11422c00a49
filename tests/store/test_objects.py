"""The content-addressed object store: outputs and logs stored read-only, fsck, executables and
symlinks as outputs, and objects that survive killed writers.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

from pipeline.api import ReproOptions, fsck, repro
from pipeline.core.hashing import file_digest
from pipeline.execute.scheduler import Outcome
from pipeline.store.objects import ObjectStore
from tests.conftest import Project, outcomes, ran, record
from tests.store.support import _one_stage, corrupt, lock_hash, store_of


def test_outputs_and_logs_go_into_the_cache(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    store = store_of(p)
    digest = lock_hash(p, "train", "model.txt")
    obj = store.path(digest)
    assert obj.read_text() == "lr=0.1\n"
    assert (obj.stat().st_mode & 0o777) == 0o444
    runs = list((p.root / ".pipeline" / "cache" / "runs").glob("*/*.json"))
    assert len(runs) == 2
    assert all(store.has(yaml.safe_load(r.read_text())["log"]) for r in runs)


def test_fsck_finds_and_moves_a_corrupt_object(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    digest = lock_hash(p, "train", "model.txt")
    store = store_of(p)
    (p.root / "model.txt").unlink()  # the workspace file shares the object's inode
    corrupt(store.path(digest))
    assert fsck(p.root) == [digest]
    assert not store.has(digest)
    assert (p.root / ".pipeline/cache/corrupt" / digest.partition(":")[2]).exists()
    done = p.cli("fsck")
    assert done.returncode == 0, done.stderr  # moved aside: what is left is intact


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pipeline.store import objects
    from pipeline.store.objects import ObjectStore
    from pipeline.core.hashing import file_digest

    src, root, ready = sys.argv[1:4]
    def slow_copy(a, b, mode):
        with open(a, "rb") as fin, open(b, "xb") as fout:
            fout.write(fin.read(1 << 20))
            fout.flush()
            Path(ready).touch()
            time.sleep(60)
            fout.write(fin.read())
    objects.copy_file = slow_copy
    ObjectStore(Path(root)).put_file(src, file_digest(src), ["copy"])
""")


def test_a_writer_killed_mid_object_leaves_no_partial_object(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 << 20))
    root, ready = tmp_path / "cache", tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(src), str(root), str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ObjectStore(root)
    digest = file_digest(src)
    assert list(store.all_objects()) == []
    assert not store.has(digest)
    store.put_file(str(src), digest, ["copy"])  # the next writer succeeds
    assert [d for d, ok in store.fsck() if not ok] == []
    assert file_digest(store.path(digest)) == digest


# -- outputs that are executables or symlinks --------------------------------------------------


def test_executable_file_output_stays_executable(project: Project) -> None:
    project.manifest(
        {
            "stages": {
                "build": {
                    "cmd": "printf '#!/bin/sh\\necho hi\\n' > tool.sh && chmod +x tool.sh",
                    "outs": ["tool.sh"],
                },
                "use": {
                    "cmd": "./tool.sh > used.txt && " + record("use"),
                    "deps": ["tool.sh"],
                    "outs": ["used.txt"],
                },
            }
        }
    )
    result = project.repro()
    assert os.stat(project.root / "tool.sh").st_mode & stat.S_IXUSR
    assert outcomes(result) == {"build": Outcome.RAN, "use": Outcome.RAN}


def test_relative_symlink_output_can_be_stored(project: Project) -> None:
    project.write("raw.txt", "v1\n")
    project.manifest(_one_stage("ln -s raw.txt view.txt", ["raw.txt"], ["view.txt"]))
    assert ran(project.repro()) == ["s"]


def test_absolute_symlink_output_stores_a_regular_object(project: Project) -> None:
    raw = project.write("raw.txt", "v1\n")
    project.manifest(_one_stage(f"ln -s {raw} view.txt", ["raw.txt"], ["view.txt"]))
    assert ran(project.repro()) == ["s"]
    assert os.stat(raw).st_mode & stat.S_IWUSR, "the dependency was made read-only"
    obj = store_of(project).path(lock_hash(project, "s", "view.txt"))
    assert obj.exists()
    assert not obj.is_symlink()
    assert obj.read_text() == "v1\n"
