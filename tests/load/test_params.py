"""Params files: loading params.yaml, dotted-key parsing and lookup, flattening into tracked
leaves; and the other formats a dvc.yaml may list (JSON, TOML, Python), whole or by key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api import ReproOptions, plan, repro
from pipeline.errors import ManifestError
from pipeline.load.params import flatten, flatten_all, load_params_file, lookup, split_key, suggest
from pipeline.load.project import load_project
from tests.conftest import Project, dvc_yaml, reasons

# -- loading -------------------------------------------------------------------------------------


def test_missing_params_file_is_none(tmp_path: Path) -> None:
    assert load_params_file(tmp_path) is None


def test_empty_params_file_is_an_empty_mapping(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("# no params yet\n")
    params = load_params_file(tmp_path)
    assert params is not None
    assert (params.name, params.data) == ("params.yaml", {})


def test_params_file_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.1\n  layers: [64, 32]\nseed: 7\n")
    params = load_params_file(tmp_path)
    assert params is not None
    assert params.data == {"train": {"lr": 0.1, "layers": [64, 32]}, "seed": 7}


def test_params_file_must_be_a_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ManifestError) as exc:
        load_params_file(tmp_path)
    assert (
        exc.value.message == "params.yaml:1:1: a params file must be a mapping of names to values"
    )


# -- split_key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("lr", ["lr"]),
        ("train.lr", ["train", "lr"]),
        ("a.b.c", ["a", "b", "c"]),
        ("layers[0]", ["layers", 0]),
        ("model.layers[12].units", ["model", "layers", 12, "units"]),
        ("grid[1][2]", ["grid", 1, 2]),
        ("[3]", [3]),
        ("with space.and-dash", ["with space", "and-dash"]),
        ("models[resnet].depth", ["models", "resnet", "depth"]),  # a mapping key in brackets
        ("a[ 2 ]", ["a", 2]),
    ],
)
def test_split_key(key: str, parts: list[str | int]) -> None:
    assert split_key(key) == parts


@pytest.mark.parametrize("key", ["", ".", "a.", ".a", "a..b", "a[", "a[0]b", "a]", "a[0", "[]"])
def test_split_key_rejects_malformed_keys(key: str) -> None:
    with pytest.raises(KeyError):
        split_key(key)


_NAMES = st.text(
    alphabet=st.characters(blacklist_characters=".[]", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
)


_SEGMENTS = st.lists(st.one_of(_NAMES, st.integers(0, 10**6)), min_size=1, max_size=6).filter(
    lambda parts: isinstance(parts[0], str)
)


def _join(parts: list[str | int]) -> str:
    key = ""
    for part in parts:
        key += f"[{part}]" if isinstance(part, int) else ("." if key else "") + part
    return key


@given(_SEGMENTS)
def test_split_key_inverts_joining_segments(parts: list[str | int]) -> None:
    assert split_key(_join(parts)) == parts


@given(st.text(max_size=30))
def test_split_key_on_any_text_is_key_error_or_clean_segments(key: str) -> None:
    try:
        parts = split_key(key)
    except KeyError:
        return
    assert parts
    for part in parts:
        if isinstance(part, int):
            assert part >= 0
        else:
            assert part
            assert not set(part) & set("[]")


# -- lookup ----------------------------------------------------------------------------------

DATA: dict[str, Any] = {
    "train": {"lr": 0.1, "layers": [{"units": 64}, {"units": 32}], "on": True},
    "seed": 7,
    "nothing": None,
    "3": "three",
}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", 7),
        ("train.lr", 0.1),
        ("train.layers[1].units", 32),
        ("train.layers[0]", {"units": 64}),
        ("train.layers.0", {"units": 64}),  # DVC's `${list.0}` (issue 14)
        ("train.layers.1.units", 32),
        ("train.on", True),
        ("nothing", None),
        ("[3]", "three"),  # an index into a mapping falls back to the string key
        ("train", DATA["train"]),
    ],
)
def test_lookup(key: str, value: Any) -> None:
    assert lookup(DATA, key) == value


@pytest.mark.parametrize(
    "key", ["nope", "train.nope", "train.lr.x", "train.layers[2]", "seed[0]", "train.layers.2", ""]
)
def test_lookup_missing_is_key_error(key: str) -> None:
    with pytest.raises(KeyError):
        lookup(DATA, key)


def _nest(parts: list[str | int], value: Any) -> Any:
    """The smallest structure in which `parts` leads to `value`."""
    for part in reversed(parts):
        value = [None] * part + [value] if isinstance(part, int) else {part: value}
    return value


@settings(max_examples=100)
@given(
    _SEGMENTS.filter(lambda parts: all(p if isinstance(p, str) else p < 50 for p in parts)),
    st.integers() | st.text(max_size=5) | st.booleans(),
)
def test_lookup_finds_what_the_key_points_at(parts: list[str | int], value: Any) -> None:
    data = _nest(parts, value)
    assert lookup(data, _join(parts)) == value


# -- flatten and suggestions --------------------------------------------------------------------


def test_flatten_tracks_leaves_and_keeps_lists_whole() -> None:
    assert flatten("train", DATA["train"]) == {
        "train.lr": 0.1,
        "train.layers": [{"units": 64}, {"units": 32}],
        "train.on": True,
    }
    assert flatten("seed", 7) == {"seed": 7}
    assert flatten("empty", {}) == {"empty": {}}


def test_flatten_all() -> None:
    assert flatten_all({"a": {"b": 1, "c": {"d": 2}}, "e": [1]}) == {"a.b": 1, "a.c.d": 2, "e": [1]}


def test_suggest() -> None:
    data = {"train": {"lr": 0.1, "epochs": 3}}
    assert suggest("train.lrr", data) == "did you mean 'train.lr' or 'train'?"
    assert suggest("trian", data) == "did you mean 'train' or 'train.lr'?"
    assert suggest("zzzzzz", data) is None


# -- other params files (dvc.yaml): JSON, TOML, Python, whole files ----------------------------


def test_params_from_json_toml_and_python_files(dvc: Project) -> None:
    dvc.write("conf.json", json.dumps({"a": {"b": 1}, "c": 2}))
    dvc.write("conf.toml", "seed = 7\n[opt]\nmomentum = 0.9\n")
    dvc.write(
        "conf.py",
        "BATCH = 32\nSKIPPED = len('x')\nclass Cfg:\n    depth = 4\n"
        "    def __init__(self):\n        self.lr = 0.5\n",
    )
    dvc_yaml(
        dvc,
        """\
