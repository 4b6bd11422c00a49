"""The resolved stage: what planning and execution work with, whatever manifest it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.core.yamlio import Loc


@dataclass(frozen=True)
class Out:
    """A resolved output: project-relative path, its flags, and which list declared it."""

    path: str
    cache: bool = True
    persist: bool = False
    push: bool = True
    remote: str | None = None
    kind: str = "outs"  # "outs", "metrics" or "plots"
    loc: Loc = field(default=(), compare=False)
    # How a `plots` out is drawn (x, y, template, titles), sorted `(key, value)` pairs: drawing
    # is not running, so it takes no part in equality (nor in any fingerprint).
    plot: tuple[tuple[str, Any], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Stage:
    """A stage ready to plan: rendered commands, project-relative paths, the params it uses.

    `params` maps each params file to the leaf values the stage uses from it. `cmd_template`
    and `context` keep the commands as written and the values they were rendered with, so a
    plan can tell "cmd changed" from "the cmd only changed because a templated param did".
    """

    name: str
    cmd: tuple[str, ...]
    deps: tuple[str, ...]
    outs: tuple[Out, ...]
    params: dict[str, dict[str, Any]]
    desc: str | None = None
    cmd_template: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    cmd_style: str = ""  # "" quotes values (MLproject); "dvc:..." renders raw (template.Parsing)
    missing_params: tuple[str, ...] = ()  # `file:key` in `params:` but not in the file: fails
    wdir: str = "."
    cpus: int = 1
    resources: dict[str, float] = field(default_factory=dict)  # gpus, memory, custom: a worker's
    timeout: float | None = None
    retries: int = 0
    frozen: bool = False
    always_changed: bool = False
    group: str | None = None
    env: str | None = None  # a declared environment's name; None: the system's

    @property
    def out_paths(self) -> tuple[str, ...]:
        return tuple(o.path for o in self.outs)
