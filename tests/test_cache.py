"""The content-addressed cache: run-cache restores, checkout of old commits, add, gc, fsck,
link strategies, and objects that survive crashes and in-place writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.api import ReproOptions, checkout, fsck, gc, plan, repro
from pipeline.core.hashing import file_digest
from pipeline.execute.scheduler import Outcome
from pipeline.store.links import LinkUnavailable, reflink
from pipeline.store.objects import ObjectStore
from tests.conftest import Project, outcomes, ran, record

PARAMS_STAGE = {
    "stages": {
        "train": {
            "cmd": f"{record('train')}; echo lr=${{lr}} > model.txt",
            "outs": ["model.txt"],
        },
        "score": {
            "cmd": f"{record('score')}; cat model.txt | wc -c > score.txt",
            "deps": ["model.txt"],
            "metrics": [{"score.txt": {"cache": False}}],
        },
    }
}


@pytest.fixture
def p(make_project: Callable[..., Project]) -> Project:
    project = make_project("cache")
    project.params({"lr": 0.1})
    project.manifest(PARAMS_STAGE)
    return project


def store_of(project: Project) -> ObjectStore:
    return ObjectStore(project.root / ".pipeline" / "cache")


def lock_hash(project: Project, stage: str, path: str) -> str:
    entry = project.lock()["stages"][stage]
    return next(o["hash"] for o in entry["outs"] if o["path"] == path)


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


def test_param_round_trip_reruns_nothing(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    p.params({"lr": 0.01})
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    p.params({"lr": 0.1})
    assert plan(ReproOptions(root=p.root)).decisions["train"].action.value == "restore"
    result = repro(ReproOptions(root=p.root))
    assert outcomes(result) == {"train": Outcome.RESTORED, "score": Outcome.RESTORED}
    assert p.executions() == []
    assert p.read("model.txt") == "lr=0.1\n"


def test_no_run_cache_runs_again(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    (p.root / "model.txt").unlink()
    p.clear_executions()
    result = repro(ReproOptions(root=p.root, run_cache=False))
    assert ran(result) == ["train"]
    assert p.executions() == ["train"]


def test_git_checkout_of_an_old_commit_then_checkout_restores_its_outputs(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    p.commit(message="lr 0.1")
    first = {name: p.read(name) for name in ("model.txt", "score.txt")}
    p.params({"lr": 0.123456})
    repro(ReproOptions(root=p.root))
    p.commit(message="lr 0.123456")
    assert p.read("model.txt") == "lr=0.123456\n"
    p.git("checkout", "-q", "HEAD~1")
    p.clear_executions()
    report = checkout(p.root)
    assert sorted(report.restored) == ["model.txt"]  # score.txt is a metric kept in git
    assert {name: p.read(name) for name in ("model.txt", "score.txt")} == first
    assert plan(ReproOptions(root=p.root)).stale == []
    assert p.executions() == []


def test_outputs_are_ignored_by_git_and_metrics_are_not(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    assert "/model.txt" in p.read(".gitignore").splitlines()
    assert "/score.txt" not in p.read(".gitignore")
    assert "model.txt" not in p.git("status", "--porcelain")


def corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    path.write_text("garbage\n")


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


def test_restore_catches_a_corrupt_object_and_runs_the_stage(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    digest = lock_hash(p, "train", "model.txt")
    (p.root / "model.txt").unlink()
    corrupt(store_of(p).path(digest))
    p.clear_executions()
    result = repro(ReproOptions(root=p.root))
    assert outcomes(result)["train"] is Outcome.RAN
    assert p.executions() == ["train"]
    assert p.read("model.txt") == "lr=0.1\n"
    assert file_digest(store_of(p).path(digest)) == digest  # stored again, intact


def test_checkout_reports_corrupt_and_missing_objects(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    digest = lock_hash(p, "train", "model.txt")
    (p.root / "model.txt").unlink()
    corrupt(store_of(p).path(digest))
    done = p.cli("checkout")
    assert done.returncode == 4
    assert "corrupt in the cache (moved aside): model.txt" in done.stdout
    again = p.cli("checkout")
    assert again.returncode == 4
    assert "missing from the cache: model.txt" in again.stdout
    assert not p.exists("model.txt")


def test_gc_keeps_what_any_commit_needs_and_frees_the_rest(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    p.commit(message="v1")
    v1 = lock_hash(p, "train", "model.txt")
    p.params({"lr": 0.2})
    repro(ReproOptions(root=p.root))
    v2 = lock_hash(p, "train", "model.txt")  # an experiment never committed
    p.params({"lr": 0.3})
    repro(ReproOptions(root=p.root))
    p.commit(message="v3")
    v3 = lock_hash(p, "train", "model.txt")
    store = store_of(p)
    dry = gc(p.root, dry=True)
    assert v2 in dry.removed and store.has(v2)
    report = gc(p.root)
    assert v2 in report.removed
    assert (store.has(v1), store.has(v2), store.has(v3)) == (True, False, True)
    assert report.runs_removed >= 1
    workspace_only = gc(p.root, "workspace")
    assert v1 in workspace_only.removed and store.has(v3)


def test_add_tracks_raw_data(p: Project) -> None:
    for i in range(3):
        p.write(f"data/raw/{i}.csv", f"row {i}\n")
    done = p.cli("add", "data/raw")
    assert done.returncode == 0, done.stderr
    assert "added: data/raw (3 files" in done.stdout
    data = p.lock()["data"]["data/raw"]
    assert (data["nfiles"], data["isdir"]) == (3, True)
    assert "/data/raw" in p.read(".gitignore").splitlines()
    assert (p.root / "data/raw/1.csv").stat().st_mode & 0o222 == 0  # protected read-only
    (p.root / "data/raw/1.csv").unlink()  # replaced, as editors and tools do
    p.write("data/raw/1.csv", "changed\n")
    status = p.cli("status").stdout
    assert "tracked data data/raw modified" in status
    report = checkout(p.root, ("data/raw",))
    assert report.restored == ["data/raw"]
    assert p.read("data/raw/1.csv") == "row 1\n"
    assert "tracked" not in p.cli("status").stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["model.txt"], 2, "is an output of stage 'train'"),
        (["nope.csv"], 4, "nope.csv does not exist"),
        (["../outside.txt"], 2, "is outside the project"),
    ],
)
def test_add_errors(p: Project, args: list[str], code: int, message: str) -> None:
    repro(ReproOptions(root=p.root))
    done = p.cli("add", *args)
    assert done.returncode == code
    assert message in done.stderr


STRATEGIES = ["hardlink", "symlink", "copy", "reflink"]


def reflink_works(tmp: Path) -> bool:
    src = tmp / "src"
    src.write_text("x")
    try:
        reflink(str(src), str(tmp / "dst"))
    except LinkUnavailable:
        return False
    return True


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_link_strategy_round_trips(p: Project, strategy: str, tmp_path: Path) -> None:
    if strategy == "reflink" and not reflink_works(tmp_path):
        pytest.skip("this filesystem cannot clone files (reflink); ext4 cannot, btrfs/xfs can")
    p.write(".pipeline/config.yaml", f"cache:\n  type: {strategy}\n")
    p.manifest(
        {
            "stages": {
                "gen": {
                    "cmd": "mkdir -p out && echo a > out/a.txt && printf 'run' > out/tool"
                    " && chmod +x out/tool && echo m > model.bin",
                    "outs": ["out", "model.bin"],
                }
            }
        }
    )
    repro(ReproOptions(root=p.root))
    before = {name: p.read(name) for name in ("out/a.txt", "model.bin")}
    for name in ("out", "model.bin"):
        subprocess.run(["rm", "-rf", str(p.root / name)], check=True)
    report = checkout(p.root)
    assert sorted(report.restored) == ["model.bin", "out"]
    assert {name: p.read(name) for name in ("out/a.txt", "model.bin")} == before
    assert os.access(p.root / "out/tool", os.X_OK)  # executables keep their bit
    model = p.root / "model.bin"
    obj = store_of(p).path(lock_hash(p, "gen", "model.bin"))
    if strategy == "hardlink":
        assert model.stat().st_ino == obj.stat().st_ino
    elif strategy == "symlink":
        assert model.is_symlink() and model.resolve() == obj.resolve()
    else:
        assert model.stat().st_ino != obj.stat().st_ino
    assert plan(ReproOptions(root=p.root)).stale == []


def test_rewriting_a_hardlinked_output_never_changes_the_cache(p: Project) -> None:
    p.write(".pipeline/config.yaml", "cache:\n  type: hardlink\n")
    p.manifest(
        {
            "stages": {
                "log": {
                    "cmd": "echo line >> log.txt",
                    "outs": [{"log.txt": {"persist": True}}],
                    "always_changed": True,
                },
                "model": {"cmd": "echo ${lr} > model.txt", "outs": ["model.txt"]},
            }
        }
    )
    repro(ReproOptions(root=p.root))
    store = store_of(p)
    log_obj = store.path(lock_hash(p, "log", "log.txt"))
    model_obj = store.path(lock_hash(p, "model", "model.txt"))
    assert (p.root / "model.txt").stat().st_ino == model_obj.stat().st_ino
    repro(ReproOptions(root=p.root))  # the persist log is appended to in place
    p.params({"lr": 0.5})
    repro(ReproOptions(root=p.root))  # the model is rewritten
    assert p.read("log.txt") == "line\nline\nline\n"
    assert log_obj.read_text() == "line\n"
    assert model_obj.read_text() == "0.1\n"
    assert fsck(p.root) == []


KILLED_WRITER = textwrap.dedent("""
    import shutil, sys, time
    from pathlib import Path
    from pipeline.store.objects import ObjectStore
    from pipeline.core.hashing import file_digest

    src, root, ready = sys.argv[1:4]
    def slow_copy(a, b):
        with open(a, "rb") as fin, open(b, "wb") as fout:
            fout.write(fin.read(1 << 20))
            fout.flush()
            Path(ready).touch()
            time.sleep(60)
            fout.write(fin.read())
    shutil.copyfile = slow_copy
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


