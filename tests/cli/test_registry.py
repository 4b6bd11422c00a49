"""`pipeline registry …` and `pipeline lineage models:/…` as a user runs them: real CLI
subprocesses on a reproduced project whose `train` stage writes a model package."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.support import _error, _json, _ok
from tests.conftest import Project

TRAIN = """\
import json, os, sys
lr = sys.argv[1]
os.makedirs("models/churn", exist_ok=True)
with open("data/clean.txt") as fh:
    data = fh.read()
with open("models/churn/model.txt", "w") as fh:
    fh.write(data + "lr=" + lr + "\\n")
with open("models/churn/MLmodel", "w") as fh:
    json.dump({"flavors": {}, "pipeline": {"format": 1}}, fh, indent=2, sort_keys=True)
with open("metrics.json", "w") as fh:
    json.dump({"score": len(data) * float(lr)}, fh)
"""

MANIFEST: dict[str, Any] = {
    "stages": {
        "prepare": {
            "cmd": "mkdir -p data && tr a-z A-Z < raw.txt > data/clean.txt",
            "deps": ["raw.txt"],
            "outs": ["data/clean.txt"],
        },
        "train": {
            "cmd": "python train.py ${train.lr}",
            "deps": ["data/clean.txt", "train.py"],
            "params": ["train.lr"],
            "outs": ["models/churn"],
            "metrics": [{"metrics.json": {"cache": False}}],
        },
    },
    "artifacts": {"churn": {"path": "models/churn", "type": "model", "desc": "churn model"}},
}


def model_project(project: Project, lr: float = 0.1) -> Project:
    """raw.txt → prepare → train (writes the package models/churn), committed and reproduced."""
    import yaml

    project.write("dvc.yaml", yaml.safe_dump(MANIFEST, sort_keys=False))
    project.write("train.py", TRAIN)
    project.write("raw.txt", "some raw data\n")
    project.params({"train": {"lr": lr}})
    project.write(".gitignore", "/models\n/data\n")
    project.commit(message="the model project")
    _ok(project.cli("repro"))
    return project


def test_register_alias_tag_show_and_history(project: Project) -> None:
    model_project(project)
    added = _json(project.cli("registry", "add", "churn", "-m", "baseline", "--json"))
    assert (added["version"], added["new"], added["stage"], added["path"]) == (
        1,
        True,
        "train",
        "models/churn",
    )
    again = _json(project.cli("registry", "add", "churn", "models/churn", "--json"))
    assert (again["version"], again["new"]) == (1, False)

    # A second model: another lr, reproduced, registered through runs:/.
    project.params({"train": {"lr": 0.5}})
    _ok(project.cli("repro"))
    second = _json(project.cli("registry", "add", "churn", "runs:/latest/models/churn", "--json"))
    assert second["version"] == 2 and second["hash"] != added["hash"]

    out = _ok(project.cli("registry", "alias", "churn", "champion", "1", "-m", "safe")).stdout
    assert "churn@champion: - → v1" in out
    _ok(project.cli("registry", "alias", "churn", "champion", "2", "-m", "better"))
    _ok(project.cli("registry", "tag", "churn/2", "validation=passed"))
    _ok(project.cli("registry", "tag", "churn", "owner=ana"))

    shown = _json(project.cli("registry", "show", "churn@champion", "--json"))
    assert (shown["version"], shown["aliases"], shown["tags"]) == (
        2,
        ["champion"],
        {"validation": "passed"},
    )
    listed = _json(project.cli("registry", "list", "--json"))
    assert listed[0]["aliases"] == {"champion": 2} and listed[0]["tags"] == {"owner": "ana"}
    table = _ok(project.cli("registry", "show", "churn")).stdout
    assert table.splitlines()[1].split()[:2] == ["v2", "champion"]

    history = _json(project.cli("registry", "history", "churn", "--json"))
    moves = [(e["action"], e["from_version"], e["to_version"], e["message"]) for e in history]
    assert moves[:4] == [
        ("register", None, 1, "baseline"),
        ("register", None, 2, None),
        ("alias", None, 1, "safe"),
        ("alias", 1, 2, "better"),
    ]
    text = _ok(project.cli("registry", "history", "churn")).stdout
    assert "better" in text and "churn@champion: v1 → v2" in text

    _ok(project.cli("registry", "alias", "--rm", "churn", "champion"))
    assert _json(project.cli("registry", "show", "churn/2", "--json"))["aliases"] == []


def test_mistakes_are_explained(project: Project) -> None:
    model_project(project)
    _ok(project.cli("registry", "add", "churn"))
    reserved = _error(project.cli("registry", "alias", "churn", "latest", "1"), 2)
    assert "reserved" in reserved[0]
    unknown = _error(project.cli("registry", "show", "crunch/1"), 2)
    assert unknown == ["error: no registered model 'crunch'", "hint: registered models: churn"]
    missing = _error(project.cli("registry", "alias", "churn", "champion", "9"), 2)
    assert missing[1] == "hint: its versions: 1"
    notpkg = _error(project.cli("registry", "add", "other", "data"), 2)
    assert "no MLmodel file" in notpkg[0]
    bad_uri = _error(project.cli("registry", "add", "other", "models:/churn/Production"), 2)
    assert "not a version" in bad_uri[0]


def test_help_explains_every_command(project: Project) -> None:
    top = _ok(project.cli("registry", "--help")).stdout
    for command in ("add", "alias", "export-tags", "history", "list", "show", "tag"):
        assert command in top
    assert "runs:/RUN/PATH" in _ok(project.cli("registry", "add", "--help")).stdout
    assert "reserved" in _ok(project.cli("registry", "alias", "--help")).stdout
    assert "models:/NAME@ALIAS" in _ok(project.cli("lineage", "--help")).stdout


def test_lineage_of_a_registered_model_back_to_raw_data(project: Project) -> None:
    model_project(project)
    _ok(project.cli("registry", "add", "churn"))
    _ok(project.cli("registry", "alias", "churn", "champion", "1"))
    found = _json(project.cli("lineage", "models:/churn@champion", "--json"))
    head = project.git("rev-parse", "HEAD").strip()
    assert (found["name"], found["version"], found["stage"]) == ("churn", 1, "train")
    assert (found["commit"], found["dirty"]) == (head, False)
    assert found["params"] == {"train.lr": 0.1}
    assert found["metrics"] == {"metrics.json:score": pytest.approx(1.4)}
    assert set(found["environment"]) == {"name", "digest", "packages"}
    assert found["rebuild"][0] == f"git checkout {head} && pipeline repro train"
    clean = next(i for i in found["lineage"]["inputs"] if i["path"] == "data/clean.txt")
    assert clean["stage"] == "prepare"
    (raw,) = clean["inputs"]
    assert raw["path"] == "raw.txt" and "run" not in raw  # raw data, by hash
    assert found["lineage"] == _json(project.cli("lineage", "models:/churn/1", "--json"))["lineage"]
    by_run = _json(project.cli("lineage", "runs:/latest/models/churn", "--json"))
    assert by_run["hash"] == found["hash"] and by_run["version"] is None

    text = _ok(project.cli("lineage", "models:/churn@champion")).stdout
    assert "churn v1" in text and "rebuild  git checkout" in text
    assert "raw.txt" in text and "raw data" in text


def test_export_tags_from_the_cli(project: Project) -> None:
    model_project(project)
    _ok(project.cli("registry", "add", "churn"))
    _ok(project.cli("registry", "alias", "churn", "champion", "1"))
    dry = _json(project.cli("registry", "export-tags", "--dry", "--json"))
    assert [t["tag"] for t in dry["tags"]] == ["churn@v1", "churn#champion#1"]
    assert project.git("tag", "--list") == ""
    _ok(project.cli("registry", "export-tags"))
    assert project.git("tag", "--list").split() == ["churn#champion#1", "churn@v1"]
