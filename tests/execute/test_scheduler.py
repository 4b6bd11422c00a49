"""The parallel scheduler and DVC's control flags: -j, resources, keep-going, timeout, retries,
frozen, persist, --force-downstream; a failing stage never takes the whole run down.

Parallelism is shown by stages that record when they start and end, never by timing a run.
"""

from __future__ import annotations

import shlex
import time
from itertools import combinations
from pathlib import Path

import pytest

from pipeline.api import ReproOptions, repro
from pipeline.errors import PipelineError
from pipeline.execute.scheduler import Outcome, QuietEvents, StageResult
from tests.conftest import Project, outcomes, ran, record, wait_gone
from tests.execute.support import CHAIN_WITH_FAILURE
from tests.plan.support import CHAIN


def timed_stage(name: str, seconds: float = 0.4, *, hold: str = "") -> str:
    """A command that logs `name start T` and `name end T` (epoch ns) around a sleep, or around
    `hold` (a `barrier`) when given."""
    log = '"$PIPELINE_ROOT/../times.txt"'
    return (
        f"echo {name} start $(date +%s%N) >> {log}; {hold or f'sleep {seconds}'}; "
        f"echo {name} end $(date +%s%N) >> {log}"
    )


BARRIER_CAP = 30  # seconds a stage waits at a barrier before it gives up and fails


def barrier(name: str, parties: list[str]) -> str:
    """A shell snippet: `name` arrives, then waits until every one of `parties` has arrived.

    Each stage passes only once all are running at the same time, so a run in which they all
    succeed proves they overlapped; one that never meets the others fails after BARRIER_CAP s.
    """
    where = '"$PIPELINE_ROOT/../barrier"'
    arrived = " && ".join(f"[ -e {where}/{party} ]" for party in parties)
    return (
        f"mkdir -p {where} && touch {where}/{name} && "
        f"until {arrived}; do [ $SECONDS -lt {BARRIER_CAP} ] || exit 97; sleep 0.02; done"
    )


