"""`pipeline checkout`: the workspace made to match the lock from the cache (after `git checkout`,
or for one path), reporting corrupt and missing objects instead of crashing.
"""

from __future__ import annotations

from pipeline.api import ReproOptions, checkout, plan, repro
from tests.conftest import Project
from tests.store.support import _one_stage, corrupt, lock_hash, store_of


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


def test_checkout_when_parent_is_a_file_reports_instead_of_crashing(project: Project) -> None:
    project.write("in.txt", "v1\n")
    project.manifest(
        _one_stage("mkdir -p out && cat in.txt > out/a.txt", ["in.txt"], ["out/a.txt"])
    )
    project.repro()
    digest = lock_hash(project, "s", "out/a.txt")
    for child in (project.root / "out").iterdir():
        child.unlink()
    (project.root / "out").rmdir()
    project.write("out", "a file now\n")
    done = project.cli("checkout")
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr == (
        "error: cannot place out/a.txt: out is a file\n"
        "hint: move that file away; a directory of that name is expected\n"
    )
    assert "corrupt" not in done.stdout + done.stderr  # the object is fine: nothing moved aside
    assert "Traceback" not in done.stderr
    assert store_of(project).has(digest)
    assert project.read("out") == "a file now\n"


UNKNOWN = {
    "trian": "did you mean stage 'train'?",
    "model.tx": "did you mean path 'model.txt'?",
    "baselin": "did you mean run 'baseline'?",
    "zzz": "`pipeline dag` lists the stages, `pipeline runs` the runs",
}


def test_checkout_of_an_unknown_name_suggests_a_stage_a_path_or_a_run(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    p.commit(message="v1")
    assert p.cli("run", "-n", "baseline", "-p", "lr=0.2").returncode == 0
    for name, hint in UNKNOWN.items():
        done = p.cli("checkout", name)
        assert done.returncode == 2, done.stderr
        error, said = done.stderr.splitlines()
        what = "a stage, a cached output, tracked data or a recorded run"
        assert error == f"error: {name!r} is not {what}"
        assert said == f"hint: {hint}"


def test_checkout_of_a_file_nothing_tracks_says_so(p: Project) -> None:
    repro(ReproOptions(root=p.root))
    done = p.cli("checkout", "params.yaml")
    assert done.returncode == 2
    assert "params.yaml is neither a stage's cached output nor tracked data" in done.stderr
    assert "git checkout -- params.yaml" in done.stderr
