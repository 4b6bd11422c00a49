"""`--param` and `--sweep`: values validated before anything runs, files outside the project
refused, and values spliced into params files keeping comments and layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from pipeline.errors import UsageError
from pipeline.experiments.overrides import Point, points, splice
from pipeline.load.params import parse_text
from pipeline.plan.session import open_session
from tests.conftest import Project
from tests.experiments.support import (
    PARAMS_TEXT,
    _run_files,
    leftovers,
    run,
    snapshot,
    three_stages,
)


def object_text(project: Project, digest: str) -> str:
    with open_session(project.root) as session:
        return session.store.path(digest).read_text(encoding="utf-8")


# -- `--param` values: comments kept, validated before anything runs --------------------------


def test_the_stored_params_file_keeps_comments_and_layout(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.25", "tag=two words"))
    files = {a.path: a for a in _run_files(three, experiment.points[0].run_id)}
    stored = object_text(three, files["params.yaml"].hash)
    assert stored == PARAMS_TEXT.replace("lr: 0.1", "lr: 0.25").replace(
        "tag: base", "tag: two words"
    )
    assert three.read("params.yaml") == PARAMS_TEXT
    lock_text = object_text(three, files["pipeline.lock"].hash)
    assert "0.25" in lock_text


def test_a_param_in_another_params_file(three: Project) -> None:
    stages = three_stages(three)["stages"]
    stages["train"]["params"] = [{"conf/extra.yaml": ["scale"]}]
    stages["train"]["cmd"] = stages["train"]["cmd"].replace(
        "${train.lr}", "$(awk '/^scale:/ {print $2}' conf/extra.yaml)"
    )
    three.write("conf/extra.yaml", "scale: 2  # a factor\n")
    three.manifest({"name": "three", "stages": stages}, commit=False)
    three.commit(message="extra")
    three.repro()
    three.clear_executions()
    experiment = run(three, params=("conf/extra.yaml:scale=5",))
    detail = api.run_detail(three.root, experiment.points[0].run_id)
    assert detail.params == {"conf/extra.yaml:scale": 5}
    assert detail.metrics == {"metrics.json:score": 5}
    files = {a.path: a for a in _run_files(three, experiment.points[0].run_id)}
    assert object_text(three, files["conf/extra.yaml"].hash) == "scale: 5  # a factor\n"


BAD_PARAMS = {
    "unknown-key": (("train.lrr=0.2",), (), "unknown param train.lrr", "did you mean 'train.lr'?"),
    "wrong-type-int": (("train.epochs=1.5",), (), "expected an integer", None),
    "wrong-type-float": (("train.lr=fast",), (), "expected a number", None),
    "a-mapping": (
        ("train=3",),
        (),
        "expected structure",
        "edit lists and mappings in the params file",
    ),
    "not-key-value": (("train.lr",), (), "is not KEY=VALUE", "e.g. --param train.lr=0.1"),
    "bad-sweep-value": ((), ("train.lr=0.2,oops",), "expected a number", None),
    "unknown-sweep-key": (
        (),
        ("train.lrate=0.2,0.3",),
        "unknown param train.lrate",
        "did you mean 'train.lr'?",
    ),
    "empty-sweep": ((), ("train.lr=",), "needs values", "e.g. --sweep train.lr=0.1,0.01"),
    "missing-file": (
        ("nope.yaml:x=1",),
        (),
        "nope.yaml does not exist",
        "name a params file of the project",
    ),
}


@pytest.mark.parametrize(
    ("params", "sweeps", "message", "hint"), BAD_PARAMS.values(), ids=list(BAD_PARAMS)
)
def test_a_bad_param_is_refused_before_anything_runs(
    three: Project,
    params: tuple[str, ...],
    sweeps: tuple[str, ...],
    message: str,
    hint: str | None,
) -> None:
    three.write("raw.txt", "changed: every stage would run\n")
    before = api.runs(three.root)
    with pytest.raises(UsageError) as error:
        run(three, params=params, sweeps=sweeps)
    assert message in error.value.message
    assert error.value.hint == hint
    assert error.value.exit_code == 2
    assert three.executions() == []
    assert api.runs(three.root) == before
    assert not (three.root / ".pipeline" / "tmp").exists() or leftovers(three) == []


DECLARED = {
    "train.lr": {"type": "float", "min": 0, "max": 1},
    "tag": {"type": "string", "choices": ["base", "wide"]},
}


def test_declared_parameter_types_bounds_and_choices(three: Project) -> None:
    three.manifest({**three_stages(three), "parameters": DECLARED})
    with pytest.raises(UsageError, match=r"train.lr=2.0 is outside \[0.0, 1.0\]"):
        run(three, params=("train.lr=2",))
    with pytest.raises(UsageError, match="is not one of"):
        run(three, params=("tag=narrow",))
    with pytest.raises(UsageError, match="expected a number"):
        run(three, sweeps=("train.lr=0.5,high",))
    assert three.executions() == []
    experiment = run(three, params=("train.lr=1", "tag=wide"))  # an int is a fine float
    detail = api.run_detail(three.root, experiment.points[0].run_id)
    assert detail.params == {"train.lr": 1.0}
    assert isinstance(detail.params["train.lr"], float)


def _spliced(text: str, key: str, value: Any, name: str = "params.yaml") -> Any:
    """The params data after splicing `key` = `value` into `text`."""
    return parse_text(splice(text, Path(name), key, value), name)


def _spliced_or_refused(text: str, key: str, value: Any) -> Any:
    """Like `_spliced`, but None when splice() refuses with a clear UsageError (also a fix).

    A spliced file that no longer parses is a failed assertion, not a crash.
    """
    try:
        spliced = splice(text, Path("params.yaml"), key, value)
    except UsageError:
        return None
    try:
        return parse_text(spliced, "params.yaml")
    except ValueError as exc:
        raise AssertionError(f"the spliced file no longer parses: {exc}\n{spliced}") from None


# -- --param: where the file is ----------------------------------------------------------------


def test_param_with_an_absolute_params_file_path_leaves_the_users_file_alone(
    three: Project,
) -> None:
    before, status = snapshot(three.root), three.git("status", "--porcelain")
    with pytest.raises(UsageError, match="absolute path") as refused:
        run(three, params=(f"{three.root}/params.yaml:train.lr=0.5",))
    assert refused.value.hint == "name a params file inside the project"
    assert three.executions() == []
    assert snapshot(three.root) == before
    assert three.git("status", "--porcelain") == status


def test_param_file_outside_the_project_is_a_usage_error(three: Project) -> None:
    (three.root.parent / "outside.yaml").write_text("x: 1\n")
    with pytest.raises(UsageError):
        run(three, params=("../outside.yaml:x=5",))
    assert (three.root.parent / "outside.yaml").read_text() == "x: 1\n"
    assert leftovers(three) == []


def test_a_toml_params_override_is_refused_before_any_workspace(three: Project) -> None:
    three.write("conf.toml", "x = 1\n")
    with pytest.raises(UsageError, match="toml"):
        run(three, params=("conf.toml:x=2",))


# -- --param: what the value does to the file --------------------------------------------------


def test_a_string_value_cannot_inject_items_into_a_flow_collection() -> None:
    assert _spliced("tags: [a, b]\n", "tags[0]", "x, y") == {"tags": ["x, y", "b"]}
    assert _spliced("train: {tag: base, lr: 0.1}\n", "train.tag", "x, evil") == {
        "train": {"tag": "x, evil", "lr": 0.1}
    }


def test_a_value_with_a_hash_sign_is_kept_verbatim(three: Project) -> None:
    with open_session(three.root) as session:
        [first] = points(session.project, ("tag=model #3",), ())
        [second] = points(session.project, ("tag=#x",), ())
    assert first.overrides[0][2] == "model #3"
    assert second.overrides[0][2] == "#x"


def test_splicing_a_block_scalar_keeps_the_next_key() -> None:
    text = "desc: |\n  hello\ntag: x\n"
    assert splice(text, Path("params.yaml"), "desc", "world") == "desc: world\ntag: x\n"
    assert _spliced(text, "desc", "world") == {"desc": "world", "tag": "x"}


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="BUG: a scalar node's start mark includes its anchor; splice() deletes `&lr` and"
    " the file's `*lr` alias becomes undefined",
)
def test_splicing_an_anchored_value_keeps_its_aliases_valid() -> None:
    text = "lr: &lr 0.1\nother: *lr\n"
    spliced = _spliced_or_refused(text, "lr", 0.5)  # refusing is a fix too
    assert spliced is None or spliced["lr"] == 0.5


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="BUG: constructing the document flattens `<<:` merges into the node tree, so child()"
    " finds the merged base node: train.lr=0.5 edits base.lr (and every other merge of it)"
    " while train's own lr stays 0.2",
)
def test_splicing_a_key_next_to_a_merge_key_changes_only_that_key() -> None:
    text = "base: &base\n  lr: 0.1\ntrain:\n  <<: *base\n  lr: 0.2\nfinetune:\n  <<: *base\n"
    assert _spliced_or_refused(text, "train.lr", 0.5) in (
        None,
        {"base": {"lr": 0.1}, "train": {"lr": 0.5}, "finetune": {"lr": 0.1}},
    )


def test_splicing_a_file_that_starts_with_a_bom() -> None:
    assert _spliced("\ufefflr: 0.1\n", "lr", 0.5) == {"lr": 0.5}


def test_nan_and_infinite_overrides_stay_floats() -> None:
    assert isinstance(_spliced("lr: 0.1\n", "lr", float("inf"))["lr"], float)
    assert isinstance(_spliced("lr: 0.1\n", "lr", float("nan"))["lr"], float)
    for value in (float("inf"), float("-inf"), float("nan")):  # JSON has no such numbers
        with pytest.raises(UsageError, match=rf"^params\.json: JSON cannot hold {value}$"):
            splice('{"lr": 0.1}', Path("params.json"), "lr", value)


def test_a_long_string_value_is_not_folded_out_of_its_mapping() -> None:
    value = "word " * 300
    text = "train:\n  tag: base\n  lr: 0.1\n"
    assert _spliced(text, "train.tag", value.strip()) == {
        "train": {"tag": value.strip(), "lr": 0.1}
    }


def test_a_key_containing_a_dot_gets_a_usable_hint(project: Project) -> None:
    project.params("a.b: 1\n")
    project.manifest({"name": "d", "stages": {"s": {"cmd": "true", "params": ["[a.b]"]}}})
    with open_session(project.root) as session:
        with pytest.raises(UsageError) as refused:
            points(session.project, ("a.b=2",), ())
        assert refused.value.message == "unknown param a.b (not in params.yaml)"
        assert refused.value.hint == "a key whose name contains a dot is written in brackets: [a.b]"
        # the hint is usable: the bracket form names that key
        assert points(session.project, ("[a.b]=2",), ()) == [Point((("params.yaml", "[a.b]", 2),))]
