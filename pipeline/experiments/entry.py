"""MLflow entry points: `pipeline run -e NAME -P key=value`, with MLflow's semantics, validated.

An entry point is a command template with typed parameters (`float`, `int`, `string`, `path`,
`uri`; a bare `name: float` declares the type only). `{name}` placeholders are filled with
the given or default values, each shell-quoted. Unlike MLflow, an unknown `-P` is an error
with a did-you-mean rather than an appended `--key value`, and a value that does not fit its
type is an error before anything runs. The command runs in the project directory, in the
entry point's env (or the project's default env), and is recorded as a run.
"""

from __future__ import annotations

import os
import shlex
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.suggest import suggest_name
from pipeline.env.provision import Provisioner, activate
from pipeline.env.resolve import EnvResolver
from pipeline.errors import UsageError
from pipeline.execute.command import ProcessTracker, run_commands
from pipeline.execute.orchestrate import ended_by
from pipeline.experiments.overrides import parse_assignment
from pipeline.load.project import Project
from pipeline.plan.session import Session
from pipeline.runs.model import RunStatus, StageRow
from pipeline.runs.record import RunInfo, RunRecorder

Sink = Callable[[bytes], None]


@dataclass(frozen=True)
class EntryRun:
    """How an entry point's run ended."""

    run_id: str
    command: str
    code: int
    params: dict[str, Any]


def render(project: Project, name: str, given: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """The entry point's command with every `{param}` filled in, and the values used."""
    entry = _entry(project, name)
    declared: dict[str, dict[str, Any]] = entry["parameters"]
    values = dict(parse_assignment(g, "-P") for g in given)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        hint = suggest_name(unknown[0], list(declared), f"entry point {name!r} takes: {known}")
        raise UsageError(f"entry point {name!r} has no parameter {unknown[0]!r}", hint)
    used = {k: _typed(project, name, k, values.get(k), spec) for k, spec in declared.items()}
    return _format(name, entry["command"], used), used


def _entry(project: Project, name: str) -> dict[str, Any]:
    if name in project.entry_points:
        return project.entry_points[name]
    known = list(project.entry_points)
    raise UsageError(
        f"no entry point named {name!r}",
        suggest_name(name, known, "entry points: " + (", ".join(known) or "none declared")),
    )


def _typed(project: Project, entry: str, key: str, raw: str | None, spec: dict[str, Any]) -> Any:
    kind = spec.get("type") or "string"
    if raw is None:
        if spec.get("default") is None:
            raise UsageError(
                f"entry point {entry!r} needs parameter {key!r}", f"pass -P {key}=VALUE"
            )
        raw = str(spec["default"])
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
    except ValueError:
        expected = "a number" if kind == "float" else "an integer"
        raise UsageError(f"-P {key}={raw}: expected {expected}") from None
    if kind == "path":
        return str((project.root / os.path.expanduser(raw)).resolve())
    return raw


def _format(name: str, template: str, values: Mapping[str, Any]) -> str:
    """MLflow's `str.format` substitution, with every value shell-quoted."""
    out = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        if field not in values:
            raise UsageError(
                f"entry point {name!r}: the command uses {{{field}}}, which is not a parameter",
                f"declare {field} under entry_points.{name}.parameters",
            )
        value = values[field]
        try:
            text = format(value, spec) if spec else str(value)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"entry point {name!r}: {{{field}:{spec}}} does not fit the value {value!r}: {exc}"
            ) from None
        out.append(shlex.quote(text))
    return "".join(out)


def run_entry(
    session: Session,
    name: str,
    given: tuple[str, ...],
    sink: Sink,
    *,
    local: bool = False,
    command_line: str = "",
) -> EntryRun:
    """Run entry point `name` in the project directory and record it."""
    command, used = render(session.project, name, given)
    entry = session.project.entry_points[name]
    recorder = _recorder(session, name, command_line)
    recorder.begin({f"{name}.{k}": v for k, v in used.items()})
    started = time.time()
    try:
        code = _execute(session, entry.get("env"), command, sink, local=local)
    except BaseException as exc:
        recorder.finish(ended_by(exc), {}, note=getattr(exc, "message", "") or str(exc))
        raise
    _record(recorder, name, command, code, started)
    recorder.finish(RunStatus.SUCCEEDED if code == 0 else RunStatus.FAILED, {}, note=command)
    return EntryRun(recorder.id, command, code, used)


def _recorder(session: Session, name: str, command_line: str) -> RunRecorder:
    state_dir = session.project.state_dir

    def open_store() -> Any:
        from pipeline.runs.runstore import RunStore  # noqa: PLC0415 - SQLAlchemy loads off-thread

        return RunStore.for_project(state_dir)

    info = RunInfo(kind="entry", name=name, command=command_line)
    return RunRecorder(open_store, session.project.root, info, journal_dir=state_dir)


def _execute(
    session: Session, env_name: str | None, command: str, sink: Sink, *, local: bool
) -> int:
    project = session.project
    chosen = env_name or ("default" if "default" in project.environments else None)
    resolved = None if local or chosen is None else EnvResolver(project).get(chosen)
    base = {**os.environ, "PIPELINE_ROOT": str(project.root)}
    tracker = ProcessTracker()
    try:
        if resolved is None:
            return run_commands((command,), project.root, base, sink, tracker=tracker).code
        provisioner = Provisioner(session.config.env)
        with provisioner.activated(resolved, lambda text: sink(text.encode())) as built:
            environ = activate(base, built)
            return run_commands((command,), project.root, environ, sink, tracker=tracker).code
    except BaseException:
        tracker.stop_all()
        raise


def _record(recorder: RunRecorder, name: str, command: str, code: int, started: float) -> None:
    outcome = "ran" if code == 0 else "failed"
    row = StageRow(
        stage=f"entry:{name}",
        outcome=outcome,
        started_at=started,
        ended_at=time.time(),
        exit_code=code,
        cmd=(command,),
    )
    recorder.stage(row)
