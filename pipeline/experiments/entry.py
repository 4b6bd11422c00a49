"""MLflow entry points: `pipeline run -e NAME -P key=value`, with MLflow's semantics, validated.

An entry point is a command template with typed parameters (`float`, `int`, `string`, `path`,
`uri`; a bare `name: float` declares the type only). `{name}` placeholders are filled with
the given or default values as written (`1e-1` stays `1e-1`, as in MLflow: the type only
validates), each shell-quoted; a `path` becomes absolute and must exist. Unlike MLflow, an
unknown `-P` is an error with a did-you-mean rather than an appended `--key value`, and a
value that does not fit its type is an error before anything runs. The command runs in the
project directory, in the entry point's env (or the project's default env), whose declared
file must exist even under `--env-manager local` (as MLflow checks it), and is recorded as a run.
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
from pipeline.core.yamlio import load_yaml
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


@dataclass(frozen=True)
class _Value:
    """A parameter's text as the command gets it, and its typed value for records and specs."""

    text: str
    typed: Any


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
    return _format(name, entry["command"], used), {k: v.typed for k, v in used.items()}


def _entry(project: Project, name: str) -> dict[str, Any]:
    if name in project.entry_points:
        return project.entry_points[name]
    known = list(project.entry_points)
    raise UsageError(
        f"no entry point named {name!r}",
        suggest_name(name, known, "entry points: " + (", ".join(known) or "none declared")),
    )


def _typed(project: Project, entry: str, key: str, raw: str | None, spec: dict[str, Any]) -> _Value:
    kind = spec.get("type") or "string"
    if raw is None:
        if spec.get("default") is None:
            raise UsageError(
                f"entry point {entry!r} needs parameter {key!r}", f"pass -P {key}=VALUE"
            )
        raw = _default_text(project, entry, key, spec["default"])
    try:
        if kind == "float":
            return _Value(raw, float(raw))
        if kind == "int":
            return _Value(raw, int(raw))
    except ValueError:
        expected = "a number" if kind == "float" else "an integer"
        raise UsageError(f"-P {key}={raw}: expected {expected}") from None
    if kind == "path":
        return _path(project, entry, key, raw)
    return _Value(raw, raw)


def _default_text(project: Project, entry: str, key: str, default: Any) -> str:
    """A numeric default as written in the manifest: YAML reads `1e-1` as 0.1 and MLflow passes
    `1e-1`, so the text is read back from the node (PyYAML is loaded only for such a default)."""
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        return str(default)
    from pipeline.core.yamlparse import child  # noqa: PLC0415 - PyYAML only when needed

    node = load_yaml(project.manifest).root
    for step in ("entry_points", entry, "parameters", key, "default"):
        node = child(node, step) if node is not None else None
    text = getattr(node, "value", None)
    return text if isinstance(text, str) and _is_number(text) else str(default)


def _is_number(text: str) -> bool:
    """Whether Python reads `text` as a number too (YAML's `0x10` or `.inf` it does not)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _path(project: Project, entry: str, key: str, raw: str) -> _Value:
    """MLflow passes a path parameter absolute, and refuses one that does not exist."""
    if "://" in raw:  # MLflow downloads such an artifact first; nothing here fetches one
        raise UsageError(
            f"entry point {entry!r}: path parameter {key!r} is a URI ({raw})",
            f"pass a local path, or declare {key} `type: uri` to pass the URI on as written",
        )
    path = (project.root / os.path.expanduser(raw)).resolve()
    if not path.exists():
        raise UsageError(
            f"entry point {entry!r}: path parameter {key!r} is {raw!r}, which does not exist",
            f"pass -P {key}=PATH naming an existing file or directory (relative to the project)",
        )
    return _Value(str(path), str(path))


def _format(name: str, template: str, values: Mapping[str, _Value]) -> str:
    """MLflow's `str.format` substitution, with every value shell-quoted.

    A format spec (`{alpha:.2f}`) applies to the typed value; without one the text as written
    is used, so the command sees exactly what the user typed.
    """
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
            text = format(value.typed, spec) if spec else value.text
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"entry point {name!r}: {{{field}:{spec}}} does not fit the value "
                f"{value.typed!r}: {exc}"
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
    env_name = _env_of(session.project, name)
    _check_env_file(session.project, env_name)
    recorder = _recorder(session, name, command_line)
    recorder.begin({f"{name}.{k}": v for k, v in used.items()})
    started = time.time()
    try:
        code = _execute(session, env_name, command, sink, local=local)
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


def _env_of(project: Project, name: str) -> str | None:
    """The entry point's `env`, else the project's default env, else none."""
    env_name: str | None = project.entry_points[name].get("env")
    return env_name or ("default" if "default" in project.environments else None)


def _check_env_file(project: Project, env_name: str | None) -> None:
    """A declared env file that is missing is an error before running, whatever the env manager:
    MLflow checks it on loading, and `--env-manager local` must not hide a broken project."""
    decl = project.environments.get(env_name) if env_name else None
    if decl is None or decl.file is None:
        return
    if not (project.root / decl.file).is_file():
        key = str(decl.loc[-1]) if decl.loc else "env"
        raise load_yaml(project.manifest).error(
            decl.loc,
            f"{decl.file} does not exist",
            f"create {decl.file}, or remove `{key}` to run in the current environment",
        )


def _execute(
    session: Session, env_name: str | None, command: str, sink: Sink, *, local: bool
) -> int:
    project = session.project
    resolved = None if local or env_name is None else EnvResolver(project).get(env_name)
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
