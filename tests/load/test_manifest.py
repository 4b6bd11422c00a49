"""Reading `MLproject`: the models, every validation message, and robustness on any input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ManifestError
from pipeline.load.declared import ArtifactDecl
from pipeline.load.manifest import read_manifest
from pipeline.load.project import load_project


def _write(tmp_path: Path, text: str | bytes, params: str | None = None) -> Path:
    path = tmp_path / "MLproject"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    if params is not None:
        (tmp_path / "params.yaml").write_text(params, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str | bytes) -> ManifestError:
    """The error loading a project with this manifest (stage bodies are checked on load)."""
    _write(tmp_path, text)
    with pytest.raises(ManifestError) as exc:
        load_project(tmp_path)
    return exc.value


def test_read_manifest_returns_the_document_and_top_level_fields(tmp_path: Path) -> None:
    spec, doc = read_manifest(_write(tmp_path, "name: demo\nstages:\n  a:\n    cmd: echo hi\n"))
    assert spec.name == "demo"
    assert spec.stages == {"a": {"cmd": "echo hi"}}
    assert doc.data == {"name": "demo", "stages": {"a": {"cmd": "echo hi"}}}


def test_every_stage_field_is_resolved(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """\
name: demo
stages:
  train:
    desc: Fit the model
    cmd: python train.py
    deps: [data.csv, ./train.py, data.csv]
    params: [train.lr]
    outs:
      - model.pkl
      - history.csv: {persist: true, cache: false, desc: all epochs}
    metrics: [scores.json]
  list:
    cmd: [echo one, echo two]
  bare:
    cmd: echo hi