stages:
  s:
    cmd: echo > out.txt
    params:
      - conf.json: [a.b]
      - conf.toml: [opt.momentum, seed]
      - conf.py: [BATCH, Cfg.depth, Cfg.lr]
    outs: [out.txt]
""",
    )
    stage = load_project(dvc.root).stages["s"]
    assert stage.params == {
        "conf.json": {"a.b": 1},
        "conf.py": {"BATCH": 32, "Cfg.depth": 4, "Cfg.lr": 0.5},
        "conf.toml": {"opt.momentum": 0.9, "seed": 7},
    }
    repro(ReproOptions(root=dvc.root))
    dvc.write("conf.toml", "seed = 8\n[opt]\nmomentum = 0.9\n")
    assert reasons(plan(ReproOptions(root=dvc.root)), "s") == ["param conf.toml:seed 7→8"]


def test_whole_file_params_track_every_leaf(dvc: Project) -> None:
    dvc.write("all.json", json.dumps({"x": 1, "y": {"z": [1, 2]}}))
    dvc_yaml(
        dvc, "stages:\n  s:\n    cmd: echo > o\n    outs: [o]\n    params:\n      - all.json:\n"
    )
    assert load_project(dvc.root).stages["s"].params == {"all.json": {"x": 1, "y.z": [1, 2]}}
    repro(ReproOptions(root=dvc.root))
    dvc.write("all.json", json.dumps({"x": 1, "y": {"z": [1, 2]}, "new": True}))
    assert reasons(plan(ReproOptions(root=dvc.root)), "s") == ["param all.json:new added"]
