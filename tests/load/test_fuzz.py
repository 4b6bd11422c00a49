"""A hypothesis fuzzer over manifests (MLproject, dvc.yaml), params files and pipeline.lock.

Inputs are structured but odd, not random bytes: real manifest shapes with hostile names,
paths and placeholders; params with keys that are not dotted paths; locks with wrong types;
YAML with anchors, aliases, tags, tabs and truncation; bombs, deep nesting and long strings.
For every example: loading (and planning, if it loads) either works or raises a
`PipelineError`, never anything else; it takes under 5 s; and nothing outside the project
changes. Over 500 examples run in every CI run (issue 12, item 7).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.api import ReproOptions, plan
from pipeline.core.lockfile import read_lock
from pipeline.errors import PipelineError
from pipeline.load.params import load_params_file
from pipeline.load.project import Project, load_project

pytestmark = pytest.mark.slow
FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # only the autouse git identity, set per test
    ],
    database=None,  # each CI run explores afresh
)
LIMIT_SECONDS = 5.0

# -- odd scalars -----------------------------------------------------------------------------

_ODD_CHARS = st.sampled_from(
    [*" \t\n\r\x00\x1b\x7f\u2028\u00e9/\\.:@$'\"`;|&<>(){}[]#*!%,=-_~?", "${", "..", "\\${"]
)
ODD_TEXT = st.lists(_ODD_CHARS | st.text(max_size=4), max_size=8).map("".join)
NAMES = st.sampled_from(["a", "train", "lr", "..", ".", "", "a.b", "x[0", "[1]", "-n", "@"]) | (
    ODD_TEXT
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | NAMES
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=15,
)
PATHS = st.sampled_from(
    ["data/in.csv", "out.txt", "../outside/victim.txt", "elsewhere/victim.txt", "/etc/passwd",
     "a/../../b", "./x", "dir/", "~/x", "${item}", "out-${key}.txt", "C:\\x", "a\nb", ""]
) | ODD_TEXT  # fmt: skip
PLACEHOLDERS = st.sampled_from(
    ["${lr}", "${train}", "${train.lr}", "${item}", "${key}", "${missing}", "${}", "${a[0]}",
     "\\${lr}", "${..}", "${train.x;touch PWNED}", "$(touch PWNED)", "'${lr}'", '"${train}"']
)  # fmt: skip
COMMANDS = st.lists(PLACEHOLDERS | ODD_TEXT | st.just("echo "), min_size=1, max_size=5).map("".join)

# -- structured documents ----------------------------------------------------------------------


def _stage() -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        "deps": st.lists(PATHS, max_size=3) | VALUES,
        "outs": st.lists(PATHS | st.dictionaries(PATHS, VALUES, max_size=1), max_size=3),
        "params": st.lists(NAMES | st.dictionaries(PATHS, st.lists(NAMES) | st.none()), max_size=2),
        "wdir": PATHS,
        "vars": st.lists(PATHS | st.dictionaries(NAMES, VALUES, max_size=2), max_size=2),
        "foreach": VALUES | PLACEHOLDERS | st.dictionaries(NAMES, VALUES, max_size=3),
        "do": st.fixed_dictionaries({"cmd": COMMANDS}) | VALUES,
        "matrix": st.dictionaries(NAMES, st.lists(VALUES, max_size=3) | VALUES, max_size=2),
        "timeout": VALUES,
        "retries": VALUES,
        "frozen": VALUES,
        "env": VALUES,
        "resources": VALUES,
    }
    cmd = COMMANDS | st.lists(COMMANDS, max_size=3) | VALUES
    return st.fixed_dictionaries({"cmd": cmd}, optional=fields)  # type: ignore[arg-type]


MANIFESTS = (
    st.fixed_dictionaries(
        {"stages": st.dictionaries(NAMES | st.just("ok"), _stage(), max_size=3)},
        optional={
            "vars": st.lists(PATHS | st.dictionaries(NAMES, VALUES, max_size=3), max_size=2),
            "params": st.lists(PATHS, max_size=2),
            "name": VALUES,
            "entry_points": st.dictionaries(NAMES, VALUES, max_size=2),
            "parameters": st.dictionaries(NAMES, VALUES, max_size=2),
            "environments": VALUES,
            "python_env": VALUES,
            "docker_env": VALUES,
        },
    )
    | VALUES
)
_KNOWN_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "lr": SCALARS,
        "train": st.dictionaries(NAMES, VALUES, min_size=1, max_size=5) | VALUES,
    },
)
# what templates use (`lr`, a `train` mapping) among keys that are not dotted paths
PARAMS = (
    _KNOWN_PARAMS.flatmap(
        lambda known: st.dictionaries(NAMES, VALUES, max_size=4).map(lambda odd: {**odd, **known})
    )
    | VALUES
)
_LOCK_PATH = st.fixed_dictionaries(
    {"path": PATHS, "hash": VALUES, "size": VALUES, "nfiles": VALUES}, optional={"isdir": VALUES}
)
LOCKS = (
    st.fixed_dictionaries(
        {
            "schema": st.just(1) | VALUES,
            "stages": st.dictionaries(
                NAMES,
                st.fixed_dictionaries(
                    {"cmd": COMMANDS, "fingerprint": VALUES},
                    optional={
                        "deps": st.lists(_LOCK_PATH | VALUES, max_size=2),
                        "outs": st.lists(_LOCK_PATH | VALUES, max_size=2),
                        "params": VALUES,
                        "env": VALUES,
                    },
                )
                | VALUES,
                max_size=3,
            )
            | VALUES,
        },
        optional={"data": st.dictionaries(PATHS, _LOCK_PATH | VALUES, max_size=2)},
    )
    | VALUES
)

# -- YAML text, mutated and hostile --------------------------------------------------------------


def _dump(data: Any, flow: bool) -> str:
    try:
        return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, width=60)
    except yaml.YAMLError:
        return json.dumps(data, default=str)


INSERTS = st.sampled_from(
    ["\t", "&a ", "*a", "*b", "&a [*a]", "<<: *a\n", "!!python/object:os.system ", "!!binary ",
     "!!timestamp ", "!!set ", "!!omap ", "%YAML 1.1\n", "---\n", "...\n", "? ", "{", "[", "]",
     "}", "'", '"', "\\", ": ", "- ", "\n  ", "#", "\x00", "\ufeff", "\u2028", "a: 1\na: 2\n"]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> str:
    """A document dumped in block or flow style, then cut, spliced and sprinkled with oddities."""
    text = _dump(draw(documents), draw(st.booleans()))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "cut", "duplicate", "truncate"]))
        if op == "insert":
            text = text[:at] + draw(INSERTS) + text[at:]
        elif op == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif op == "duplicate":
            text = text[:at] + text[at : at + draw(st.integers(1, 40))] * 2 + text[at:]
        else:
            text = text[:at]
    return text


def _bomb(draw: st.DrawFn) -> str:
    levels, width = draw(st.integers(3, 12)), draw(st.integers(2, 12))
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "lr: 1\nunused:\n" + "".join(f"  {line}\n" for line in lines)


def _block(depth: int) -> str:
    depth = min(depth, 400)
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "1\n"


_HOSTILE: dict[str, Callable[[st.DrawFn, int], str]] = {
    "bomb": lambda draw, _: _bomb(draw),
    "recursive": lambda draw, _: draw(
        st.sampled_from(["a: &a [*a]\n", "a: &a {b: *a}\n", "&r [1, *r]\n"])
    ),
    "flow": lambda _, depth: "lr: " + "[" * depth + "]" * depth + "\n",
    "block": lambda _, depth: _block(depth),
    "chain": lambda _, depth: (
        "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, depth))
    ),
    "long": lambda draw, _: "lr: '" + "x" * draw(st.sampled_from([1000, 1_100_000])) + "'\n",
    "wide": lambda draw, _: (
        "lr: 1\n" + "".join(f"k{i}: {i}\n" for i in range(draw(st.integers(1, 20_000))))
    ),
}


@st.composite
def hostile(draw: st.DrawFn) -> str:
    """Bombs, recursive aliases, deep nesting (flow, block, alias chains), long strings."""
    kind = draw(st.sampled_from(sorted(_HOSTILE)))
    return _HOSTILE[kind](draw, draw(st.integers(50, 3000)))


# -- the harness ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`arena/proj` is the project; `arena/outside` holds a victim nothing may touch."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "outside").mkdir()
    (root / "outside" / "victim.txt").write_text("keep me\n")
    (root / "outside" / "victim.txt").chmod(0o644)
    cwd = os.getcwd()
    yield root
    os.chdir(cwd)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every path under `root` but the project, with its mode, size, mtime and link count."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for path in sorted(root.rglob("*")):
        if path.relative_to(root).parts[0] == "proj":
            continue
        st_ = path.lstat()
        out[str(path)] = (st_.st_mode, st_.st_size, st_.st_mtime_ns, st_.st_nlink)
    return out


def _fresh_project(arena: Path, files: dict[str, str]) -> Path:
    proj = arena / "proj"
    shutil.rmtree(proj, ignore_errors=True)
    proj.mkdir()
    (proj / "data").mkdir()
    (proj / "data" / "in.csv").write_text("1,2\n")
    os.symlink("../outside", proj / "elsewhere")  # a hostile repository's escape hatch
    for name, text in files.items():
        (proj / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    os.chdir(proj)
    return proj


def _timed(action: Callable[[], object]) -> object:
    started = time.monotonic()
    try:
        return action()
    except PipelineError as exc:  # the only kind of failure allowed
        assert exc.message, "a PipelineError without a message"
        return exc
    finally:
        assert time.monotonic() - started < LIMIT_SECONDS, "took over 5 s"


def check_files(arena: Path, files: dict[str, str]) -> None:
    """Load, read the lock and (if it loads) plan; only PipelineErrors; nothing else touched."""
    before = _snapshot(arena)
    proj = _fresh_project(arena, files)
    loaded = _timed(lambda: load_project(proj))
    event("loads" if isinstance(loaded, Project) else f"refused: {type(loaded).__name__}")
    _timed(lambda: read_lock(proj))
    for name in files:
        if name.startswith("params"):
            _timed(lambda name=name: load_params_file(proj, name))
    if isinstance(loaded, Project):
        names = list(loaded.stages)
        assert all(name.isprintable() for name in names), f"stage names {names!r}"
        _timed(lambda: plan(ReproOptions(root=proj)))
    assert _snapshot(arena) == before, "a file outside the project changed"


MANIFEST_NAMES = st.sampled_from(["MLproject", "dvc.yaml"])
PARAMS_NAMES = st.sampled_from(["params.yaml", "params.json", "params.toml", "params.py"])


def _params_text(name: str, data: Any) -> str:
    if name.endswith(".json"):
        return json.dumps(data, default=str)
    if name.endswith(".py"):
        items = data.items() if isinstance(data, dict) else []
        return "\n".join(f"{k} = {v!r}" for k, v in items)
    if name.endswith(".toml"):
        return "\n".join(f"{json.dumps(str(k))} = {json.dumps(v, default=str)}"
                         for k, v in (data.items() if isinstance(data, dict) else []))  # fmt: skip
    return _dump(data, False)


@settings(FUZZ, max_examples=200)
@given(MANIFEST_NAMES, MANIFESTS, PARAMS)
def test_fuzz_manifests(arena: Path, manifest: str, data: Any, params: Any) -> None:
    check_files(arena, {manifest: _dump(data, False), "params.yaml": _dump(params, False)})


@settings(FUZZ, max_examples=120)
@given(PARAMS_NAMES, PARAMS, st.sampled_from(["${lr}", "${train}", "foreach"]))
def test_fuzz_params_files(arena: Path, name: str, params: Any, use: str) -> None:
    stage: dict[str, Any] = {"cmd": f"echo {use} ${{lr}}"}
    if use == "foreach":
        stage = {"foreach": "${train}", "do": {"cmd": "echo ${key} ${item}"}}
    manifest = {"vars": [name], "stages": {"a": stage}}
    text = _params_text(name, params)
    check_files(arena, {"dvc.yaml": _dump(manifest, False), name: text})


@settings(FUZZ, max_examples=100)
@given(LOCKS)
def test_fuzz_locks(arena: Path, lock: Any) -> None:
    manifest = {"stages": {"a": {"cmd": "echo", "deps": ["data/in.csv"], "outs": ["out.txt"]}}}
    check_files(arena, {"dvc.yaml": _dump(manifest, False), "pipeline.lock": _dump(lock, False)})


@settings(FUZZ, max_examples=100)
@given(
    st.sampled_from(["MLproject", "dvc.yaml", "params.yaml", "pipeline.lock"]),
    st.one_of(mutated(MANIFESTS), mutated(PARAMS), mutated(LOCKS)),
)
def test_fuzz_mutated_yaml(arena: Path, target: str, text: str) -> None:
    files = {"dvc.yaml": "stages:\n  a:\n    cmd: echo ${lr}\n", "params.yaml": "lr: 1\n"}
    files[target] = text
    check_files(arena, files)


@settings(FUZZ, max_examples=40)
@given(st.sampled_from(["MLproject", "params.yaml", "pipeline.lock"]), hostile())
def test_fuzz_hostile_yaml(arena: Path, target: str, text: str) -> None:
    files = {"dvc.yaml": "stages:\n  a:\n    cmd: echo ${lr}\n", "params.yaml": "lr: 1\n"}
    files[target] = text
    check_files(arena, files)
