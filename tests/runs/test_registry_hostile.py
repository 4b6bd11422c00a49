"""The registry against what a remote or a user may hand it: shared events checked field by
field before they are imported, aliases that a version number would shadow, version numbers too
large for the store, and numbers given here never taken back by a merge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.errors import DataError, UsageError
from pipeline.runs import modeluri
from pipeline.runs.exchange import event_bytes, read_event
from pipeline.runs.registry import Event, Registry, check_alias
from pipeline.runs.runstore import RunStore

A = "xxh3_128:" + "a" * 32
B = "xxh3_128:" + "b" * 32
C = "xxh3_128:" + "c" * 32
HUGE = "99999999999999999999999"


@pytest.fixture
def registry(store: RunStore) -> Registry:
    return Registry(store)


def _shared(**changes: Any) -> dict[str, Any]:
    """A register event as `push --runs` writes it, with `changes`."""
    body = {
        "format": "pipeline-registry-event 1",
        "id": "0e0a0cb0b32c4183bec7c5b75a6e4d0a",
        "at": 1796664603.25,
        "actor": "ana",
        "name": "iris",
        "action": "register",
        "alias": None,
        "from_version": None,
        "to_version": 1,
        "key": None,
        "value": json.dumps({"path": "model", "run_id": "r1", "stage": "train"}),
        "message": None,
        "hash": A,
    }
    return {**body, **changes}


def test_a_shared_event_as_written_is_read_back(registry: Registry) -> None:
    registry.add("iris", A, path="models/iris", run_id="r1", stage="train", message="first")
    registry.alias("iris", "champion", 1)
    registry.tag("iris", 1, "validation", "passed")
    registry.tag("iris", None, "owner", "ana")
    for event in registry.history():
        assert read_event(event_bytes(event), "event") == event
    assert read_event(json.dumps(_shared()).encode(), "event").hash == A


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hash": "xxh3_128:../../../../outside_pkg"}, "hash"),  # would become a folder name
        ({"hash": "/tmp/outside_pkg"}, "hash"),
        ({"hash": None}, "hash"),  # a registration of nothing
        ({"to_version": "x"}, "to_version"),  # made every `pull --runs` fail with TypeError
        ({"to_version": 1.5}, "to_version"),
        ({"to_version": True}, "to_version"),
        ({"to_version": -1}, "to_version"),
        ({"to_version": int(HUGE)}, "to_version"),
        ({"name": "../../etc"}, "name"),
        ({"name": 3}, "name"),
        ({"action": "drop"}, "action"),
        ({"id": "../x"}, "id"),
        ({"at": float("nan")}, "at"),
        ({"at": "yesterday"}, "at"),
        ({"actor": "a" * 201}, "actor"),
        ({"message": "a\x00b"}, "message"),
        ({"value": json.dumps({"path": "/tmp/outside_pkg"})}, "value"),
        ({"value": json.dumps({"path": "../outside_pkg"})}, "value"),
        ({"value": "[" * 100_000}, "value"),
        ({"action": "alias", "alias": "3"}, "alias"),  # shadowed by version 3
        ({"action": "alias", "alias": "latest"}, "alias"),
        ({"action": "alias", "alias": "a/b"}, "alias"),
        ({"action": "tag", "key": "a\nb", "value": "x"}, "key"),
    ],
)
def test_a_shared_event_this_tool_would_not_write_is_refused(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(DataError, match=f"registry event .*{field}") as caught:
        read_event(json.dumps(_shared(**changes)).encode(), "registry event e1")
    assert "\n" not in str(caught.value)


def test_a_shared_document_that_is_no_event_is_refused() -> None:
    for data in (b"[]", b"null", b"[" * 100_000, json.dumps([_shared()]).encode()):
        with pytest.raises(DataError, match="is not a registry event"):
            read_event(data, "registry event e1")


def test_an_all_digit_alias_is_refused(registry: Registry) -> None:
    """`models:/iris@3` reads as version 3: an alias named 3 could never be reached."""
    registry.add("iris", A)
    for alias in ("3", "007"):
        with pytest.raises(UsageError, match="is a number"):
            check_alias(alias)
        with pytest.raises(UsageError, match="is a number"):
            registry.alias("iris", alias, 1)
    check_alias("v2x")  # letters with the digits are fine
    registry.alias("iris", "3rd", 1)
    assert registry.show("iris", "3rd").version == 1


def test_version_numbers_beyond_the_store_are_a_usage_error(registry: Registry) -> None:
    registry.add("iris", A)
    for spec in (HUGE, str(2**31), "9" * 5000, int(HUGE)):
        with pytest.raises(UsageError, match="out of range"):
            registry.show("iris", spec)
    with pytest.raises(UsageError, match="out of range"):
        registry.alias("iris", "champion", int(HUGE))
    with pytest.raises(UsageError, match="out of range"):
        registry.tag("iris", int(HUGE), "k", "v")
    with pytest.raises(UsageError, match="has no version"):
        registry.show("iris", str(2**31 - 1))  # the largest is a number like any other
    with pytest.raises(UsageError, match="no alias"):
        registry.show("iris", "²")  # `str.isdigit` says yes; `int()` says no


def test_uris_with_huge_versions_are_a_usage_error() -> None:
    for version in (HUGE, "9" * 5000):
        with pytest.raises(UsageError, match="out of range") as caught:
            modeluri.parse(f"models:/iris/{version}")
        assert len(str(caught.value)) < 200
    with pytest.raises(UsageError, match="not a version"):
        modeluri.parse("models:/iris/²")
    assert modeluri.parse(f"models:/iris/{2**31 - 1}") == modeluri.ModelUri(
        "iris", version=2**31 - 1
    )


def _import(registry: Registry, number: int, digest: str, at: float) -> list[str]:
    """A teammate's registration of `digest` as `number`, stamped `at`: its warnings."""
    event = Event(
        f"e{number}{digest[-1]}", at, "bob", "iris", "register", to_version=number, hash=digest
    )
    added, warnings = registry.import_events([event])
    assert added == 1
    return warnings