def test_a_tampered_directory_listing_is_caught_before_restoring(p: Project) -> None:
    p.manifest({"stages": {"gen": {"cmd": "mkdir -p out && echo a > out/a.txt", "outs": ["out"]}}})
    repro(ReproOptions(root=p.root))
    listing = store_of(p).path(lock_hash(p, "gen", "out"))
    os.chmod(listing, 0o644)
    listing.write_text('[{"path":"../../escape.txt","hash":"xxh3_128:00","x":false}]')
    subprocess.run(["rm", "-rf", str(p.root / "out")], check=True)
    report = checkout(p.root)
    assert report.corrupt == ["out"]
    assert not (p.root.parent / "escape.txt").exists()


def test_gc_clears_temp_files_left_by_killed_writers(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    tmp = p.root / ".pipeline" / "cache" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    old, fresh = tmp / "obj.1.1.1", tmp / "obj.2.2.2"
    old.write_text("left behind")
    fresh.write_text("being written")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    gc(p.root)
    assert (old.exists(), fresh.exists()) == (False, True)


def test_checkout_of_one_file_inside_a_tracked_directory(p: Project) -> None:
    for name in ("a", "b"):
        p.write(f"data/{name}.csv", f"{name}\n")
    assert p.cli("add", "data").returncode == 0
    for name in ("a", "b"):
        (p.root / f"data/{name}.csv").unlink()
        p.write(f"data/{name}.csv", "edited\n")
    report = checkout(p.root, ("data/a.csv",))
    assert report.restored == ["data/a.csv"]
    assert (p.read("data/a.csv"), p.read("data/b.csv")) == ("a\n", "edited\n")
