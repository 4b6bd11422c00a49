"""`save`: a model object and a data sample → a model package directory, written atomically.

The package is built in a temporary sibling directory and moved into place, so a reader (or a
killed stage) never sees half a package. Its bytes depend only on the model, the sample and the
env (no timestamps, no uuids), so the same model hashes the same on every run.

Only a package this tool wrote (an `MLmodel` with a `pipeline` section), an empty directory or a
new path is replaced: `save(m, ".")`, the project or a folder of the user's own files is refused,
never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError
from pipeline.models import examples, flavors, requirements
from pipeline.models.lazy import library
from pipeline.models.mlmodel import FORMAT, MLMODEL, ModelInfo, dumps, parse_mlmodel
from pipeline.models.signature import infer


def save(
    obj: Any, path: str | os.PathLike[str], sample: Any, *, trusted: bool = False
) -> ModelInfo:
    """Package `obj` at `path` in MLflow's Models format, with a signature inferred from `sample`.

    scikit-learn → skops, xgboost → `.ubj`, lightgbm → booster text; anything else only with
    `trusted=True` (pickle), and loading it then needs trust too.
    """
    target = Path(path).absolute()
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        data = _build(obj, sample, build, trusted=trusted)
        build.chmod(0o755)  # mkdtemp's 0700 would follow the package into the cache
        _publish(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return parse_mlmodel(data, target)


def _build(obj: Any, sample: Any, dest: Path, *, trusted: bool) -> dict[str, Any]:
    if sample is None:
        raise ModelError("save() needs a sample", "pass a few rows of the model's input: sample=X")
    written = flavors.write(obj, dest, trusted=trusted)
    predictions = _predict(written, _model_input(sample))
    signature = infer(sample, predictions)
    example_info = examples.write_examples(sample, dest)
    requirements.write_env_files(dest)
    lock, kind = requirements.copy_lock(dest)
    return _write_mlmodel(
        dest,
        {
            "flavors": written.flavors,
            "signature": signature.to_mlmodel(),
            "saved_input_example_info": example_info,
            "model_size_bytes": _size(dest),
            "pipeline": {
                "format": FORMAT,
                "flavor": written.flavor,
                "trusted": written.trusted_required,
                "lock": lock,
                "env_kind": kind,
                # No run id: the bytes would differ on every run (run-cache, `verify`, the
                # registry by hash); the run that made a package is found by its hash.
                "stage": os.environ.get("PIPELINE_STAGE") or None,
            },
        },
    )


def _model_input(sample: Any) -> Any:
    """What the model is called with: records become a DataFrame, as the server will pass."""
    if isinstance(sample, list) and sample and all(isinstance(r, dict) for r in sample):
        return library("pandas").DataFrame.from_records(sample)
    return sample


def _predict(written: flavors.Written, sample: Any) -> Any:
    try:
        return written.predict(sample)
    except Exception as exc:  # the model's own failure, whatever its kind
        raise ModelError(
            f"the model cannot predict its sample: {type(exc).__name__}: {exc}",
            "pass a sample shaped like the model's input (the rows it was fitted on)",
        ) from None


def _size(dest: Path) -> int:
    return sum(p.stat().st_size for p in sorted(dest.rglob("*")) if p.is_file())


def _write_mlmodel(dest: Path, data: dict[str, Any]) -> dict[str, Any]:
    (dest / MLMODEL).write_text(dumps(data), encoding="utf-8")
    return data


def _check_target(target: Path) -> None:
    """Refuse a target whose replacement would delete what this tool did not write."""
    real = target.resolve()
    for kept in _protected():
        if kept.is_relative_to(real):  # replacing `real` would take `kept` with it
            raise ModelError(
                f"will not save a model over {target}: it holds the current directory or project",
                "save into a new subfolder, e.g. save(model, 'models/mymodel', sample=...)",
            )
    if target.is_symlink() or not target.exists() or _replaceable(target):
        return
    raise ModelError(
        f"will not save a model over {target}: it exists and is not a model package",
        "save to a new or empty folder, or remove it first if its files can go",
    )


def _protected() -> list[Path]:
    """The directories a save must never replace: the cwd and the project (with its parents)."""
    kept = [Path.cwd().resolve()]
    if root := os.environ.get("PIPELINE_ROOT"):
        kept.append(Path(root).resolve())
    return kept


def _replaceable(target: Path) -> bool:
    """An empty directory, or a package this tool wrote: its MLmodel has a `pipeline` section."""
    if not target.is_dir():
        return False
    if (target / ".pipeline").exists():  # a project root, even one that is not the cwd
        return False
    if not any(target.iterdir()):
        return True
    try:
        data = json.loads((target / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("pipeline"), dict)


def _publish(build: Path, target: Path) -> None:
    """Move the finished package to `target`, replacing what was there."""
    if not (target.exists() or target.is_symlink()):
        os.replace(build, target)
        return
    aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    os.replace(target, aside)  # a directory cannot be replaced in one rename: step it aside
    os.replace(build, target)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink()
