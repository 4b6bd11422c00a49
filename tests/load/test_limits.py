"""Malformed and hostile input: bombs, deep nesting, huge strings, recursive aliases, odd keys.

Every case ends within a few seconds with one clear `PipelineError` naming the file, never a
hang, a `RecursionError` or an internal error (issue 12, item 7).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from pipeline.api import ReproOptions, plan
from pipeline.core import inputlimits
from pipeline.core.lockfile import parse_lock_text, read_lock
from pipeline.errors import DataError, ManifestError
from pipeline.load.params import load_params_file
from pipeline.load.project import load_project
from tests.conftest import Project

MANIFEST = "stages:\n  a:\n    cmd: echo ${lr}\n"


@pytest.fixture(autouse=True)
def _in_project(p: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(p.root)  # messages name files as seen from the current directory


def bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs: `width ** levels` strings from a few hundred bytes."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def nested_block(depth: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "1\n"


def alias_chain(length: int) -> str:
    """Each anchor nests the previous one: `length` levels deep once expanded."""
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, length)]
    return "\n".join(lines) + "\n"


def _load_error(p: Project, params: str, name: str = "params.yaml") -> ManifestError:
    p.write("dvc.yaml", MANIFEST)
    p.write(name, params)
    started = time.monotonic()
    with pytest.raises(ManifestError) as exc:
        load_project(p.root)
    assert time.monotonic() - started < 5
    return exc.value


@pytest.mark.timeout(20)
def test_a_bomb_under_an_unused_params_key_is_refused(p: Project) -> None:
    error = _load_error(p, "lr: 0.1\nunused:\n" + _indent(bomb()))
    assert error.message.startswith("params.yaml: more than 1,000,000 values")
    assert "PIPELINE_INPUT_LIMIT_FACTOR" in (error.hint or "")


@pytest.mark.timeout(20)
def test_a_params_bomb_through_the_cli_is_one_line_exit_2(p: Project) -> None:
    p.write("dvc.yaml", MANIFEST)
    p.write("params.yaml", "lr: 0.1\nunused:\n" + _indent(bomb()))
    for command in ("status", "repro", "dag"):
        done = p.cli(command, timeout=15)
        assert done.returncode == 2, done.stderr
        first, *rest = done.stderr.splitlines()
        assert first.startswith("error: params.yaml: more than 1,000,000 values"), first
        assert all(line.startswith("hint:") for line in rest)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (bomb(), "more than 1,000,000 values"),
        (alias_chain(3000), "nested more than 100 levels"),
        (nested_block(150), "nested more than 100 levels"),
        ("[" * 500 + "]" * 500, "nested more than 100 levels"),
        ("[" * 20000 + "]" * 20000, "invalid YAML"),  # libyaml's own limit, not a recursion
        ("a: &a [1, *a]\n", "a value contains itself (a recursive alias)"),
        ("a: &a {b: {c: *a}}\n", "a value contains itself (a recursive alias)"),
        ("&a [*a]\n", "a value contains itself (a recursive alias)"),
        ("x: '" + "a" * 10_000_000 + "'\n", "a string is longer than the input limit"),
    ],
    ids=[
        "bomb",
        "alias-chain",
        "block",
        "flow",
        "flow-20k",
        "rec-list",
        "rec-map",
        "rec-root",
        "10MB-string",
    ],
)
def test_hostile_yaml_is_refused_in_every_document(p: Project, text: str, problem: str) -> None:
    for name in ("params.yaml", "dvc.yaml"):
        p.write("dvc.yaml", MANIFEST if name == "params.yaml" else text)
        p.write("params.yaml", text if name == "params.yaml" else "lr: 1\n")
        started = time.monotonic()
        with pytest.raises(ManifestError) as exc:
            load_project(p.root)
        assert time.monotonic() - started < 5
        assert exc.value.message.startswith(f"{name}:"), exc.value.message
        assert problem in exc.value.message
    p.write("pipeline.lock", text)
    with pytest.raises(DataError, match=r"corrupt lock file: pipeline\.lock"):
        read_lock(p.root)
    with pytest.raises(DataError, match="corrupt lock file"):
        parse_lock_text(text)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("params.json", "[" * 5000 + "]" * 5000),
        ("params.json", '{"a":' * 500 + "1" + "}" * 500),
        ("params.json", json.dumps({"a": "x" * 2_000_000})),
        ("params.toml", "a = " + "[" * 500 + "]" * 500),
        ("params.py", "A = " + "[" * 500 + "]" * 500),
    ],
)
def test_json_toml_and_python_params_have_the_same_limits(p: Project, name: str, text: str) -> None:
    p.write(name, text)
    started = time.monotonic()
    with pytest.raises(ManifestError) as exc:
        load_params_file(p.root, name)
    assert time.monotonic() - started < 5
    assert exc.value.message.startswith(f"{name}:")


def test_a_file_over_the_size_limit_is_refused_and_the_factor_raises_it(
    p: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputlimits, "MAX_BYTES", 1024)
    text = "lr: 1\n" + "".join(f"k{i}: {i}\n" for i in range(200))
    error = _load_error(p, text)
    assert error.message == "params.yaml: file is larger than the input limit of 1,024 bytes"
    monkeypatch.setenv(inputlimits.FACTOR_VAR, "10")
    assert load_project(p.root).stages["a"].cmd == ("echo 1",)


def test_a_lock_that_is_not_a_regular_file_is_refused_without_reading(p: Project) -> None:
    os.symlink("/dev/zero", p.root / "pipeline.lock")
    with pytest.raises(DataError, match=r"pipeline\.lock: not a regular file"):
        read_lock(p.root)
    os.unlink(p.root / "pipeline.lock")
    os.mkfifo(p.root / "pipeline.lock")  # opening it must not wait for a writer
    with pytest.raises(DataError, match="not a regular file"):
        read_lock(p.root)


@pytest.mark.timeout(30)
def test_200k_params_keys_load_in_seconds(p: Project) -> None:
    p.write("dvc.yaml", MANIFEST)
    p.write("params.yaml", "lr: 1\n" + "".join(f"k{i}: {i}\n" for i in range(200_000)))
    started = time.monotonic()
    project = load_project(p.root)
    assert time.monotonic() - started < 10  # about 2 s on an idle machine
    assert project.stages["a"].cmd == ("echo 1",)


def test_a_one_mb_command_renders_in_seconds(p: Project) -> None:
    text = "a" * (inputlimits.MAX_STRING - 100)
    p.write("dvc.yaml", f"stages:\n  a:\n    cmd: echo '{text}' ${{lr}}\n")
    p.write("params.yaml", "lr: 1\n")
    started = time.monotonic()
    assert load_project(p.root).stages["a"].cmd == (f"echo '{text}' 1",)
    assert time.monotonic() - started < 5


def test_tabs_are_a_yaml_error_with_a_hint(p: Project) -> None:
    error = _load_error(p, "lr: 1\ntrain:\n\tepochs: 3\n")
    assert error.message.startswith("params.yaml:3:1: invalid YAML")
    assert "tab" in (error.hint or "")


def test_foreach_over_a_mapping_with_odd_keys(p: Project) -> None:
    p.write("params.yaml", 'odd:\n  "..": 1\n  "a.b": 2\n  "x[0": 3\n  "[1]": 4\n')
    p.write("dvc.yaml", "stages:\n  b:\n    foreach: ${odd}\n    do:\n      cmd: echo ${key}\n")
    stages = load_project(p.root).stages
    assert {name: s.cmd for name, s in stages.items()} == {
        "b@..": ("echo ..",),
        "b@a.b": ("echo a.b",),
        "b@x[0": ("echo x[0",),  # a dvc.yaml command is rendered raw, as DVC does
        "b@[1]": ("echo [1]",),
    }
    assert plan(ReproOptions(root=p.root)).decisions.keys() == stages.keys()


def test_an_empty_foreach_key_is_a_manifest_error(p: Project) -> None:
    p.write("dvc.yaml", 'stages:\n  b:\n    foreach:\n      "": 1\n    do:\n      cmd: echo\n')
    with pytest.raises(ManifestError, match="cannot name a stage after ''"):
        load_project(p.root)


def _indent(text: str) -> str:
    return "".join("  " + line + "\n" for line in text.splitlines())
