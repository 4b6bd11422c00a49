"""The parallel scheduler and DVC's control flags: -j, resources, keep-going, timeout, retries,
frozen, always_changed, persist, -s, --downstream, --force-downstream, one repro per project.

Parallelism is shown by stages that record when they start and end, never by timing a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import combinations
from pathlib import Path
from typing import IO

import pytest

from pipeline.api import ReproOptions, plan, repro
from pipeline.execute.scheduler import Outcome
from tests.conftest import Project, cli_env, outcomes, ran, reasons, record


@pytest.fixture
def p(make_project: Callable[..., Project]) -> Project:
    return make_project("sched")


def timed_stage(name: str, seconds: float = 0.4) -> str:
    """A command that logs `name start T` and `name end T` (epoch ns) around a sleep."""
    log = '"$PIPELINE_ROOT/../times.txt"'
    return (
        f"echo {name} start $(date +%s%N) >> {log}; sleep {seconds}; "
        f"echo {name} end $(date +%s%N) >> {log}"
    )


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
    p.manifest(independent(4))
    result = repro(ReproOptions(root=p.root, jobs=4))
    assert sorted(ran(result)) == ["s0", "s1", "s2", "s3"]
    spans = intervals(p)
    assert all(overlap(spans[a], spans[b]) for a, b in combinations(spans, 2)), spans


def test_one_job_runs_one_stage_at_a_time(p: Project) -> None:
    p.manifest(
        independent(
            3,
        )
    )
    repro(ReproOptions(root=p.root, jobs=1))
    spans = intervals(p)
    assert not any(overlap(spans[a], spans[b]) for a, b in combinations(spans, 2)), spans


def test_a_stage_starts_only_after_its_upstream_finished(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "up": {"cmd": timed_stage("up") + " && echo x > up.txt", "outs": ["up.txt"]},
                "side": {"cmd": timed_stage("side")},
                "down": {"cmd": timed_stage("down"), "deps": ["up.txt"]},
            }
        }
    )
    repro(ReproOptions(root=p.root, jobs=4))
    spans = intervals(p)
    assert spans["down"][0] >= spans["up"][1]
    assert overlap(spans["up"], spans["side"])


def test_cpu_resources_count_against_the_job_budget(p: Project) -> None:
    p.manifest(independent(2, resources={"cpus": 2}))
    repro(ReproOptions(root=p.root, jobs=2))
    spans = intervals(p)
    assert not overlap(spans["s0"], spans["s1"]), spans


def test_a_stage_asking_more_cpus_than_jobs_still_runs(p: Project) -> None:
    p.manifest(independent(1, resources={"cpus": 8}))
    assert ran(repro(ReproOptions(root=p.root, jobs=2))) == ["s0"]


CHAIN_WITH_FAILURE = {
    "stages": {
        "bad": {"cmd": "exit 3", "outs": ["bad.txt"]},
        "after_bad": {"cmd": record("after_bad"), "deps": ["bad.txt"]},
        "good": {"cmd": f"sleep 0.3; {record('good')}"},
    }
}


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
    p.manifest(
        {
            "stages": {
                "slow": {"cmd": f"sleep 0.5; {record('slow')}"},
                "bad": {"cmd": "sleep 0.1; exit 1"},
            }
        }
    )
    result = repro(ReproOptions(root=p.root, jobs=2))
    assert outcomes(result) == {"slow": Outcome.RAN, "bad": Outcome.FAILED}
    assert p.executions() == ["slow"]


def test_cli_keep_going_exits_1_with_a_summary_table(p: Project) -> None:
    p.manifest(CHAIN_WITH_FAILURE)
    done = p.cli("repro", "-k", "-j", "1")
    assert done.returncode == 1
    assert "error: stage bad failed with exit code 3" in done.stderr
    table = done.stdout[done.stdout.index("stage ") :]
    assert "bad" in table and "failed" in table
    assert "after_bad" in table and "upstream bad failed" in table
    assert "good" in table and "ran" in table


def test_parallel_output_is_prefixed_and_logs_are_kept(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "a": {"cmd": "echo alpha; echo -n partial"},
                "b": {"cmd": "echo beta"},
            }
        }
    )
    done = p.cli("repro", "-j", "2")
    assert done.returncode == 0, done.stderr
    assert "a | alpha\n" in done.stdout and "a | partial\n" in done.stdout
    assert "b | beta\n" in done.stdout
    assert p.read(".pipeline/logs/a.log") == "alpha\npartial"


def test_timeout_stops_the_stage_and_its_children(p: Project) -> None:
    pidfile = p.root.parent / "child.pid"
    p.manifest(
        {"stages": {"slow": {"cmd": f"sleep 30 & echo $! > {pidfile}; wait", "timeout": "0.5s"}}}
    )
    started = time.monotonic()
    result = repro(ReproOptions(root=p.root))
    assert time.monotonic() - started < 10
    failed = result.failed
    assert failed is not None and failed.error is not None
    assert failed.error.message == "stage slow timed out after 0.5s"
    pid = int(pidfile.read_text())
    from tests.conftest import wait_gone

    assert wait_gone(pid, 5)


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


def test_frozen_stage_never_runs_while_its_outputs_exist(p: Project) -> None:
    p.write("in.txt", "1\n")
    p.manifest(
        {
            "stages": {
                "f": {
                    "cmd": f"{record('f')}; cp in.txt out.txt",
                    "deps": ["in.txt"],
                    "outs": ["out.txt"],
                    "frozen": True,
                }
            }
        }
    )
    p.write("out.txt", "made by hand\n")
    assert ran(repro(ReproOptions(root=p.root, force=True))) == []
    p.write("in.txt", "2\n")
    assert plan(ReproOptions(root=p.root)).stale == []
    assert p.executions() == []


def test_frozen_stage_with_a_missing_output_fails_with_exit_4(p: Project) -> None:
    p.manifest({"stages": {"f": {"cmd": record("f"), "outs": ["out.txt"], "frozen": True}}})
    done = p.cli("repro")
    assert done.returncode == 4
    assert "stage f is frozen, and its output out.txt is missing" in done.stderr
    assert p.executions() == []


def test_frozen_stage_does_not_bring_its_upstream_along(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "up": {"cmd": f"{record('up')}; echo > up.txt", "outs": ["up.txt"]},
                "f": {"cmd": "echo", "deps": ["up.txt"], "outs": ["f.txt"], "frozen": True},
            }
        }
    )
    p.write("f.txt", "kept\n")
    assert list(plan(ReproOptions(root=p.root, targets=("f",))).order) == ["f"]


def test_always_changed_runs_every_time_but_downstream_only_on_new_bytes(p: Project) -> None:
    p.manifest(
        {
            "stages": {
                "always": {
                    "cmd": f"{record('always')}; echo same > a.txt",
                    "outs": ["a.txt"],
                    "always_changed": True,
                },
                "down": {
                    "cmd": f"{record('down')}; cp a.txt d.txt",
                    "deps": ["a.txt"],
                    "outs": ["d.txt"],
                },
            }
        }
    )
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    assert reasons(plan(ReproOptions(root=p.root)), "always") == ["always changed"]
    result = repro(ReproOptions(root=p.root))
    assert ran(result) == ["always"]
    assert p.executions() == ["always"]


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


CHAIN = {
    "stages": {
        "a": {"cmd": f"{record('a')}; echo a > a.txt", "outs": ["a.txt"]},
        "b": {"cmd": f"{record('b')}; cat a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
        "c": {"cmd": f"{record('c')}; cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    }
}


def test_single_item_runs_only_the_target(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    p.write("a.txt", "changed\n")  # a is stale now, but -s b does not look upstream
    result = repro(ReproOptions(root=p.root, targets=("b",), single_item=True, force=True))
    assert ran(result) == ["b"]
    assert p.read("b.txt") == "changed\n"


def test_downstream_runs_the_target_and_what_depends_on_it(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    assert plan(ReproOptions(root=p.root, targets=("b",), downstream=True)).order == ("b", "c")


def test_force_forces_upstream_too_unless_single_item(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    repro(ReproOptions(root=p.root, targets=("b",), force=True))
    assert p.executions() == ["a", "b"]


def test_force_downstream_reruns_everything_below_a_stage_that_ran(p: Project) -> None:
    p.manifest(CHAIN)
    repro(ReproOptions(root=p.root))
    p.clear_executions()
    p.write("a.txt", "edited\n")
    repro(ReproOptions(root=p.root, force_downstream=True))
    assert p.executions() == ["a", "b", "c"]  # b's input bytes are a's again, yet it reruns


def test_definition_changes_rerun_a_stage(p: Project) -> None:
    p.write("x.txt", "x\n")
    p.write("y.txt", "y\n")
    p.params({"k": 1, "j": 2})

    def define(deps: list[str], params: list[str], out: str) -> None:
        stage = {"cmd": "cat x.txt > o.txt", "deps": deps, "params": params, "outs": [out]}
        p.manifest({"stages": {"s": stage}})

    define(["x.txt", "y.txt"], ["k", "j"], "o.txt")
    repro(ReproOptions(root=p.root))
    define(["x.txt"], ["k"], "o.txt")
    assert reasons(plan(ReproOptions(root=p.root)), "s") == ["param j removed", "dep y.txt removed"]
    repro(ReproOptions(root=p.root))
    define(["x.txt"], ["k"], "o2.txt")
    assert reasons(plan(ReproOptions(root=p.root)), "s") == [
        "out o2.txt added",
        "out o.txt removed",
    ]


def start_repro(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(project.root), "repro", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def wait_for(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def hold_until(go: Path) -> str:
    """A shell snippet that blocks until the test creates `go`: a barrier, not a time window."""
    return f"while [ ! -e {go} ]; do sleep 0.02; done"


def read_until(stream: IO[str], text: str, seconds: float = 60) -> str:
    """Lines of `stream` up to the first one containing `text` (fails after `seconds`)."""
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(_lines_until(stream, text)), daemon=True)
    reader.start()
    reader.join(seconds)
    assert not reader.is_alive(), f"{text!r} never appeared in: {''.join(seen)}"
    return "".join(seen)


def _lines_until(stream: IO[str], text: str) -> Iterator[str]:
    for line in stream:
        yield line
        if text in line:
            return


def test_two_concurrent_repros_both_finish_correctly(p: Project) -> None:
    started, go = p.root.parent / "started", p.root.parent / "go"
    p.manifest(
        {
            "stages": {
                "slow": {
                    "cmd": f"touch {started}; {hold_until(go)}; {record('slow')}; "
                    "echo done > out.txt",
                    "outs": ["out.txt"],
                }
            }
        }
    )
    first = start_repro(p)
    try:
        wait_for(started)
        second = start_repro(p)
        assert second.stderr is not None
        waited = read_until(second.stderr, "waiting for pipeline process PID")
    finally:
        go.touch()  # the first repro finishes only now, whatever the machine's load
    out2, err2 = second.communicate(timeout=60)
    _, err1 = first.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), (err1, waited + err2)
    assert p.executions() == ["slow"]  # the second found everything up to date
    assert "Everything is up to date" in out2
    assert p.lock()["stages"]["slow"]["outs"][0]["path"] == "out.txt"


def test_no_wait_fails_at_once_while_another_repro_runs(p: Project) -> None:
    started, go = p.root.parent / "started", p.root.parent / "go"
    p.manifest({"stages": {"slow": {"cmd": f"touch {started}; {hold_until(go)}"}}})
    first = start_repro(p)
    try:
        wait_for(started)
        done = p.cli("repro", "--no-wait", timeout=60)
    finally:
        go.touch()
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert done.returncode == 1
    assert "another pipeline process (PID" in done.stderr
    assert "is running in this project" in done.stderr


def test_a_background_child_does_not_hold_the_stage_open(p: Project) -> None:
    pidfile = p.root.parent / "bg.pid"
    p.manifest(
        {
            "stages": {
                "s": {
                    "cmd": f"(sleep 30 & echo $! > {pidfile}); echo done > out.txt",
                    "outs": ["out.txt"],
                }
            }
        }
    )
    started = time.monotonic()
    result = repro(ReproOptions(root=p.root, jobs=1))
    elapsed = time.monotonic() - started
    os.kill(int(pidfile.read_text()), 9)
    assert ran(result) == ["s"]
    assert elapsed < 20  # the shell is done long before its 30 s background child


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
