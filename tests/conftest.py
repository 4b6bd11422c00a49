"""Shared fixtures: real projects in `tmp_path` (git repos), the API, and the CLI as a subprocess.

Stage commands record every execution by appending their name to `executions.txt` next to the
project directory (`$PIPELINE_ROOT/../executions.txt`): outside the project, not a dep and not an
out, so the bookkeeping never influences what it observes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

from pipeline.api import ReproOptions
from pipeline.execute.scheduler import Outcome, RunResult
from pipeline.plan.decisions import Plan

settings.register_profile(
    "pipeline",
    database=None,  # keep the checkout clean: no .hypothesis/ directory
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("pipeline")

# A developer's shared run store must never receive the suite's runs: the PostgreSQL tests set
# their own URL per test (tests/pg.py).
os.environ.pop("PIPELINE_RUNS_URL", None)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
# Variables that would make the output depend on the developer's terminal settings.
_COLOUR_VARS = ("FORCE_COLOR", "NO_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")

EXECUTIONS = "executions.txt"


def record(name: str) -> str:
    """A shell snippet that appends `name` to the execution log outside the project."""
    return f'echo {name} >> "$PIPELINE_ROOT/../{EXECUTIONS}"'


def ran(result: RunResult) -> list[str]:
    """Names of the stages that ran, in execution order."""
    return [r.stage for r in result.results if r.outcome is Outcome.RAN]


def outcomes(result: RunResult) -> dict[str, Outcome]:
    return {r.stage: r.outcome for r in result.results}


def reasons(plan: Plan, stage: str) -> list[str]:
    """The status reasons of one stage as the user reads them."""
    return [str(r) for r in plan.decisions[stage].reasons]


def dvc_yaml(project: Project, text: str) -> None:
    project.write("dvc.yaml", text)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: no colour overrides, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _COLOUR_VARS}
    env.update(extra)
    return env


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reset_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def pipeline_process(root: Path, *args: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`pipeline -C ROOT ARGS` as a real process in its own session (the test's own signals
    never reach it), with `env` added to `cli_env()`; killed if still running at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(root), *args],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(**env),
        start_new_session=True,
        preexec_fn=_reset_sigint,  # noqa: PLW1509 - SIGINT must not be inherited as ignored
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def wait_until(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, seconds: float = 60
) -> None:
    """Until `ready()`, failing if `proc` ends first; `seconds` is a hang guard only."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert proc.poll() is None, f"pipeline ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.001)


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