class FinishMarkers(QuietEvents):
    """Events that touch `<dir>/<stage>.finished` once the scheduler has a stage's result."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def stage_finished(self, result: StageResult) -> None:
        (self.where / f"{result.stage}.finished").touch()


def hold_until(path: Path) -> str:
    """A shell snippet that waits for `path` (failing after BARRIER_CAP s): a barrier."""
    where = shlex.quote(str(path))
    return f"until [ -e {where} ]; do [ $SECONDS -lt {BARRIER_CAP} ] || exit 97; sleep 0.02; done"


def intervals(project: Project) -> dict[str, tuple[int, int]]:
    spans: dict[str, dict[str, int]] = {}
    for line in (project.root.parent / "times.txt").read_text().splitlines():
        name, what, stamp = line.split()
        spans.setdefault(name, {})[what] = int(stamp)
    return {name: (s["start"], s["end"]) for name, s in spans.items()}


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def independent(count: int, **extra: object) -> dict[str, object]:
    return {"stages": {f"s{i}": {"cmd": timed_stage(f"s{i}"), **extra} for i in range(count)}}


def test_independent_stages_overlap_under_j4(p: Project) -> None:
    names = ["s0", "s1", "s2", "s3"]
    # each stage waits at a barrier until all four run: they pass it only if they overlap
    p.manifest({"stages": {n: {"cmd": timed_stage(n, hold=barrier(n, names))} for n in names}})
    result = repro(ReproOptions(root=p.root, jobs=4))
    assert sorted(ran(result)) == names, outcomes(result)
    spans = intervals(p)
    assert sorted(spans) == names
    assert all(overlap(spans[a], spans[b]) for a, b in combinations(spans, 2)), spans


def test_one_job_runs_one_stage_at_a_time(p: Project) -> None:
    p.manifest(independent(3))
    result = repro(ReproOptions(root=p.root, jobs=1))
    assert sorted(ran(result)) == ["s0", "s1", "s2"], outcomes(result)
    spans = intervals(p)
    assert sorted(spans) == ["s0", "s1", "s2"]
    assert not any(overlap(spans[a], spans[b]) for a, b in combinations(spans, 2)), spans


def test_a_stage_starts_only_after_its_upstream_finished(p: Project) -> None:
    meet = barrier("up", ["up", "side"]), barrier("side", ["up", "side"])
    p.manifest(
        {
            "stages": {
                "up": {
                    "cmd": timed_stage("up", hold=meet[0]) + " && echo x > up.txt",
                    "outs": ["up.txt"],
                },
                "side": {"cmd": timed_stage("side", hold=meet[1])},
                "down": {"cmd": timed_stage("down"), "deps": ["up.txt"]},
            }
        }
    )
    result = repro(ReproOptions(root=p.root, jobs=4))
    assert sorted(ran(result)) == ["down", "side", "up"], outcomes(result)
    spans = intervals(p)
    assert spans["down"][0] >= spans["up"][1]
    assert overlap(spans["up"], spans["side"])  # up and side met at their barrier


def test_cpu_resources_count_against_the_job_budget(p: Project) -> None:
    p.manifest(independent(2, resources={"cpus": 2}))
    repro(ReproOptions(root=p.root, jobs=2))
    spans = intervals(p)
    assert not overlap(spans["s0"], spans["s1"]), spans


def test_a_stage_asking_more_cpus_than_jobs_still_runs(p: Project) -> None:
    p.manifest(independent(1, resources={"cpus": 8}))
    assert ran(repro(ReproOptions(root=p.root, jobs=2))) == ["s0"]


def test_failure_stops_new_stages_and_skips_its_descendants(p: Project) -> None:
    p.manifest(CHAIN_WITH_FAILURE)
    result = repro(ReproOptions(root=p.root, jobs=1))
    assert outcomes(result) == {
        "bad": Outcome.FAILED,
        "after_bad": Outcome.SKIPPED,
        "good": Outcome.SKIPPED,
    }
    failed = result.failed
    assert failed is not None and failed.error is not None
    assert failed.error.message == "stage bad failed with exit code 3"
    assert p.executions() == []


def test_keep_going_runs_everything_that_does_not_depend_on_the_failure(p: Project) -> None:
    p.manifest(CHAIN_WITH_FAILURE)
    result = repro(ReproOptions(root=p.root, jobs=1, keep_going=True))
    assert outcomes(result) == {
        "bad": Outcome.FAILED,
        "after_bad": Outcome.SKIPPED,
        "good": Outcome.RAN,
    }
    skipped = next(r for r in result.results if r.stage == "after_bad")
    assert skipped.note == "upstream bad failed"
    assert p.executions() == ["good"]


def test_running_stages_finish_after_a_failure_elsewhere(p: Project) -> None:
    marks = p.root.parent
    started = marks / "slow.started"
    p.manifest(
        {
            "stages": {
                # slow runs until the scheduler has bad's failure; bad fails once slow runs
                "slow": {
                    "cmd": f"touch {shlex.quote(str(started))}; "
                    f"{hold_until(marks / 'bad.finished')}; " + record("slow")
                },
                "bad": {"cmd": f"{hold_until(started)}; exit 1"},
            }
        }
    )
    result = repro(ReproOptions(root=p.root, jobs=2), events=FinishMarkers(marks))
    assert outcomes(result) == {"slow": Outcome.RAN, "bad": Outcome.FAILED}
    assert p.executions() == ["slow"]


def test_timeout_stops_the_stage_and_its_children(p: Project) -> None:
    pidfile = p.root.parent / "child.pid"
    p.manifest(
        {
            "stages": {
                "slow": {
                    "cmd": f"sleep 60 & echo $! > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; "
                    "wait",
                    "timeout": "3s",
                }
            }
        }
    )
    started = time.monotonic()
    result = repro(ReproOptions(root=p.root))
    assert time.monotonic() - started < 30  # a hang guard, well before the child would end
    failed = result.failed
    assert failed is not None and failed.error is not None
    assert failed.error.message == "stage slow timed out after 3s"
    assert pidfile.exists(), "the timeout came before the stage started its child"
    assert wait_gone(int(pidfile.read_text()), 15)


def test_retries_run_a_failing_stage_again(p: Project) -> None:
    counter = p.root.parent / "attempts"
    flaky = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; "
        '[ "$n" -ge 2 ] && echo ok > out.txt'
    )
    p.manifest({"stages": {"flaky": {"cmd": flaky, "outs": ["out.txt"], "retries": 2}}})
    result = repro(ReproOptions(root=p.root))
    assert ran(result) == ["flaky"]
    assert result.results[0].attempts == 3
    assert counter.read_text() == "3\n"


def test_retries_give_up_with_the_attempt_count(p: Project) -> None:
    p.manifest({"stages": {"bad": {"cmd": f"{record('bad')}; exit 1", "retries": 1}}})
    result = repro(ReproOptions(root=p.root))
    failed = result.failed
    assert failed is not None and failed.error is not None
    assert failed.error.message == "stage bad failed with exit code 1 (attempt 2 of 2)"
    assert p.executions() == ["bad", "bad"]


def test_frozen_stage_with_a_missing_output_fails_with_exit_4(p: Project) -> None:
    p.manifest({"stages": {"f": {"cmd": record("f"), "outs": ["out.txt"], "frozen": True}}})
    done = p.cli("repro")
    assert done.returncode == 4
    assert "stage f is frozen, and its output out.txt is missing" in done.stderr
    assert p.executions() == []


def test_persist_outputs_are_kept_while_the_stage_runs(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "log": {
                    "cmd": "echo line >> log.txt",
                    "outs": [{"log.txt": {"persist": True}}],
                    "always_changed": True,
                }
            }
        }
    )
    repro(ReproOptions(root=p.root))
    repro(ReproOptions(root=p.root))
    assert p.read("log.txt") == "line\nline\n"


def test_non_persist_outputs_are_deleted_before_the_stage_runs(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "log": {"cmd": "echo line >> log.txt", "outs": ["log.txt"], "always_changed": True}
            }
        }
    )
    repro(ReproOptions(root=p.root))
    repro(ReproOptions(root=p.root))
    assert p.read("log.txt") == "line\n"


def test_force_downstream_reruns_everything_below_a_stage_that_ran(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    p.write("a.txt", "edited\n")
    repro(ReproOptions(root=p.root, force_downstream=True))
    assert p.executions() == ["a", "b", "c"]  # b's input bytes are a's again, yet it reruns


def test_a_frozen_stage_is_not_skipped_when_its_upstream_fails(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "up": {"cmd": "exit 1", "outs": ["up.txt"]},
                "f": {"cmd": "echo", "deps": ["up.txt"], "outs": ["f.txt"], "frozen": True},
            }
        }
    )
    p.write("f.txt", "kept\n")
    result = repro(ReproOptions(root=p.root, keep_going=True))
    assert outcomes(result) == {"up": Outcome.FAILED, "f": Outcome.UP_TO_DATE}


def test_missing_wdir_fails_one_stage_not_the_whole_run(p: Project) -> None:
    # slow runs until the scheduler has nowhere's failure: the run goes on around it
    finished = p.root.parent / "nowhere.finished"
    p.manifest(
        {
            "stages": {
                "slow": {"cmd": f"{hold_until(finished)}; echo a > a.txt", "outs": ["a.txt"]},
                "nowhere": {"wdir": "sub", "cmd": "true"},  # sub/ does not exist
            }
        }
    )
    options = ReproOptions(root=p.root, jobs=2, keep_going=True, run_cache=False)
    try:
        result = repro(options, events=FinishMarkers(p.root.parent))
    except Exception as exc:
        pytest.fail(f"the run crashed instead of failing one stage: {exc!r}")
    got = outcomes(result)
    assert got["nowhere"] is Outcome.FAILED
    assert isinstance(result.failed.error if result.failed else None, PipelineError)
    assert got["slow"] is Outcome.RAN
    assert "slow" in p.lock()["stages"]