""",
        params="train:\n  lr: 0.1\n  epochs: 3\n",
    )
    project = load_project(tmp_path)
    train = project.stages["train"]
    assert train.cmd == ("python train.py",)
    assert train.desc == "Fit the model"
    assert train.deps == ("data.csv", "train.py")  # normalised, duplicates dropped
    assert train.params == {"params.yaml": {"train.lr": 0.1}}
    assert [(o.path, o.kind, o.persist, o.cache) for o in train.outs] == [
        ("model.pkl", "outs", False, True),
        ("history.csv", "outs", True, False),
        ("scores.json", "metrics", False, True),
    ]
    assert project.stages["list"].cmd == ("echo one", "echo two")
    bare = project.stages["bare"]
    assert (bare.deps, bare.outs, bare.params) == ((), (), {})


def test_empty_lists_may_be_written_as_null(tmp_path: Path) -> None:
    _write(tmp_path, "stages:\n  a:\n    cmd: x\n    deps:\n    outs:\n")
    stage = load_project(tmp_path).stages["a"]
    assert (stage.deps, stage.outs) == ((), ())


def test_manifest_with_no_stages_is_valid(tmp_path: Path) -> None:
    _write(tmp_path, "name: nothing yet\n")
    assert load_project(tmp_path).stages == {}


# -- error messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "stages:\n  a:\n    cmd: x\n    outz: [o]\n",
            "MLproject:4:5: stages.a.outz: unknown key 'outz'",
            "did you mean 'outs'?",
        ),
        (
            "stages:\n  a:\n    cmd: x\n    outs:\n      - o.txt: {presist: true}\n",
            "MLproject:5:9: stages.a.outs.0.presist: unknown key 'presist'",
            "did you mean 'persist'?",
        ),
        (
            "stages:\n  a:\n    cmd: x\n    outs:\n      - o.txt: {persist: yes please}\n",
            "MLproject:5:9: stages.a.outs.0.persist: expected true or false, got a string",
            None,
        ),
        (
            "stages:\n  a:\n    cmd: []\n",
            "MLproject:3:10: stages.a.cmd: "
            "expected a command string or a non-empty list of command strings",
            None,
        ),
        (
            "stages:\n  a:\n    cmd: [echo, 1]\n",
            "MLproject:3:10: stages.a.cmd: "
            "expected a command string or a non-empty list of command strings",
            None,
        ),
        (
            "stages:\n  a:\n    cmd: x\n    outs: [[a, b]]\n",
            "MLproject:4:12: stages.a.outs.0: "
            "expected a path or {path: {cache: ..., persist: ...}}",
            None,
        ),
        (
            "stages:\n  a:\n    cmd: x\n    deps: [1]\n",
            "MLproject:4:12: stages.a.deps.0: expected a string, got a number",
            None,
        ),
        ("stages: [a, b]\n", "MLproject:1:9: stages: expected a mapping, got a list", None),
        (
            "stages:\n  a: echo hi\n",
            "MLproject:2:6: stages.a: expected a mapping, got a string",
            None,
        ),
        ("name: [x]\n", "MLproject:1:7: name: expected a string, got a list", None),
        ("", "MLproject:1:1: the manifest is empty", "declare at least `stages:`"),
        ("42\n", "MLproject:1:1: the manifest must be a mapping with `stages`", None),
    ],
)
def test_validation_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str, hint: str | None
) -> None:
    monkeypatch.chdir(tmp_path)  # messages name the file relative to the working directory
    error = _error(tmp_path, text)
    assert error.message == message
    assert error.hint == hint
    assert error.exit_code == 2


def test_unknown_key_without_a_close_match_lists_the_known_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    error = _error(tmp_path, "stages:\n  a:\n    cmd: x\n    xyzzy: 1\n")
    assert error.message == "MLproject:4:5: stages.a.xyzzy: unknown key 'xyzzy'"
    assert error.hint is not None
    assert error.hint.startswith("known keys: cmd, ")
    assert {"deps", "outs", "params", "metrics", "desc"} <= set(
        error.hint.removeprefix("known keys: ").split(", ")
    )


def test_invalid_stage_name_points_at_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    error = _error(tmp_path, "stages:\n  a b:\n    cmd: x\n")
    assert error.message == "MLproject:2:3: stages.a b: invalid stage name 'a b'"


def test_several_problems_are_counted_in_the_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    error = _error(tmp_path, "stages:\n  a:\n    cmd: x\n    deps: 1\n    outs: 2\n    desc: 3\n")
    assert error.message.startswith("MLproject:4:11: stages.a.deps: expected a list")
    assert error.hint == "2 more problem(s) after fixing this one"


def test_yaml_errors_have_a_position(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    error = _error(tmp_path, "stages:\n  a:\n    cmd: 'unterminated\n")
    assert error.message.startswith("MLproject:4:1: invalid YAML: ")
    error = _error(tmp_path, "stages:\n  a:\n    cmd: x\n    cmd: y\n")
    assert error.message == "MLproject:4:5: invalid YAML: duplicate key 'cmd'"


def test_non_utf8_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    error = _error(tmp_path, b"stages: \xff\n")
    assert error.message == "MLproject: not valid UTF-8 (invalid start byte)"


def test_unsupported_yaml_values_are_manifest_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _error(tmp_path, "name: !!python/object:os.system x\n").message.startswith(
        "MLproject:1:7: invalid YAML: could not determine a constructor"
    )
    assert "unsupported YAML value" in _error(tmp_path, "name: !!timestamp 2020-99-99\n").message


PROJECT_ERRORS = {
    "unknown-top-level-key": (
        "name: demo\nstage:\n  train:\n    cmd: python train.py\n",
        None,
        "MLproject:2:1: stage: unknown key 'stage'",
        "did you mean 'stages'?",
    ),
    "wrong-type-string": (
        "stages:\n  train:\n    cmd: python train.py\n    desc: 5\n",
        None,
        "MLproject:4:11: stages.train.desc: expected a string, got a number",
        None,
    ),
    "wrong-type-cmd": (
        "stages:\n  train:\n    cmd: true\n",
        None,
        "MLproject:3:10: stages.train.cmd: "
        "expected a command string or a non-empty list of command strings",
        None,
    ),
    "template-without-params-file": (
        "stages:\n  train:\n    cmd: python train.py --lr ${lr}\n",
        None,
        "MLproject:3:10: stages.train.cmd: unknown parameter 'lr' in ${lr}",
        "define it in params.yaml next to the manifest, or under `vars`",
    ),
    "self-dependency": (
        "stages:\n  a:\n    cmd: cat a.txt > a.txt\n    deps: [a.txt]\n    outs: [a.txt]\n",
        None,
        "MLproject:4:11: stages.a.deps: stage 'a' depends on its own output a.txt",
        "a stage cannot read what it writes; split it into two stages",
    ),
    "invalid-yaml-tab": (
        "stages:\n\ta:\n",
        None,
        "MLproject:2:1: invalid YAML: while scanning for the next token "
        "found character that cannot start any token",
        "YAML indents with spaces, never tabs: replace the tabs on that line",
    ),
    "comment-only-manifest": (
        "# nothing here yet\n",
        None,
        "MLproject:1:1: the manifest is empty",
        "declare at least `stages:`",
    ),
    "not-a-mapping": (
        "- stages\n",
        None,
        "MLproject:1:1: the manifest must be a mapping with `stages`",
        None,
    ),
    "params-without-params-file": (
        "stages:\n  train:\n    cmd: python train.py\n    params: [lr]\n",
        None,
        "MLproject:4:14: stages.train.params.0: params file params.yaml does not exist",
        "create params.yaml, or list the params another file holds",
    ),
    "duplicate-key-in-params": (
        "stages:\n  train:\n    cmd: python train.py\n    params: [lr]\n",
        "lr: 0.1\nlr: 0.2\n",
        "params.yaml:2:1: invalid YAML: duplicate key 'lr'",
        "check indentation and quoting near that position",
    ),
    "invalid-stage-name": (
        "stages:\n  -train:\n    cmd: python train.py\n",
        None,
        "MLproject:2:3: stages.-train: invalid stage name '-train'",
        "use letters, digits, '_', '-' and '.' (starting with a letter, digit or '_');"
        " '@' is reserved for foreach/matrix members",
    ),
    "artifact-unknown-key": (
        "stages: {}\nartifacts:\n  model:\n    path: m.pkl\n    typ: model\n",
        None,
        "MLproject:5:5: artifacts.model.typ: unknown key 'typ'",
        "did you mean 'type'?",
    ),
    "artifact-without-path": (
        "stages: {}\nartifacts:\n  model:\n    type: model\n",
        None,
        "MLproject:4:5: artifacts.model.path: missing required key 'path'",
        None,
    ),
    "artifact-bad-name": (
        "stages: {}\nartifacts:\n  My_Model:\n    path: m.pkl\n",
        None,
        "MLproject:3:3: artifacts.My_Model: invalid artifact name 'My_Model'",
        "use lowercase letters, digits, '-' and '/', starting and ending with a letter"
        " or digit (DVC's rule)",
    ),
    "artifact-path-outside": (
        "stages: {}\nartifacts:\n  model:\n    path: ../m.pkl\n",
        None,
        "MLproject:4:11: artifacts.model.path: path '../m.pkl' is outside the project root",
        "paths are relative to the manifest's folder",
    ),
    "top-metrics-outside": (
        "stages: {}\nmetrics: [../m.json]\n",
        None,
        "MLproject:2:11: metrics.0: path '../m.json' is outside the project root",
        "paths are relative to the manifest's folder",
    ),
    "top-plot-unknown-key": (
        "stages: {}\nplots:\n  - ROC:\n      x: fpr\n      colour: red\n",
        None,
        "MLproject:5:7: plots.0.ROC.colour: unknown key 'colour'",
        "known keys: x, y, x_label, y_label, title, template",
    ),
    "top-plot-not-a-path-or-mapping": (
        "stages: {}\nplots:\n  - [a.json, b.json]\n",
        None,
        "MLproject:3:5: plots.0: expected a path, or {path or id: {x: ..., y: ..., template: ...}}",
        None,
    ),
}


@pytest.mark.parametrize("case", list(PROJECT_ERRORS.values()), ids=list(PROJECT_ERRORS))
def test_project_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[str, str | None, str, str | None]
) -> None:
    manifest, params, message, hint = case
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, manifest, params)
    with pytest.raises(ManifestError) as exc:
        load_project(tmp_path)
    assert (exc.value.message, exc.value.hint) == (message, hint)


# -- top-level metrics, plots and artifacts (DVC's dvc.yaml sections) ----------------------------


def test_top_level_sections_are_rendered_and_kept_on_the_project(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(
        """\
