"""A full, read-only or broken disk is the user's to fix: one line, exit 4, nothing damaged.

Real subprocesses of the CLI on a small tmpfs the test mounts (as root; skipped otherwise). A
command that overflows it says which path and how much space it needed; the lock, the cache
and the run store stay consistent, and after the tmpfs grows the next command recovers and
`fsck` is clean. The same for a read-only `.pipeline`, a deleted cache and a file standing
where the cache's objects go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.errors import DiskError
from pipeline.runs.runstore import RunStore
from tests.cli.support import _error, _json, _ok
from tests.conftest import Project
from tests.runs.support import _row

KB = 1000
BIG = 400 * KB  # bytes of each data file and output: larger than the room a test leaves
_STAGE = {"cmd": f"head -c {BIG} /dev/urandom > model.bin", "outs": ["model.bin"]}


@dataclass(frozen=True)
class Tmpfs:
    """A tmpfs mounted at `root` for one test; its size changes with `remount`."""

    root: Path

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.root)], check=True)

    def leave_free(self, free: int) -> None:
        """Shrink the filesystem to what it holds now plus `free` bytes."""
        st = os.statvfs(self.root)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        self.remount(f"size={(used + free) // 1024 + 1}k")

    def grow(self) -> None:
        self.remount("size=50m")


def _mount(where: Path, size: str) -> Tmpfs:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    return Tmpfs(where)


def _unmount(fs: Tmpfs) -> None:
    if subprocess.run(["umount", str(fs.root)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(fs.root)], check=False)  # a process still in it


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Project, Tmpfs]]:
    """A project on a 2 MB tmpfs, with a stage writing `BIG` bytes and its run store made."""
    fs = _mount(tmp_path / "small", "2m")
    try:
        root = fs.root / "proj"
        root.mkdir()
        project = Project(root)
        project.git("init", "-q")
        project.manifest({"name": "faults", "stages": {"train": _STAGE}})
        RunStore.for_project(root / ".pipeline").close()  # it exists before the disk fills
        yield project, fs
    finally:
        _unmount(fs)


def _full(done: subprocess.CompletedProcess[str], path: str) -> str:
    """The one error line of a command that found the disk full, after checking it."""
    lines = _error(done, 4)
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    assert "internal error" not in done.stderr
    assert errors[0].startswith("error: no space left on device"), lines
    assert path in errors[0], lines
    assert lines[lines.index(errors[0]) + 1] == (
        "hint: free some space on that disk, then run the command again"
    )
    return errors[0]


def _consistent(project: Project) -> None:
    """The cache verifies, its temp directory is empty, and status reads the lock."""
    done = _ok(project.cli("fsck"))
    assert "every cached object matches its hash" in done.stdout
    tmp = project.root / ".pipeline" / "cache" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []
    _ok(project.cli("status"))


@pytest.mark.slow
def test_add_on_a_full_disk_names_the_file_and_recovers(small: tuple[Project, Tmpfs]) -> None:
    project, fs = small
    project.write("data.bin", os.urandom(BIG))
    fs.leave_free(100 * KB)

    line = _full(project.cli("add", "data.bin"), ".pipeline/cache/")
    assert "(copying data.bin: 400.0 KB needed)" in line
    assert not project.exists("pipeline.lock")  # nothing recorded of a file not stored
    _consistent(project)

    fs.grow()
    _ok(project.cli("add", "data.bin"))
    assert project.lock()["data"]["data.bin"]["size"] == BIG
    _consistent(project)


@pytest.mark.slow
def test_repro_on_a_full_disk_commits_nothing_and_the_next_repro_recovers(
    small: tuple[Project, Tmpfs],
) -> None:
    project, fs = small
    fs.leave_free(BIG + 200 * KB)  # room for the stage's output, not for its copy in the cache

    line = _full(project.cli("repro"), ".pipeline/cache/")
    assert "(copying model.bin: 400.0 KB needed)" in line
    assert not project.exists("pipeline.lock")  # the stage was not committed
    _consistent(project)

    fs.grow()
    _ok(project.cli("repro"))
    assert project.lock()["stages"]["train"]["outs"][0]["size"] == BIG
    _consistent(project)
    assert "Everything is up to date" in _ok(project.cli("status")).stdout
    statuses = [r["status"] for r in _json(project.cli("runs", "--json"))]
    assert statuses == ["succeeded", "failed"]  # both recorded: the run store held up


@pytest.mark.slow
def test_checkout_on_a_full_disk_leaves_no_half_file_and_recovers(
    small: tuple[Project, Tmpfs],
) -> None:
    project, fs = small
    _ok(project.cli("repro"))
    (project.root / "model.bin").unlink()
    fs.leave_free(100 * KB)

    line = _full(project.cli("checkout"), "model.bin")
    assert "400.0 KB needed" in line
    assert not project.exists("model.bin")  # no truncated copy that would read as modified
    _consistent(project)

    fs.grow()
    _ok(project.cli("checkout"))
    assert (project.root / "model.bin").stat().st_size == BIG
    assert "Everything is up to date" in _ok(project.cli("status")).stdout
    _consistent(project)


@pytest.mark.slow
def test_a_stage_that_fills_the_disk_is_one_line(
    small: tuple[Project, Tmpfs],
) -> None:
    project, fs = small
    project.manifest({"name": "faults", "stages": {"train": {**_STAGE, "outs": []}}})
    fs.leave_free(BIG // 2)  # the stage itself runs out of space, then so does its log

    _full(project.cli("repro"), ".pipeline/")  # the log or its copy in the cache
    fs.grow()
    _ok(project.cli("repro"))
    _consistent(project)


@pytest.mark.slow
def test_run_on_a_full_disk_is_one_line(small: tuple[Project, Tmpfs]) -> None:
    project, fs = small
    fs.leave_free(0)

    line = _full(project.cli("run", "--name", "nospace"), "")
    assert ".pipeline/" in line or f"writing below {project.root}" in line
    fs.grow()
    _ok(project.cli("run", "--name", "roomy"))
    assert [r["name"] for r in _json(project.cli("runs", "--json"))] == ["roomy"]
    _consistent(project)


def test_the_run_store_on_a_full_disk_is_one_error(small: tuple[Project, Tmpfs]) -> None:
    project, fs = small
    store = RunStore.for_project(project.root / ".pipeline")
    try:
        fs.leave_free(0)
        with pytest.raises(DiskError, match=r"^(no space left on device|I/O error): .*runs\.db"):
            store.start(_row("big", 1.0), {"blob": "x" * 200_000})
        fs.grow()
        store.start(_row("after", 2.0), {})
        assert [r.id for r in store.runs()] == ["after"]
    finally:
        store.close()


# -- a read-only state directory, a deleted cache, a file where the objects go ----------------


@pytest.fixture
def on_disk(make_project: object) -> Project:
    project: Project = make_project("disk")  # type: ignore[operator]
    project.manifest({"name": "faults", "stages": {"train": _STAGE}})
    project.write("data.bin", os.urandom(BIG))
    _ok(project.cli("add", "data.bin"))
    _ok(project.cli("repro"))
    return project


@pytest.fixture
def read_only_state(on_disk: Project, tmp_path: Path) -> Iterator[tuple[Project, Tmpfs]]:
    """`on_disk` with its `.pipeline` on a tmpfs of its own (same contents), mounted rw."""
    state = on_disk.root / ".pipeline"
    kept = tmp_path / "state-copy"
    shutil.copytree(state, kept, symlinks=True)
    fs = _mount(state, "50m")
    try:
        shutil.copytree(kept, state, symlinks=True, dirs_exist_ok=True)
        yield on_disk, fs
    finally:
        _unmount(fs)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [["repro", "-f"], ["add", "data.bin"], ["checkout"], ["gc", "--yes"], ["runs"]]
)
def test_a_read_only_state_directory_is_one_line(
    read_only_state: tuple[Project, Tmpfs], command: list[str]
) -> None:
    project, fs = read_only_state
    (project.root / "model.bin").unlink()  # so checkout has something to write
    project.write("data.bin", os.urandom(BIG))  # and add something to store
    fs.remount("ro")

    lines = _error(project.cli(*command), 4)
    assert "internal error" not in "\n".join(lines)
    assert lines[0].startswith("error: read-only file system: .pipeline/"), lines
    assert lines[1] == "hint: make it writable, then run the command again"
    assert _ok(project.cli("status")).returncode == 0  # reading needs no writable state

    fs.remount("rw")
    _ok(project.cli(*command))
    _consistent(project)


def test_a_deleted_cache_is_recreated(on_disk: Project) -> None:
    shutil.rmtree(on_disk.root / ".pipeline" / "cache")
    _ok(on_disk.cli("add", "data.bin"))  # stores the file again
    _ok(on_disk.cli("repro", "-f"))
    (on_disk.root / "data.bin").unlink()
    _ok(on_disk.cli("checkout"))
    assert (on_disk.root / "data.bin").stat().st_size == BIG
    _consistent(on_disk)


@pytest.mark.parametrize(
    "command", [["status"], ["repro"], ["add", "data.bin"], ["checkout"], ["fsck"], ["gc"]]
)
def test_a_file_where_the_objects_go_is_one_line(on_disk: Project, command: list[str]) -> None:
    objects = on_disk.root / ".pipeline" / "cache" / "objects"
    shutil.rmtree(objects)
    objects.write_text("not a directory\n")

    lines = _error(on_disk.cli(*command), 4)
    assert lines == [
        "error: .pipeline/cache/objects is a file where a directory is expected",
        "hint: move .pipeline/cache/objects aside: pipeline recreates the directories it needs",
    ]
    objects.unlink()
    _ok(on_disk.cli("add", "data.bin"))
    _ok(on_disk.cli("repro", "-f"))
    _consistent(on_disk)
