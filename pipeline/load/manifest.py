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

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from pipeline.core.yamlio import DocumentMemo, Loc, YamlDoc, load_yaml
from pipeline.errors import ManifestError
from pipeline.load.envkind import EnvKind

STAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _command(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected a command string or a non-empty list of command strings")


def _list(value: Any) -> Any:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected a list, e.g. [data/raw.csv, src/train.py]")
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


def _params_entry(value: Any) -> Any:
    """`key`, or `{file: [keys]}`, or `{file: null}` for every param in the file."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        file, keys = next(iter(value.items()))
        if isinstance(file, str) and (keys is None or _str_list(keys)):
            return {file: keys}
    raise ValueError("expected a params key, or {file: [key, ...]}, or {file: null} for all")


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `"90s"`, `"10m"`, `"1h30m"` or `"1.5h"`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match and any(match.groups()):
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        total = hours * 3600 + minutes * 60 + seconds
        if total > 0:
            return total
    raise ValueError("expected a positive duration such as 90, '30s', '10m' or '1h30m'")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OutSpec(_Model):
    """One declared output (`outs`/`metrics` entry) and its flags (DVC's names)."""

    path: str
    cache: bool = True
    persist: bool = False
    push: bool = True
    remote: str | None = None
    desc: str | None = None
    type: str | None = None
    labels: list[str] = Field(default_factory=list)
    meta: Any = None
    checkpoint: bool = False  # accepted for DVC 2.x files; it has no effect


class PlotSpec(OutSpec):
    """A `plots` entry: an output plus how to draw it."""

    template: str | None = None
    x: Any = None
    y: Any = None
    x_label: str | None = None
    y_label: str | None = None
    title: str | None = None
    header: bool | None = None


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def _memory(value: Any) -> Any:
    """`8GB`, `512MiB`, `1e9` → bytes; anything else is left for the type check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return value
    found = _AMOUNT.fullmatch(value)
    if found is None or found.group(2).lower() not in _UNITS:
        raise ValueError(f"not an amount of memory: {value!r} (say e.g. 8GB or 512MiB)")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


class Resources(_Model):
    """What a stage holds while it runs: `cpus` count against `-j`; `gpus`, `memory` (bytes,
    or a number with a unit: `8GB`, `512MiB`) and any other name are what a cluster worker
    must declare to take the stage (`dask worker --resources "gpus=1"`)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    cpus: Annotated[int, Field(ge=1)] = 1
    gpus: Annotated[int, Field(ge=0)] = 0
    memory: Annotated[int, Field(ge=1), BeforeValidator(_memory)] | None = None

    @model_validator(mode="after")
    def _custom_are_amounts(self) -> Resources:
        for name, value in (self.model_extra or {}).items():
            close = difflib.get_close_matches(name, ["cpus", "gpus", "memory"], 1, 0.6)
            if close:  # `gpu: 1` would otherwise be a custom resource no worker declares
                raise ValueError(f"unknown resource {name!r}: did you mean {close[0]!r}?")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"resource {name!r} must be a non-negative number")
        return self

    def requests(self) -> dict[str, float]:
        """What a worker must have free beyond a thread: gpus, memory, custom names."""
        found: dict[str, float] = {k: float(v) for k, v in (self.model_extra or {}).items()}
        if self.gpus:
            found["gpus"] = float(self.gpus)
        if self.memory is not None:
            found["memory"] = float(self.memory)
        return found


Command = Annotated[tuple[str, ...], BeforeValidator(_command)]
PathList = Annotated[list[str], BeforeValidator(_list)]
OutList = Annotated[list[Annotated[OutSpec, BeforeValidator(_out_entry)]], BeforeValidator(_list)]
PlotList = Annotated[list[Annotated[PlotSpec, BeforeValidator(_out_entry)]], BeforeValidator(_list)]
ParamEntry = Annotated[str | dict[str, list[str] | None], BeforeValidator(_params_entry)]
VarsList = Annotated[list[str | dict[str, Any]], BeforeValidator(_list)]


class StageSpec(_Model):
    """One stage definition (after `foreach`/`matrix` expansion and templating)."""

    cmd: Command
    wdir: str = "."
    deps: PathList = Field(default_factory=list)
    outs: OutList = Field(default_factory=list)
    metrics: OutList = Field(default_factory=list)
    plots: PlotList = Field(default_factory=list)
    params: Annotated[list[ParamEntry], BeforeValidator(_list)] = Field(default_factory=list)
    frozen: bool = False
    always_changed: bool = False
    desc: str | None = None
    meta: Any = None
    vars: VarsList = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    timeout: Annotated[
        float | None, BeforeValidator(lambda v: None if v is None else parse_duration(v))
    ] = None
    retries: Annotated[int, Field(ge=0)] = 0
    env: str | None = None


def _env_entry(value: Any) -> Any:
    """`system`, or a mapping naming one spec file by its kind."""
    if value == "system":
        return {"system": True}
    if isinstance(value, dict):
        return value
    raise ValueError(
        "expected `system` or a mapping such as {python_env: envs/train.yaml}"
        " (kinds: python_env, requirements, conda_env, conda_lock)"
    )


def _version(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f'write the version as a string, e.g. python: "{value}"')
    return str(value) if isinstance(value, int) else value


class EnvEntrySpec(_Model):
    """One named environment: exactly one spec file (or `system`), optionally a Python."""

    python_env: str | None = None
    requirements: str | None = None
    conda_env: str | None = None
    conda_lock: str | None = None
    system: bool = False
    python: Annotated[str | None, BeforeValidator(_version)] = None

    @model_validator(mode="after")
    def _one_kind(self) -> EnvEntrySpec:
        kinds = [k for k in ENV_KINDS if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("name exactly one of " + ", ".join(ENV_KINDS) + f" (got {len(kinds)})")
        if self.python is not None and not EnvKind(kinds[0]).is_venv:
            raise ValueError(f"`python` applies to pip envs; a {kinds[0]} env names its own")
        return self


ENV_KINDS = tuple(kind.value for kind in EnvKind)  # also the keys of an `environments:` entry
PARAM_TYPES = ("float", "int", "string", "str", "bool", "path", "uri")


def _param_decl(value: Any) -> Any:
    """MLflow's short form `alpha: float` is `{type: float}`."""
    return {"type": value} if isinstance(value, str) else value


class ParamDecl(_Model):
    """A typed parameter (MLflow's `parameters`): what `--param`/`-P` values must be."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    type: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None
    desc: str | None = None

    @model_validator(mode="after")
    def _known_type(self) -> ParamDecl:
        if self.type is not None and self.type not in PARAM_TYPES:
            raise ValueError(f"unknown type {self.type!r}; use one of " + ", ".join(PARAM_TYPES))
        return self


ParamDecls = dict[str, Annotated[ParamDecl, BeforeValidator(_param_decl)]]


class EntryPointSpec(_Model):
    """An MLflow entry point: a command template with typed `{name}` parameters."""

    command: str
    parameters: ParamDecls = Field(default_factory=dict)
    env: str | None = None


GENERATOR_KEYS = ("foreach", "do", "matrix")
ARTIFACT_NAME = re.compile(r"^[a-z0-9]([a-z0-9/-]*[a-z0-9])?$")  # DVC's rule, for `dvc get`


class ArtifactSpec(_Model):
    """A top-level `artifacts:` entry (DVC's model registry fields)."""

    path: str
    type: str | None = None
    desc: str | None = None
    labels: list[str] = Field(default_factory=list)
    meta: Any = None


class TopPlotSpec(_Model):
    """How a top-level plot is drawn; `x`/`y` name fields, or map data files to fields."""

    x: str | dict[str, str] | None = None
    y: str | list[str] | dict[str, str | list[str]] | None = None
    x_label: str | None = None
    y_label: str | None = None
    title: str | None = None
    template: str | None = None


def _plot_entry(value: Any) -> Any:
    """`path`, or `{path_or_id: {x: ..., y: ...}}` / `{path_or_id: null}`, as DVC writes them."""
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, dict) and len(value) == 1:
        key, props = next(iter(value.items()))
        if isinstance(key, str) and (props is None or isinstance(props, dict)):
            return value
    raise ValueError("expected a path, or {path or id: {x: ..., y: ..., template: ...}}")


PlotEntry = Annotated[dict[str, TopPlotSpec | None], BeforeValidator(_plot_entry)]


class ManifestSpec(_Model):
    """The whole manifest (`MLproject` or `dvc.yaml`); stage entries are validated later."""

    name: str | None = None
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)
    vars: VarsList = Field(default_factory=list)
    params: PathList = Field(default_factory=list)
    metrics: PathList = Field(default_factory=list)
    plots: Annotated[list[PlotEntry], BeforeValidator(_list)] = Field(default_factory=list)
    artifacts: dict[str, ArtifactSpec] = Field(default_factory=dict)
    datasets: Annotated[list[dict[str, Any]], BeforeValidator(_list)] = Field(default_factory=list)
    python_env: str | None = None
    conda_env: str | None = None
    environments: dict[str, Annotated[EnvEntrySpec, BeforeValidator(_env_entry)]] = Field(
        default_factory=dict
    )
    parameters: ParamDecls = Field(default_factory=dict)
    entry_points: dict[str, EntryPointSpec] = Field(default_factory=dict)
    docker_env: Any = None  # MLflow's; refused with a clear message by project.py

    @model_validator(mode="after")
    def _one_default_env(self) -> ManifestSpec:
        if self.python_env and self.conda_env:
            raise ValueError("set python_env or conda_env, not both: they name the default env")
        return self


def read_manifest(path: Path, memo: DocumentMemo | None = None) -> tuple[ManifestSpec, YamlDoc]:
    """Load and validate a manifest's top level; stage bodies are checked by `validate_stage`."""
    doc = load_yaml(path, memo, path.name)
    if doc.data is None:
        raise doc.error((), "the manifest is empty", "declare at least `stages:`")
    if not isinstance(doc.data, dict):
        raise doc.error((), "the manifest must be a mapping with `stages`")
    try:
        spec = ManifestSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise _first_error(doc, exc, (), ManifestSpec) from None
    _check_stage_names(doc, spec)
    _check_artifact_names(doc, spec)
    return spec, doc


def validate_stage(doc: YamlDoc, loc: Loc, body: dict[str, Any]) -> StageSpec:
    """Validate one (expanded, rendered) stage definition found at `loc` in the manifest."""
    try:
        return StageSpec.model_validate(body)
    except ValidationError as exc:
        raise _first_error(doc, exc, loc, StageSpec) from None


def _check_stage_names(doc: YamlDoc, spec: ManifestSpec) -> None:
    for name in spec.stages:
        if not STAGE_NAME.fullmatch(name):  # `match` with `$` would accept a final newline
            raise doc.error(
                ("stages", name),
                f"invalid stage name {name!r}",
                "use letters, digits, '_', '-' and '.' (starting with a letter, digit or '_');"
                " '@' is reserved for foreach/matrix members",
                at_key=True,
            )


def _check_artifact_names(doc: YamlDoc, spec: ManifestSpec) -> None:
    for name in spec.artifacts:
        if not ARTIFACT_NAME.fullmatch(name):
            raise doc.error(
                ("artifacts", name),
                f"invalid artifact name {name!r}",
                "use lowercase letters, digits, '-' and '/', starting and ending with a letter"
                " or digit (DVC's rule)",
                at_key=True,
            )


def _first_error(
    doc: YamlDoc, exc: ValidationError, prefix: Loc, model: type[BaseModel]
) -> ManifestError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = _yaml_loc(err["loc"])
    message, hint = _describe(err, loc, model)
    more = len(errors) - 1
    if more:
        hint = (hint + "; " if hint else "") + f"{more} more problem(s) after fixing this one"
    return doc.error((*prefix, *loc), message, hint, at_key=err["type"] == "extra_forbidden")


def _yaml_loc(loc: tuple[int | str, ...]) -> Loc:
    """Drop pydantic's validator-name steps so the path matches the YAML document."""
    return tuple(
        s
        for s in loc
        if isinstance(s, int) or not (s in _UNION_STEPS or s.startswith(_UNION_PREFIXES))
    )


_UNION_STEPS = {"str", "int", "float", "bool", "none", "nullable"}
_UNION_PREFIXES = ("function-", "dict[", "list[", "tuple[")


_TYPE_WORDS = {
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "int_type": "an integer",
    "tuple_type": "a list",
    "float_type": "a number",
}


def _describe(err: ErrorDetails, loc: Loc, model: type[BaseModel]) -> tuple[str, str | None]:
    kind = err["type"]
    field = str(loc[-1]) if loc else ""
    if kind == "missing":
        return f"missing required key {field!r}", _missing_hint(field)
    if kind == "extra_forbidden":
        return f"unknown key {field!r}", _did_you_mean(field, _known_keys(loc, model))
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


# Top-level sections whose entries are models: (section, depth of the entry) → model.
_NESTED: dict[tuple[str | int, int], type[BaseModel]] = {
    ("environments", 2): EnvEntrySpec,
    ("artifacts", 2): ArtifactSpec,
    ("plots", 3): TopPlotSpec,
}


def _known_keys(loc: Loc, model: type[BaseModel]) -> list[str]:
    """The keys allowed where an unknown key `loc[-1]` was found."""
    parent = loc[:-1]
    if model is StageSpec and parent and parent[0] in ("outs", "metrics", "plots"):
        flags = PlotSpec if parent[0] == "plots" else OutSpec
        return [f for f in flags.model_fields if f != "path"]
    if model is StageSpec and parent == ("resources",):
        return list(Resources.model_fields)
    nested = _NESTED.get((parent[0], len(parent))) if parent else None
    if model is ManifestSpec and nested is not None:
        return list(nested.model_fields)
    if not parent:
        fields = list(model.model_fields)
        return [*fields, *GENERATOR_KEYS] if model is StageSpec else fields
    return []


def _did_you_mean(field: str, known: list[str]) -> str:
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.5)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known keys: " + ", ".join(known) if known else "remove it"