vars: [{out: eval, model: clf}]
stages:
  evaluate: {cmd: python eval.py, outs: [eval]}
metrics:
  - ./${out}/metrics.json
  - eval/metrics.json
plots:
  - eval/importance.png
  - eval/prc.json: {x: recall, y: precision}
  - ROC:
      template: simple
      x: fpr
      y: {eval/roc/train.json: tpr, eval/roc/test.json: [tpr, fpr]}
artifacts:
  clf:
    path: models/${model}.pkl
    type: model
    labels: [nlp]
    meta: {owner: me}
""",
        encoding="utf-8",
    )
    declared = load_project(tmp_path).declared
    assert declared.metrics == ("eval/metrics.json",)
    assert [(p.id, p.props) for p in declared.plots] == [
        ("eval/importance.png", {}),
        ("eval/prc.json", {"x": "recall", "y": "precision"}),
        (
            "ROC",
            {
                "template": "simple",
                "x": "fpr",
                "y": {"eval/roc/train.json": "tpr", "eval/roc/test.json": ["tpr", "fpr"]},
            },
        ),
    ]
    (model,) = declared.artifacts
    assert model == ArtifactDecl("clf", "models/clf.pkl", "model", None, ("nlp",), {"owner": "me"})


def test_top_level_sections_survive_the_project_memo(tmp_path: Path) -> None:
    from pipeline.core.statmemo import StatMemo
    from tests.core.support import _age

    manifest = _write(
        tmp_path,
        "stages: {}\nmetrics: [m.json]\nplots: [{p: {y: {a.json: v}}}]\n"
        "artifacts: {m: {path: m.pkl, labels: [x]}}\n",
    )
    _age(manifest)  # old enough to trust: the memo may serve the second load
    (tmp_path / ".pipeline").mkdir()
    seen = []
    for _ in range(2):
        db = StatMemo(tmp_path / ".pipeline" / "state.db")
        try:
            seen.append(load_project(tmp_path, memo=db).declared)
        finally:
            db.close()
    assert seen[0] == seen[1]
    assert seen[1].artifacts == (ArtifactDecl("m", "m.pkl", labels=("x",)),)


# -- robustness: any YAML, any text → a ManifestError or a manifest -----------------------------

_KEYS = st.sampled_from(
    [
        "name",
        "stages",
        "cmd",
        "deps",
        "outs",
        "params",
        "metrics",
        "desc",
        "cache",
        "persist",
        "train",
        "a",
        "b",
        "lr",
        "x.y",
    ]
) | st.text(max_size=6)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "a.txt",
            "data",
            "data/a",
            "../x",
            "/abs",
            "~/x",
            ".",
            "${lr}",
            "${a.b}",
            "${}",
            "${nope}",
            "${lr",
            "\\${lr}",
            "${a.b[0]}",
            "echo hi",
            "a//b/",
        ]
    )
)


YAML_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_KEYS | st.integers(), children, max_size=4)
    ),
    max_leaves=25,
)


_STAGE = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(("cmd", "deps", "outs", "params", "metrics", "desc"), YAML_VALUES),
)


MANIFESTS = st.fixed_dictionaries(
    {"stages": st.dictionaries(_KEYS, _STAGE | YAML_VALUES, max_size=4)},
    optional={"name": YAML_VALUES},
)


YAMLISH_TEXT = st.lists(
    st.sampled_from(
        [
            *"ab:{}[]-,&*!|>'\"%@`#?\n \t.$0",
            "stages:",
            "cmd:",
            "deps:",
            "!!set",
            "!!binary",
            "!!timestamp",
            "!!python/object",
            "<<:",
            "&a",
            "*a",
            "---",
            "...",
            "%YAML 1.1",
            "\ufeff",
            "\x00",
            "\x85",
            "? ",
        ]
    ),
    max_size=40,
).map("".join)


_POSITION = re.compile(r"(MLproject|params\.yaml)(:\d+:\d+)?: ")


PARAMS_FILES = st.sampled_from([None, "", "lr: 0.1\na: {b: [2]}\n", "- 1\n", "x: [\n"])


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _only_manifest_errors(root: Path, text: str, params: str | None) -> None:
    (root / "MLproject").write_text(text, encoding="utf-8", errors="surrogatepass")
    params_path = root / "params.yaml"
    if params is None:
        params_path.unlink(missing_ok=True)
    else:
        params_path.write_text(params, encoding="utf-8")
    for load in (lambda: read_manifest(root / "MLproject"), lambda: load_project(root)):
        try:
            load()
        except ManifestError as exc:
            assert exc.exit_code == 2
            assert _POSITION.search(exc.message), exc.message


@settings(max_examples=120)
@given(data=YAML_VALUES | MANIFESTS, params=PARAMS_FILES)
def test_any_yaml_document_gives_a_project_or_a_manifest_error(
    fuzz_root: Path, data: object, params: str | None
) -> None:
    _only_manifest_errors(fuzz_root, yaml.safe_dump(data, allow_unicode=True), params)


@settings(max_examples=200)
@given(text=YAMLISH_TEXT | st.text(max_size=60), params=PARAMS_FILES)
def test_any_text_gives_a_project_or_a_manifest_error(
    fuzz_root: Path, text: str, params: str | None
) -> None:
    _only_manifest_errors(fuzz_root, text, params)
