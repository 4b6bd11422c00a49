"""The run-cache: a stage whose exact inputs ran before is restored instead of run."""

from __future__ import annotations

from pathlib import Path

from pipeline.api import ReproOptions, plan, repro
from pipeline.core.hashing import file_digest
from pipeline.execute.scheduler import Outcome
from pipeline.store.runcache import RunCache
from tests.conftest import Project, outcomes, ran
from tests.store.support import _one_stage, corrupt, lock_hash, store_of


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


def test_run_cache_restores_cache_false_output_as_plain_file(project: Project) -> None:
    project.write(".pipeline/config.yaml", "cache:\n  type: symlink,copy\n")
    project.write("in.txt", "v1\n")
    project.manifest(
        _one_stage(
            "cat in.txt > out.txt && wc -c < in.txt > m.json",
            ["in.txt"],
            ["out.txt"],
            metrics=[{"m.json": {"cache": False}}],
        )
    )
    project.repro()
    project.write("in.txt", "v22\n")
    project.repro()
    project.write("in.txt", "v1\n")
    assert outcomes(project.repro()) == {"s": Outcome.RESTORED}
    assert (project.root / "out.txt").is_symlink()  # the cached output follows cache.type
    assert not (project.root / "m.json").is_symlink()
    assert project.read("m.json") == "3\n"  # restored, a plain file with the v1 run's value


def test_sanity_plain_run_cache_restore(project: Project) -> None:
    """Control: the ordinary run-cache round trip works (not a bug)."""
    project.write("in.txt", "v1\n")
    project.manifest(_one_stage("cat in.txt > out.txt", ["in.txt"], ["out.txt"]))
    project.repro()
    project.write("in.txt", "v2\n")
    project.repro()
    project.write("in.txt", "v1\n")
    assert outcomes(project.repro()) == {"s": Outcome.RESTORED}
    assert Path(project.root / "out.txt").read_text() == "v1\n"


def _two_runs(p: Project) -> tuple[str, str]:
    """train run with lr=0.1, then lr=0.2: the fingerprints of both runs of train."""
    repro(ReproOptions(root=p.root))
    first = p.lock()["stages"]["train"]["fingerprint"]
    p.params({"lr": 0.2})
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    return first, p.lock()["stages"]["train"]["fingerprint"]


def test_a_forged_entry_is_never_restored(p: Project) -> None:
    """lr=0.2's entry replaced by lr=0.1's: restoring it would serve lr=0.1's model as
    lr=0.2's. Its recorded fingerprint is not its name, so the stage runs instead."""
    first, second = _two_runs(p)
    runs = RunCache(store_of(p))
    forged = runs.path(second)
    forged.chmod(0o644)
    forged.write_bytes(runs.path(first).read_bytes())
    p.params({"lr": 0.3})
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    p.params({"lr": 0.2})
    assert plan(ReproOptions(root=p.root)).decisions["train"].action.value == "run"
    result = repro(ReproOptions(root=p.root))
    assert outcomes(result)["train"] is Outcome.RAN
    assert p.read("model.txt") == "lr=0.2\n"
    real = runs.get(second)  # the real run's entry took the forged one's place
    assert real is not None
    assert real.outs[0].info.hash == lock_hash(p, "train", "model.txt")


def test_an_entry_whose_object_was_rewritten_runs_the_stage_and_quarantines_it(
    p: Project,
) -> None:
    first, _ = _two_runs(p)
    entry = RunCache(store_of(p)).get(first)
    assert entry is not None
    obj = store_of(p).path(entry.outs[0].info.hash)
    corrupt(obj)  # other bytes, written as root through the read-only mode
    p.params({"lr": 0.1})
    result = repro(ReproOptions(root=p.root))
    assert outcomes(result)["train"] is Outcome.RAN  # not failed: the shortcut is lost, that's all
    assert p.executions() == ["train"]  # score restores: same model bytes as that run
    assert p.read("model.txt") == "lr=0.1\n"
    quarantined = store_of(p).corrupt / entry.outs[0].info.hash.partition(":")[2]
    assert quarantined.read_text() == "garbage\n"
    assert file_digest(obj) == entry.outs[0].info.hash  # stored again by the run, intact


def test_an_entry_whose_object_is_gone_runs_the_stage(p: Project) -> None:
    first, _ = _two_runs(p)
    entry = RunCache(store_of(p)).get(first)
    assert entry is not None
    store_of(p).path(entry.outs[0].info.hash).unlink()
    p.params({"lr": 0.1})
    assert plan(ReproOptions(root=p.root)).decisions["train"].action.value == "run"
    assert outcomes(repro(ReproOptions(root=p.root)))["train"] is Outcome.RAN
    assert p.read("model.txt") == "lr=0.1\n"