def test_a_pulled_registration_never_takes_a_number_given_here(registry: Registry) -> None:
    """A teammate's v1, stamped before ours, used to take v1 and push ours to v2 (aliases
    following it): `models:/iris/1` pinned in a script changed meaning after a pull."""
    registry.add("iris", A)
    registry.alias("iris", "champion", 1)
    first = registry.history("iris")[0].at
    warnings = _import(registry, 1, B, first - 60)
    assert warnings == [
        "model 'iris': version 1 was registered twice (bob registered"
        f" {B} as version 1, which is another package here); it is version 2 here"
    ]
    assert {v.version: v.hash for v in registry.versions("iris")} == {1: A, 2: B}
    assert registry.show("iris", "champion").version == 1
    registry.alias("iris", "staging", 2)  # a local change replays too: nothing moves
    registry.add("iris", C)
    assert {v.version: v.hash for v in registry.versions("iris")} == {1: A, 2: B, 3: C}
    reopened = Registry(RunStore.for_project(registry.store.path.parent))  # type: ignore[union-attr]
    assert {v.version: v.hash for v in reopened.versions("iris")} == {1: A, 2: B, 3: C}
    reopened.store.close()


def test_a_pulled_registration_keeps_its_number_when_free_here(registry: Registry) -> None:
    registry.add("iris", A)
    registry.add("iris", B)
    assert _import(registry, 4, C, 1.0) == []  # stamped before both: still not theirs
    assert {v.version: v.hash for v in registry.versions("iris")} == {1: A, 2: B, 4: C}
    later = "xxh3_128:" + "d" * 32
    assert _import(registry, 2, later, 2.0) != []  # 2 is ours: it gets the next free one
    assert registry.show("iris", 5).hash == later
