"""The `MLmodel` file of a package: writing ours, and reading ours or MLflow's into `ModelInfo`.

Ours is JSON (valid YAML, so MLflow reads it; a model env needs no PyYAML). Reading takes the
already parsed mapping: this package never imports yaml, the tool parses MLflow's block-YAML
files with `core/yamlio` and hands the dict over. Trust never comes from the file: a package
needs trust when its format can run code (pickle), whatever its `pipeline.trusted` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import ModelError
from pipeline.models.signature import Signature

MLMODEL = "MLmodel"
FORMAT = 1
_NATIVE = ("sklearn", "xgboost", "lightgbm")
_MODEL_FILE_KEYS = ("pickled_model", "data")
_UNSAFE_FORMATS = frozenset({"pickle", "cloudpickle"})


@dataclass(frozen=True)
class ModelInfo:
    """What a package holds, as its MLmodel says (model_file and lock are names inside `path`)."""

    path: Path
    flavor: str  # sklearn | xgboost | lightgbm | pickle
    model_file: str
    signature: Signature | None
    trusted_required: bool
    lock: str | None
    requirements: tuple[str, ...]
    python_version: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def native(self) -> dict[str, Any]:
        """The native flavor's section (`flavors.sklearn`, ...), `{}` for none."""
        flavors = self.raw.get("flavors") or {}
        name = "sklearn" if self.flavor == "pickle" else self.flavor
        section = flavors.get(name)
        return section if isinstance(section, dict) else {}


def dumps(data: dict[str, Any]) -> str:
    """MLmodel's text: sorted JSON, so the same model gives the same bytes."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_package(path: Path | str) -> ModelInfo:
    """The ModelInfo of a package dir whose MLmodel is JSON (ours); stdlib only."""
    file = _mlmodel_file(Path(path))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{file}: no MLmodel file", "is this a model package directory?") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(
            f"{file}: not a JSON MLmodel: {exc}",
            "a block-YAML MLmodel (written by MLflow) is read by the tool, not inside a model env",
        ) from None
    return parse_mlmodel(data, file)


def parse_mlmodel(data: Any, path: Path | str) -> ModelInfo:
    """Validate a parsed MLmodel mapping; `path` is the package dir or its MLmodel file."""
    file = _mlmodel_file(Path(path))
    try:
        return _parse(data, file)
    except ModelError as exc:
        raise ModelError(f"{file}: {exc.message}", exc.hint or _HINT) from None


_HINT = "MLmodel must have `flavors` with `python_function` and one of sklearn/xgboost/lightgbm"


def _mlmodel_file(path: Path) -> Path:
    return path if path.name == MLMODEL else path / MLMODEL


def _parse(data: Any, file: Path) -> ModelInfo:
    if not isinstance(data, dict):
        raise ModelError(f"expected a mapping, found {type(data).__name__}")
    flavors = data.get("flavors")
    if not isinstance(flavors, dict) or not isinstance(flavors.get("python_function"), dict):
        raise ModelError("no `flavors.python_function` section")
    native_name = next((n for n in _NATIVE if isinstance(flavors.get(n), dict)), None)
    if native_name is None:
        raise ModelError(f"no supported native flavor among {sorted(flavors)}")
    native = flavors[native_name]
    model_file = _model_file(native, flavors["python_function"])
    unsafe = native_name == "sklearn" and native.get("serialization_format") != "skops"
    ours = data["pipeline"] if isinstance(data.get("pipeline"), dict) else {}
    signature = data.get("signature")
    return ModelInfo(
        path=file.parent,
        flavor="pickle" if unsafe else native_name,
        model_file=model_file,
        signature=None if signature is None else Signature.from_mlmodel(signature),
        trusted_required=unsafe or bool(ours.get("trusted")),
        lock=_relative(ours.get("lock"), "pipeline.lock") if ours.get("lock") else None,
        requirements=_requirements(file.parent),
        python_version=_optional_str(flavors["python_function"].get("python_version")),
        raw=data,
    )


def _model_file(native: dict[str, Any], pyfunc: dict[str, Any]) -> str:
    for key in _MODEL_FILE_KEYS:
        if native.get(key):
            return _relative(native[key], key)
    for key in ("model_path", "data"):
        if pyfunc.get(key):
            return _relative(pyfunc[key], key)
    raise ModelError("the native flavor names no model file (`pickled_model` or `data`)")


def _relative(value: Any, key: str) -> str:
    """A file name inside the package: relative, without `..`, so it cannot point elsewhere."""
    if not isinstance(value, str) or not value:
        raise ModelError(f"`{key}` must be a file name, found {value!r}")
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts or "\\" in value:
        raise ModelError(f"`{key}` must name a file inside the package, found {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _requirements(package: Path) -> tuple[str, ...]:
    try:
        text = (package / "requirements.txt").read_text(encoding="utf-8")
    except OSError:
        return ()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("-"))
