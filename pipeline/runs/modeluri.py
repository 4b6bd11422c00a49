"""MLflow's model URIs: `models:/NAME@ALIAS`, `models:/NAME/N`, `models:/NAME/latest`, and
`runs:/RUN/PATH` (a file or directory a run wrote).

Parsing only: what a URI points at is found by `serve/refs.py` (packages) and `api.lineage`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import UsageError

MODELS = "models:/"
RUNS = "runs:/"
# Version numbers are stored as 32-bit integers (PostgreSQL's INTEGER): a larger one could
# never name a version, and SQLite raises OverflowError on it rather than finding nothing.
MAX_VERSION = 2**31 - 1
# What a registered package is named by (`xxh3_128:` and 32 hex digits): it becomes a folder
# name under .pipeline/tmp/models, so nothing else may pass, above all no `/` or `..`.
PACKAGE_HASH = re.compile(r"xxh3_128:[0-9a-f]{32}")
_FORMS = "models:/NAME@ALIAS, models:/NAME/N, models:/NAME/latest or runs:/RUN/PATH"


@dataclass(frozen=True)
class ModelUri:
    """A parsed `models:/` URI: exactly one of `alias` and `version` (an int or `latest`)."""

    name: str
    alias: str | None = None
    version: int | str | None = None

    @property
    def spec(self) -> int | str:
        """What `Registry.show` takes: a number, an alias or `latest`."""
        return self.alias if self.alias is not None else self.version or "latest"

    def __str__(self) -> str:
        return (
            f"{MODELS}{self.name}@{self.alias}"
            if self.alias
            else f"{MODELS}{self.name}/{self.version}"
        )


@dataclass(frozen=True)
class RunUri:
    """A parsed `runs:/RUN/PATH` URI (RUN: an id, a unique prefix or a name)."""

    run: str
    path: str

    def __str__(self) -> str:
        return f"{RUNS}{self.run}/{self.path}"


def is_uri(ref: str) -> bool:
    return ref.startswith((MODELS, RUNS))


def parse(ref: str) -> ModelUri | RunUri:
    """Parse a model URI; anything else is a `UsageError` naming the forms."""
    if ref.startswith(MODELS):
        return _models(ref, ref[len(MODELS) :])
    if ref.startswith(RUNS):
        run, _, path = ref[len(RUNS) :].strip("/").partition("/")
        if run and path:
            return RunUri(run, path.strip("/"))
    raise _bad(ref)


def _models(ref: str, rest: str) -> ModelUri:
    rest = rest.strip("/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if name and alias and "/" not in name + alias:
            return ModelUri(name, alias=alias)
        raise _bad(ref)
    name, _, version = rest.partition("/")
    if not name or "/" in version:
        raise _bad(ref)
    if is_number(version) and int(check_version(version)) > 0:
        return ModelUri(name, version=int(version))
    if version.lower() in ("latest", ""):
        return ModelUri(name, version="latest")
    raise UsageError(
        f"{ref}: {version!r} is not a version",
        "give a version number, `latest`, or an alias as models:/NAME@ALIAS"
        " (stages such as Production are aliases here)",
    )


def is_number(text: str) -> bool:
    """Whether `text` is written in ASCII digits (`str.isdigit` also takes `²` and `٣`)."""
    return text.isascii() and text.isdigit()


def check_version(number: int | str) -> int | str:
    """`number` (an int, or ASCII digits), if it can be a version number; a `UsageError` if it
    is too large to be one. Digits are measured before `int()`, which refuses over 4300."""
    text = str(number).lstrip("0") if isinstance(number, str) else ""
    if len(text) > len(str(MAX_VERSION)) or int(number) > MAX_VERSION:
        shown = text[:20] + "…" if len(text) > 20 else str(number)
        raise UsageError(
            f"version {shown} is out of range", f"versions are numbered 1 to {MAX_VERSION}"
        )
    return number


def _bad(ref: str) -> UsageError:
    return UsageError(f"{ref!r} is not a model URI", f"the forms are {_FORMS}")
