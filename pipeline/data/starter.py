"""`pipeline init`: a commented starter manifest and params file, and the `.gitignore` block.

The starter pipeline runs as written, with bash and coreutils only (no environment to build),
so `pipeline repro` works right after `init`; its comments explain every key. Nothing that
exists is overwritten: a project that is already there is refused before any file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.atomic import atomic_write_text
from pipeline.core.lockfile import Lock
from pipeline.core.statmemo import init_state_dir
from pipeline.data.add import tracked_paths
from pipeline.data.gitignore import update_gitignore
from pipeline.errors import UsageError
from pipeline.load.project import MANIFEST_NAMES, STATE_DIR, load_project

PARAMS = "params.yaml"

_HEADER_MLPROJECT = """\
# MLproject: the pipeline manifest, written by `pipeline init` (edit it freely).
# `pipeline repro` runs the stages below in dependency order and skips every stage whose
# command, params, deps and outs are unchanged since its last run; `pipeline status` says
# which stages would run, and why. MLflow reads this file too (its `name` and entry points).
name: starter

# python_env: python_env.yaml   # optional: the environment the stages run in (MLflow's key);
#                               # without it, stages run in the environment you run pipeline in.

"""

_HEADER_DVC = """\
# dvc.yaml: the pipeline manifest, written by `pipeline init --dvc` (edit it freely). DVC
# reads it unchanged. `pipeline repro` runs the stages below in dependency order and skips
# every stage whose command, params, deps and outs are unchanged since its last run;
# `pipeline status` says which stages would run, and why.

"""

_STAGES = """\
stages:
  prepare:
    # desc: a one-line summary of what the stage does (`pipeline dag` shows it).
    desc: Write a tiny dataset
    # cmd: a bash command, run from this directory. ${prepare.rows} is filled in from
    # params.yaml and tracked: editing it there reruns this stage and everything downstream.
    cmd: mkdir -p data && seq ${prepare.rows} > data/numbers.txt
    # outs: files or directories the stage writes. They are deleted before it runs, hashed
    # into pipeline.lock, stored in the cache (`pipeline checkout` brings them back after a
    # `git checkout`) and listed in .gitignore: git keeps the lock, the cache keeps the bytes.
    outs: [data/numbers.txt]

  train:
    desc: Fit a (pretend) model on the dataset and score it
    cmd: >-
      mkdir -p models metrics &&
      echo "factor ${train.factor}" > models/model.txt &&
      echo "{\\"score\\": $(( $(wc -l < data/numbers.txt) * ${train.factor} ))}"
      > metrics/scores.json
    # deps: files or directories the stage reads; a change to any of them reruns it. An out
    # of another stage listed here is what links the stages: prepare runs first.
    deps: [data/numbers.txt]
    # params: keys (or whole sections) of params.yaml the stage's code reads by itself;
    # a change to one reruns the stage. Keys used as ${...} in cmd are tracked without it.
    params: [train.factor]
    outs: [models/model.txt]
    # metrics: small JSON (or YAML) files of numbers to compare between runs:
    # `pipeline metrics show`, `pipeline compare`.
    metrics: [metrics/scores.json]
"""

_PARAMS = """\
# Parameters of the stages (written by `pipeline init`). A stage that uses a key, as
# ${section.key} in its cmd or listed under its `params:`, reruns when that value changes;
# `pipeline run --param train.factor=5` tries a value without editing this file.
prepare:
  rows: 10

train:
  factor: 3
"""


@dataclass(frozen=True)
class Started:
    """What `init` wrote: the manifest, the params file, and whether .gitignore changed."""

    manifest: Path
    params: Path
    gitignore_changed: bool


def init_project(root: Path, *, dvc: bool = False) -> Started:
    """Write the starter manifest (`dvc.yaml` with `dvc`, else `MLproject`) and params file,
    then `.pipeline/` and the `.gitignore` block; refuse if any of those files exists."""
    _refuse_existing(root)
    manifest = root / ("dvc.yaml" if dvc else "MLproject")
    atomic_write_text(root / PARAMS, _PARAMS)
    atomic_write_text(manifest, (_HEADER_DVC if dvc else _HEADER_MLPROJECT) + _STAGES)
    init_state_dir(root / STATE_DIR)
    project = load_project(manifest)
    changed = update_gitignore(root, tracked_paths(project, Lock()))
    return Started(manifest, root / PARAMS, changed)


def _refuse_existing(root: Path) -> None:
    """One line naming every file a starter would replace (a manifest of either kind counts:
    MLproject wins over dvc.yaml, so adding one beside the other would change the project)."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", "create it first, or give another -C DIR")
    found = [name for name in (*MANIFEST_NAMES, PARAMS) if (root / name).exists()]
    if found:
        raise UsageError(
            f"{root.resolve()} already has {', '.join(found)}; `pipeline init` overwrites nothing",
            "edit the existing files, or run `pipeline init` in an empty directory",
        )