@dataclass
class Project:
    """A project directory that is a git repository, with helpers to edit, run and inspect it."""

    root: Path

    # -- files ---------------------------------------------------------------------------
    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def manifest(self, data: dict[str, Any] | str, *, commit: bool = True) -> Path:
        """Write `MLproject` from a dict (yaml.safe_dump) or verbatim text, and commit it."""
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        path = self.write("MLproject", text)
        if commit:
            self.commit("MLproject")
        return path

    def params(self, data: dict[str, Any] | str) -> Path:
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        return self.write("params.yaml", text)

    def lock(self) -> dict[str, Any]:
        return yaml.safe_load(self.read("pipeline.lock"))

    # -- git -----------------------------------------------------------------------------
    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, check=True, capture_output=True, text=True
        )
        return done.stdout

    def commit(self, *paths: str, message: str = "update") -> None:
        self.git("add", "--", *(paths or (".",)))
        self.git("commit", "-q", "--allow-empty", "-m", message)

    # -- running -------------------------------------------------------------------------
    def repro(self, *targets: str, force: bool = False) -> RunResult:
        from pipeline import api

        return api.repro(ReproOptions(root=self.root, targets=targets, force=force))

    def plan(self, *targets: str, force: bool = False) -> Plan:
        from pipeline import api

        return api.plan(ReproOptions(root=self.root, targets=targets, force=force))

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`python -m pipeline -C ROOT ARGS...`, run from the project directory."""
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "-C", str(self.root), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=env or cli_env(),
            check=False,
            timeout=timeout,
        )

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def execution_log(self) -> Path:
        return self.root.parent / EXECUTIONS

    def executions(self) -> list[str]:
        log = self.execution_log
        return log.read_text().split() if log.exists() else []

    def clear_executions(self) -> None:
        self.execution_log.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits work without any user configuration; nothing global leaks into the test."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """Factory: `make_project(name)` → an initialised git repo at tmp_path/name/proj."""

    def make(name: str = "p") -> Project:
        root = tmp_path / name / "proj"
        root.mkdir(parents=True)
        project = Project(root.resolve())
        project.git("init", "-q")
        return project

    return make


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project()


@pytest.fixture
def p(make_project: Callable[..., Project]) -> Project:
    """Another empty project, for tests that write their own manifest.

    tests/store and tests/data override it (their conftest): there `p` is the cache tests'
    project, with params and a train → score pipeline.
    """
    return make_project("fresh")


@pytest.fixture
def dvc(make_project: Callable[..., Project]) -> Project:
    """An empty project whose manifest a test writes as dvc.yaml (`dvc_yaml`)."""
    return make_project("dvc")


CHAIN_PARAMS: dict[str, Any] = {
    "prepare": {"split": 0.2},
    "train": {"lr": 0.1, "epochs": 3},
    "tag": "a",
}


def chain_manifest() -> dict[str, Any]:
    """prepare → train → evaluate, plus an independent `other`.

    prepare uses `${prepare.split}` in its cmd; train tracks `train.lr` through `params:` and
    copies it into its output; other uses `${tag}` in its cmd; nobody uses `train.epochs`.
    """
    return {
        "name": "chain",
        "stages": {
            "prepare": {
                "cmd": "{ cat raw.txt; echo split=${prepare.split}; } > data/prepared.txt && "
                + record("prepare"),
                "deps": ["raw.txt"],
                "outs": ["data/prepared.txt"],
            },
            "train": {
                "cmd": "{ cat data/prepared.txt; grep 'lr:' params.yaml; } > model.txt && "
                + record("train"),
                "deps": ["data/prepared.txt"],
                "params": ["train.lr"],
                "outs": ["model.txt"],
            },
            "evaluate": {
                "cmd": "wc -l < model.txt > score.txt && " + record("evaluate"),
                "deps": ["model.txt"],
                "metrics": ["score.txt"],
            },
            "other": {
                "cmd": "{ cat other.txt; echo ${tag}; } > other.out && " + record("other"),
                "deps": ["other.txt"],
                "outs": ["other.out"],
            },
        },
    }


CHAIN_ORDER = ["prepare", "other", "train", "evaluate"]  # upstream first, by waves


@pytest.fixture
def chain(project: Project) -> Project:
    """The chain project, written and committed but never run."""
    project.write("raw.txt", "raw 1\n")
    project.write("other.txt", "other 1\n")
    project.params(CHAIN_PARAMS)
    project.manifest(chain_manifest(), commit=False)
    project.commit(message="chain project")
    return project


@pytest.fixture
def chain_done(chain: Project) -> Iterator[Project]:
    """The chain project after one successful repro, with the execution log cleared."""
    result = chain.repro()
    assert ran(result) == CHAIN_ORDER
    chain.clear_executions()
    yield chain


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The environment tests' wheels (alpha, beta, ...), built once per test module."""
    from tests.env.support import build_wheels

    return build_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheels: Path) -> Any:
    """An env test's own env cache and offline pip settings (a `tests.env.support.EnvCache`)."""
    from tests.env.support import isolate

    return isolate(monkeypatch, tmp_path, wheels)


@pytest.fixture
def xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`XDG_CACHE_HOME` in the test's tmp dir: an env build or a cache lands there, not in ~."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def three(project: Project) -> Project:
    """The experiment tests' three-stage project: committed, reproduced once, committed again
    with its lock, its execution log cleared (`tests.experiments.support.setup`)."""
    from tests.experiments.support import setup

    return setup(project)


# --- remotes on loopback (tests/servers.py): moto S3, sshd, a directory ---------------------
from tests.servers import (  # noqa: E402
    any_remote,  # noqa: F401
    local_remote,  # noqa: F401
    moto_process,  # noqa: F401
    moto_server,  # noqa: F401
    s3_remote,  # noqa: F401
    ssh_remote,  # noqa: F401
    sshd,  # noqa: F401
)
