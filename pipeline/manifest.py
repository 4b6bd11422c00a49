"""The manifest as written: pydantic models of `MLproject` and their validation.

These models mirror the YAML one to one (DESIGN §3). Turning them into runnable stages
(params, templates, paths, the graph) is `project.py`'s job. Every validation problem is
reported as `MLproject:LINE:COL: stages.train.deps: expected a list of paths` with a hint.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from pipeline.errors import ManifestError
from pipeline.yamlio import DocumentMemo, Loc, YamlDoc, load_yaml

STAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _command(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected a command string or a non-empty list of command strings")


def _path_list(value: Any) -> Any:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected a list of paths, e.g. [data/raw.csv, src/train.py]")
    return value


def _out_entry(value: Any) -> Any:
    """`path` or `{path: {flag: value}}` → a flat dict the OutSpec model validates."""
    if isinstance(value, str):
        return {"path": value}
    if isinstance(value, dict) and len(value) == 1:
        path, flags = next(iter(value.items()))
        if isinstance(path, str) and (flags is None or isinstance(flags, dict)):
            return {"path": path, **(flags or {})}
    raise ValueError("expected a path or {path: {cache: ..., persist: ...}}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OutSpec(_Model):
    """One declared output (`outs`/`metrics` entry) and its flags."""

    path: str
    cache: bool = True
    persist: bool = False
    desc: str | None = None


Command = Annotated[tuple[str, ...], BeforeValidator(_command)]
PathList = Annotated[list[str], BeforeValidator(_path_list)]
OutEntry = Annotated[OutSpec, BeforeValidator(_out_entry)]
OutList = Annotated[list[OutEntry], BeforeValidator(_path_list)]


class StageSpec(_Model):
    """One entry of `stages:` exactly as written."""

    cmd: Command
    deps: PathList = Field(default_factory=list)
    outs: OutList = Field(default_factory=list)
    params: Annotated[list[str], BeforeValidator(_path_list)] = Field(default_factory=list)
    metrics: OutList = Field(default_factory=list)
    desc: str | None = None


class ManifestSpec(_Model):
    """The whole `MLproject` file."""

    name: str | None = None
    stages: dict[str, StageSpec] = Field(default_factory=dict)


def read_manifest(path: Path, memo: DocumentMemo | None = None) -> tuple[ManifestSpec, YamlDoc]:
    """Load and validate a manifest; raise ManifestError naming file, line and column."""
    doc = load_yaml(path, memo, path.name)
    if doc.data is None:
        raise doc.error((), "the manifest is empty", "declare at least `stages:`")
    if not isinstance(doc.data, dict):
        raise doc.error((), "the manifest must be a mapping with `name` and `stages`")
    try:
        spec = ManifestSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise _first_error(doc, exc) from None
    _check_stage_names(doc, spec)
    return spec, doc


def _check_stage_names(doc: YamlDoc, spec: ManifestSpec) -> None:
    for name in spec.stages:
        if not STAGE_NAME.match(name):
            raise doc.error(
                ("stages", name),
                f"invalid stage name {name!r}",
                "use letters, digits, '_', '-' and '.' (starting with a letter, digit or '_')",
            )


def _first_error(doc: YamlDoc, exc: ValidationError) -> ManifestError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = _yaml_loc(err["loc"])
    message, hint = _describe(err, loc)
    more = len(errors) - 1
    if more:
        hint = (hint + "; " if hint else "") + f"{more} more problem(s) after fixing this one"
    return doc.error(loc, message, hint, at_key=err["type"] == "extra_forbidden")


def _yaml_loc(loc: tuple[int | str, ...]) -> Loc:
    """Drop pydantic's validator-name steps so the path matches the YAML document."""
    return tuple(s for s in loc if isinstance(s, int) or not s.startswith("function-"))


_TYPE_WORDS = {
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "int_type": "an integer",
    "tuple_type": "a list",
}


def _describe(err: ErrorDetails, loc: Loc) -> tuple[str, str | None]:
    kind = err["type"]
    field = str(loc[-1]) if loc else ""
    if kind == "missing":
        return f"missing required key {field!r}", _missing_hint(field)
    if kind == "extra_forbidden":
        return f"unknown key {field!r}", _did_you_mean(field, _known_keys(loc))
    if kind in _TYPE_WORDS:
        got = type(err["input"]).__name__ if err["input"] is not None else "null"
        return f"expected {_TYPE_WORDS[kind]}, got {_yaml_type(got)}", None
    return str(err["msg"]).removeprefix("Value error, "), None


def _yaml_type(python_type: str) -> str:
    return {
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "list": "a list",
        "dict": "a mapping",
        "bool": "a bool",
    }.get(python_type, python_type)


def _missing_hint(field: str) -> str | None:
    if field == "cmd":
        return "every stage needs `cmd:`, the shell command that produces its outs"
    return None


def _known_keys(loc: Loc) -> list[str]:
    parent = loc[:-1]
    if not parent:
        return list(ManifestSpec.model_fields)
    if len(parent) == 2 and parent[0] == "stages":
        return list(StageSpec.model_fields)
    if len(parent) >= 4 and parent[2] in ("outs", "metrics"):
        return [f for f in OutSpec.model_fields if f != "path"]
    return []


def _did_you_mean(field: str, known: list[str]) -> str:
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known keys: " + ", ".join(known) if known else "remove it"
