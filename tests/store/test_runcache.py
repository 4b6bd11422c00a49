"""The run-cache: a stage whose exact inputs ran before is restored instead of run."""

from __future__ import annotations

from pathlib import Path

from pipeline.api import ReproOptions, plan, repro
from pipeline.execute.scheduler import Outcome
from tests.conftest import Project, outcomes, ran
from tests.store.support import _one_stage


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
