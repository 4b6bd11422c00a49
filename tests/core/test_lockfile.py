"""`pipeline.lock`: deterministic text, exact round trips, and clear errors when damaged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.hashing import HashInfo, file_digest
from pipeline.core.lockfile import Lock, LockedPath, LockEntry, LockWriter, read_lock
from pipeline.core.yamlio import dump_yaml
from pipeline.errors import DataError
from tests.conftest import CHAIN_PARAMS, Project, chain_manifest


def _chain_in(make_project: Callable[..., Project], name: str) -> Project:
    project = make_project(name)
    project.write("raw.txt", "raw 1\n")
    project.write("other.txt", "other 1\n")
    project.params(CHAIN_PARAMS)
    project.manifest(chain_manifest())
    return project


def test_lock_is_identical_for_identical_runs_in_two_directories(
    make_project: Callable[..., Project],
) -> None:
    one, two = _chain_in(make_project, "one"), _chain_in(make_project, "two")
    one.repro()
    two.repro()
    assert one.root != two.root
    assert one.read("pipeline.lock") == two.read("pipeline.lock")
    assert str(one.root) not in one.read("pipeline.lock")


def test_lock_is_unchanged_by_a_forced_rerun_with_identical_results(chain_done: Project) -> None:
    before = chain_done.read("pipeline.lock")
    chain_done.repro(force=True)
    assert chain_done.read("pipeline.lock") == before


def test_lock_text_is_canonical_sorted_yaml_with_schema_1(chain_done: Project) -> None:
    text = chain_done.read("pipeline.lock")
    data = yaml.safe_load(text)
    assert text == dump_yaml(data)  # sorted keys, block style: re-dumping changes nothing
    assert text.startswith("schema: 1\nstages:\n")
    assert data["schema"] == 1
    assert (
        list(data["stages"]) == sorted(data["stages"]) == ["evaluate", "other", "prepare", "train"]
    )
    for entry in data["stages"].values():
        assert list(entry) == sorted(entry)
        for item in entry["deps"] + entry["outs"]:
            assert list(item) == sorted(item)


def test_lock_entry_records_cmd_params_deps_and_outs(chain_done: Project) -> None:
    train = chain_done.lock()["stages"]["train"]
    assert train["cmd"] == chain_manifest()["stages"]["train"]["cmd"]
    assert train["params"] == {"params.yaml": {"train.lr": 0.1}}
    assert train["fingerprint"].startswith("xxh3_128:")
    prepared = chain_done.root / "data/prepared.txt"
    model = chain_done.root / "model.txt"
    assert train["deps"] == [
        {
            "path": "data/prepared.txt",
            "hash": file_digest(prepared),
            "size": prepared.stat().st_size,
            "nfiles": 1,
        }
    ]
    assert train["outs"] == [
        {"path": "model.txt", "hash": file_digest(model), "size": model.stat().st_size, "nfiles": 1}
    ]
    # a templated cmd is recorded as rendered
    assert "echo split=0.2;" in chain_done.lock()["stages"]["prepare"]["cmd"]


def test_read_lock_round_trips_the_file(chain_done: Project) -> None:
    lock = read_lock(chain_done.root)
    assert sorted(lock.stages) == ["evaluate", "other", "prepare", "train"]
    assert lock.stages["train"].params == {"params.yaml": {"train.lr": 0.1}}
    assert lock.to_text() == chain_done.read("pipeline.lock")


def _entry(n: int, cmds: tuple[str, ...] = ("echo hi",)) -> LockEntry:
    info = HashInfo(f"xxh3_128:{n:032x}", n, 1)
    return LockEntry(
        cmd=cmds,
        fingerprint=f"xxh3_128:{n + 1:032x}",
        params={"params.yaml": {"lr": n / 10, "name": "x"}} if n % 2 else {},
        deps=(LockedPath(f"in/{n}.csv", info),),
        outs=(LockedPath("z.out", info), LockedPath("a.out", HashInfo("xxh3_128:d", 9, 3, True))),
    )


def test_lock_writer_text_equals_one_full_dump(tmp_path: Path) -> None:
    writer = LockWriter(tmp_path)
    lock = Lock()
    assert writer.render(lock) == dump_yaml(lock.to_yaml()) == "schema: 1\nstages: {}\n"
    for name, n in [("train", 1), ("a", 2), ("1", 3), ("train", 4), ("null", 5), ("z-y.x", 6)]:
        lock = lock.with_stage(name, _entry(n, ("echo a", "echo b") if n == 4 else ("echo hi",)))
        writer.write(lock)
        text = (tmp_path / "pipeline.lock").read_text()
        assert text == dump_yaml(lock.to_yaml()) == lock.to_text()
        again = read_lock(tmp_path)
        assert again.to_text() == text
        assert sorted(again.stages) == sorted(lock.stages)


def test_missing_or_empty_lock_is_empty(tmp_path: Path) -> None:
    assert read_lock(tmp_path) == Lock()
    (tmp_path / "pipeline.lock").write_text("")
    assert read_lock(tmp_path) == Lock()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema: 2\nstages: {}\n", "pipeline.lock has schema 2; this version reads 1"),
        ("stages: {}\n", "pipeline.lock has schema None; this version reads 1"),
        ("schema: 1\nstages: [a]\n", "corrupt lock file pipeline.lock: AttributeError("),
        ("schema: 1\nstages:\n  a: {cmd: x}\n", "corrupt lock file pipeline.lock: KeyError("),
        ("- 1\n", "corrupt lock file pipeline.lock: AttributeError("),
        ("schema: 1\nstages: {\n", "corrupt lock file: pipeline.lock:3:1: invalid YAML"),
    ],
)
def test_damaged_lock_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.lock").write_text(text)
    with pytest.raises(DataError) as exc:
        read_lock(tmp_path)
    assert exc.value.message.startswith(message)
    assert exc.value.exit_code == 4


def test_lock_with_infinite_size_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "pipeline.lock").write_text(
        "schema: 1\nstages:\n  a:\n    cmd: x\n    fingerprint: f\n"
        "    outs:\n    - {path: a, hash: h, size: .inf, nfiles: 1}\n"
    )
    with pytest.raises(DataError):
        read_lock(tmp_path)


_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=5)


_VALUES = st.recursive(
    _SCALARS,
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(["path", "hash", "size", "nfiles", "isdir", "cmd", "fingerprint"])
            | st.text(max_size=3),
            c,
            max_size=4,
        )
    ),
    max_leaves=12,
)


_PATHS = st.fixed_dictionaries(
    {"path": _VALUES, "hash": _VALUES, "size": _VALUES, "nfiles": _VALUES}
)


_ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "cmd": _VALUES,
        "fingerprint": _VALUES,
        "deps": st.lists(_VALUES | _PATHS, max_size=2),
        "outs": st.lists(_VALUES | _PATHS, max_size=2),
        "params": _VALUES,
    },
)


_LOCKS = (
    st.fixed_dictionaries(
        {
            "schema": st.just(1) | _VALUES,
            "stages": st.dictionaries(st.text(max_size=3), _ENTRIES | _VALUES, max_size=3)
            | _VALUES,
        }
    )
    | _VALUES
)


@pytest.fixture(scope="module")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("locks")


@settings(max_examples=120)
@given(_LOCKS)
def test_any_lock_document_reads_or_is_a_data_error(lock_dir: Path, data: object) -> None:
    (lock_dir / "pipeline.lock").write_text(yaml.safe_dump(data))
    try:
        lock = read_lock(lock_dir)
    except DataError as exc:
        assert exc.exit_code == 4
    else:
        assert isinstance(lock, Lock)
