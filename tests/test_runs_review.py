"""Review of run records and experiments: each test pins one confirmed bug (xfail, strict).

Every test fails because of the bug it names and passes once it is fixed. Splicing bugs are
shown on `overrides.splice` directly (fast, exact); the rest through the API or the CLI in
throwaway git repositories under `tmp_path`, with XDG_CACHE_HOME there too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, cli_env, ran
from test_runs_experiments import (
    PARAMS_TEXT,
    _run_files,
    leftovers,
    log,
    run,
    setup,
    snapshot,
    three_stages,
)

from pipeline import api
from pipeline.api import ReproOptions
from pipeline.cli.tables import render
from pipeline.core.hashing import HashInfo, digest_bytes
from pipeline.errors import PipelineError, UsageError
from pipeline.experiments.overrides import points, splice
from pipeline.experiments.run import RunOptions
from pipeline.load.params import parse_text
from pipeline.plan.session import open_session
from pipeline.runs.compare import compare
from pipeline.runs.runstore import Artifact, RunRow, RunStore, StageRow


@pytest.fixture(autouse=True)
def _hermetic_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def three(project: Project) -> Project:
    return setup(project)


def _cli_env() -> dict[str, str]:
    return cli_env(XDG_CACHE_HOME=os.environ["XDG_CACHE_HOME"])


def _spliced(text: str, key: str, value: Any, name: str = "params.yaml") -> Any:
    """The params data after splicing `key` = `value` into `text`."""
    return parse_text(splice(text, Path(name), key, value), name)


def _spliced_or_refused(text: str, key: str, value: Any) -> Any:
    """Like `_spliced`, but None when splice() refuses with a clear UsageError (also a fix)."""
    try:
        return _spliced(text, key, value)
    except UsageError:
        return None


def _break_store(project: Project) -> None:
    state = project.root / ".pipeline"
    for name in ("runs.db-wal", "runs.db-shm"):
        (state / name).unlink(missing_ok=True)
    (state / "runs.db").write_text("garbage, not a database\n")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = RunStore.for_project(tmp_path / "state")
    yield opened
    opened.close()


def _add_run(
    store: RunStore, run_id: str, started: float, params: dict[str, Any], metrics: dict[str, Any]
) -> None:
    row = RunRow(id=run_id, kind="run", command="c", started_at=started, status="running")
    store.start(row, params)
    store.finish(run_id, "succeeded", started + 1, metrics)


# == --param: where the file is ================================================================


def test_param_with_an_absolute_params_file_path_leaves_the_users_file_alone(
    three: Project,
) -> None:
    before, status = snapshot(three.root), three.git("status", "--porcelain")
    with contextlib.suppress(UsageError):
        run(three, params=(f"{three.root}/params.yaml:train.lr=0.5",))
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


# == --param: what the value does to the file ==================================================


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
    assert _spliced_or_refused(text, "desc", "world") in (None, {"desc": "world", "tag": "x"})


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a scalar node's start mark includes its anchor; splice() deletes `&lr` and"
    " the file's `*lr` alias becomes undefined",
)
def test_splicing_an_anchored_value_keeps_its_aliases_valid() -> None:
    text = "lr: &lr 0.1\nother: *lr\n"
    spliced = _spliced_or_refused(text, "lr", 0.5)
    assert spliced is None or spliced["lr"] == 0.5


@pytest.mark.xfail(
    strict=True,
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
    with contextlib.suppress(UsageError):  # JSON has no infinity: refusing is fine too
        text = splice('{"lr": 0.1}', Path("params.json"), "lr", float("inf"))
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


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
        try:
            points(session.project, ("a.b=2",), ())
        except UsageError as exc:
            assert exc.hint != "did you mean 'a.b'?"


# == isolated workspaces =======================================================================


def test_run_with_a_manifest_given_by_file_runs_that_manifest(project: Project) -> None:
    outer = project.root.parent
    marker = outer / "outer-ran"
    (outer / "MLproject").write_text(f"name: outer\nstages:\n  outer:\n    cmd: touch {marker}\n")
    project.params(PARAMS_TEXT)
    project.write("raw.txt", "raw data\n")
    project.write("exp.yaml", yaml.safe_dump(three_stages(project), sort_keys=False))
    project.commit(message="custom manifest name")
    api.repro(ReproOptions(root=project.root / "exp.yaml"))
    project.clear_executions()

    experiment = api.run(
        RunOptions(root=project.root / "exp.yaml", params=("train.lr=0.2",), jobs=1)
    )

    assert not marker.exists()
    [only] = experiment.points
    assert only.succeeded, only.error
    assert project.executions() == ["train", "evaluate"]


def test_run_in_a_git_ignored_project_never_runs_in_place(make_project: Any) -> None:
    top = make_project("top")
    top.write(".gitignore", "scratch/\n")
    top.commit(message="ignore scratch")
    project = Project(top.root / "scratch" / "exp")
    project.root.mkdir(parents=True)
    project.write("raw.txt", "raw data\n")
    project.params(PARAMS_TEXT)
    project.manifest(three_stages(project), commit=False)
    assert ran(project.repro()) == ["prepare", "train", "evaluate"]
    project.write("raw.txt", "new raw data\n")  # every stage is stale
    before = snapshot(project.root)

    with contextlib.suppress(PipelineError):
        run(project)

    assert snapshot(project.root) == before


def _nested_repository(project: Project) -> None:
    nested = project.root / "vendor"
    nested.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=nested, check=True)
    (nested / "x.txt").write_text("x\n")


def _submodule(project: Project) -> None:
    tree = project.git("write-tree").strip()
    commit = project.git("commit-tree", "-m", "sub", tree).strip()
    project.git("update-index", "--add", "--cacheinfo", f"160000,{commit},sub")
    project.git("commit", "-q", "-m", "a submodule")
    (project.root / "sub").mkdir()
    (project.root / "sub" / "a.txt").write_text("a\n")


@pytest.mark.parametrize("make", [_nested_repository, _submodule], ids=["nested-repo", "submodule"])
def test_run_in_a_project_holding_another_repository(three: Project, make: Any) -> None:
    make(three)
    [only] = run(three, params=("train.lr=0.2",)).points
    assert only.succeeded, only.error
    assert leftovers(three) == []


def _one_stage(project: Project, dep: str, cmd: str) -> None:
    project.params(PARAMS_TEXT)
    stage = {
        "cmd": f"{cmd} && {log(project, 's')}",
        "deps": [dep],
        "params": ["train.lr"],
        "outs": ["out.txt"],
    }
    project.manifest({"name": "one", "stages": {"s": stage}}, commit=False)
    project.commit(message="one stage")
    assert ran(project.repro()) == ["s"]
    project.commit(message="results")
    project.clear_executions()


def test_run_with_a_dep_directory_that_git_partly_ignores(project: Project) -> None:
    project.write(".gitignore", "data/*.csv\n")
    project.write("data/README.md", "what the data is\n")
    project.write("data/a.csv", "1,2\n")
    _one_stage(project, "data", "cat data/a.csv > out.txt")
    [only] = run(project, params=("train.lr=0.2",)).points
    assert only.succeeded


def test_run_with_a_symlink_to_data_outside_the_project(project: Project) -> None:
    shared = project.root.parent / "shared"
    shared.mkdir()
    (shared / "raw.txt").write_text("raw\n")
    os.symlink("../shared/raw.txt", project.root / "raw.txt")
    _one_stage(project, "raw.txt", "cat raw.txt > out.txt")
    [only] = run(project, params=("train.lr=0.2",)).points
    assert only.succeeded
    assert project.executions() == ["s"]


def test_run_never_writes_through_a_symlinked_params_file(project: Project) -> None:
    project.write("conf/params.yaml", PARAMS_TEXT)
    os.symlink(project.root / "conf" / "params.yaml", project.root / "params.yaml")
    project.write("raw.txt", "raw data\n")
    project.manifest(three_stages(project), commit=False)
    project.commit(message="linked params")
    project.repro()
    project.commit(message="results")

    run(project, params=("train.lr=0.5",))

    assert project.read("conf/params.yaml") == PARAMS_TEXT


# == checkout RUN ==============================================================================


def test_checkout_run_never_writes_outside_the_project(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.3",))
    run_id = experiment.points[0].run_id
    data = b"written by checkout\n"
    digest = digest_bytes(data)
    with open_session(three.root) as session:
        session.store.put_bytes(data, digest)
    store = RunStore.for_project(three.root / ".pipeline")
    try:
        store.record_files(run_id, [Artifact("../escaped.txt", digest, len(data), 1)])
    finally:
        store.close()

    with contextlib.suppress(PipelineError):
        api.checkout(three.root, run=run_id, force=True)

    assert not (three.root.parent / "escaped.txt").exists()


def test_checkout_run_writes_nothing_when_an_object_is_missing(three: Project) -> None:
    experiment = run(three, params=("train.lr=0.3",))
    run_id = experiment.points[0].run_id
    files = {a.path: a for a in _run_files(three, run_id)}
    with open_session(three.root) as session:
        session.store.path(files["pipeline.lock"].hash).unlink()
    before = snapshot(three.root)

    with pytest.raises(PipelineError):
        api.checkout(three.root, run=run_id)

    assert snapshot(three.root) == before


# == the store: reading and failing to write ===================================================


def test_reading_runs_leaves_no_untracked_state_files(project: Project) -> None:
    project.manifest({"name": "x", "stages": {"s": {"cmd": "true"}}})
    assert api.runs(project.root) == []
    assert ".pipeline" not in project.git("status", "--porcelain", "--untracked-files=all")


def test_a_repro_that_cannot_be_recorded_says_so(three: Project) -> None:
    _break_store(three)
    three.write("raw.txt", "changed\n")
    done = three.cli("repro", env=_cli_env())
    assert done.returncode == 0, done.stderr
    assert re.search(r"record|run store|runs\.db", done.stdout + done.stderr, re.I)


def test_a_run_that_cannot_be_recorded_does_not_claim_a_run_id(three: Project) -> None:
    _break_store(three)
    done = three.cli("run", "--param", "train.lr=0.2", env=_cli_env())
    assert "Traceback" not in done.stderr
    assert not re.search(r"^recorded as run", done.stdout, re.M)


def test_an_entry_point_whose_env_cannot_be_built_is_recorded_failed(project: Project) -> None:
    project.write("python_env.yaml", "python: '2.1'\n")
    project.manifest(
        "name: m\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    parameters:\n      a: {type: float, default: 1}\n    command: 'echo {a}'\n"
    )
    with pytest.raises(PipelineError):
        api.run_entry(project.root, "main")
    [recorded] = api.runs(project.root)
    assert recorded.status == "failed"


def test_an_entry_point_format_spec_that_does_not_fit_is_a_usage_error(
    project: Project,
) -> None:
    project.manifest(
        "name: m\nentry_points:\n  main:\n    parameters:\n      a: string\n"
        "    command: 'echo {a:.2f}'\n"
    )
    with pytest.raises(UsageError):
        api.run_entry(project.root, "main", ("a=x",), env_manager="local")


def test_a_failed_stage_is_not_recorded_with_the_previous_outputs(project: Project) -> None:
    project.write("raw.txt", "1\n")
    stage = {"cmd": 'test "$(cat raw.txt)" = 1 && cp raw.txt out.txt', "deps": ["raw.txt"]}
    project.manifest({"name": "x", "stages": {"s": {**stage, "outs": ["out.txt"]}}})
    first = project.repro()
    project.write("raw.txt", "2\n")
    second = project.repro()
    assert second.failed is not None
    assert first.run_id is not None and second.run_id is not None
    [good] = api.run_detail(project.root, first.run_id).stages
    [bad] = api.run_detail(project.root, second.run_id).stages
    assert bad.outcome == "failed"
    assert bad.outs == ()
    assert bad.fingerprint != good.fingerprint
    assert all(d.hash != good.deps[0].hash for d in bad.deps)


# == lineage ===================================================================================


@pytest.fixture
def dir_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """prep writes the directory data/ (a.txt, b.txt); train reads data/a.txt only."""
    monkeypatch.chdir(project.root)
    project.write("raw.txt", "raw\n")
    stages = {
        "prep": {
            "cmd": "mkdir -p data && tr a-z A-Z < raw.txt > data/a.txt && echo b > data/b.txt",
            "deps": ["raw.txt"],
            "outs": ["data"],
        },
        "train": {
            "cmd": "{ cat data/a.txt; echo model; } > model.txt",
            "deps": ["data/a.txt"],
            "outs": ["model.txt"],
        },
    }
    project.manifest({"name": "d", "stages": stages})
    assert ran(project.repro()) == ["prep", "train"]
    return project


@pytest.mark.xfail(
    strict=True,
    reason="BUG: lineage looks a file's hash up among recorded outs only; a file inside an"
    " output directory (its hash is not the directory's) is reported as made by no run",
)
def test_lineage_of_a_file_inside_an_output_directory(dir_project: Project) -> None:
    node = api.lineage(dir_project.root, "data/b.txt")
    assert node.stage is not None and node.stage.stage == "prep"


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a dep inside an upstream output directory (data/a.txt in data/) has a file"
    " hash no out matches, so lineage stops there and calls it raw data",
)
def test_lineage_follows_a_dep_inside_an_upstream_output_directory(dir_project: Project) -> None:
    node = api.lineage(dir_project.root, "model.txt")
    [dep] = node.inputs
    assert dep.path == "data/a.txt"
    assert dep.stage is not None and dep.stage.stage == "prep"


def test_lineage_matches_the_path_when_several_files_have_the_same_bytes(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    project.write("raw.txt", "raw\n")
    stages = {
        "train": {"cmd": "tr a-z A-Z < raw.txt > model.txt", "deps": ["raw.txt"],
                  "outs": ["model.txt"]},
        "export": {"cmd": "mkdir -p export && cp model.txt export/model.txt",
                   "deps": ["model.txt"], "outs": ["export/model.txt"]},
        "copy": {"cmd": "cp raw.txt copy.txt", "deps": ["raw.txt"], "outs": ["copy.txt"]},
    }  # fmt: skip
    project.manifest({"name": "same", "stages": stages})
    project.repro()

    exported = api.lineage(project.root, "export/model.txt")
    assert exported.stage is not None
    assert exported.stage.stage == "export"
    model = api.lineage(project.root, "model.txt")
    [raw] = model.inputs  # raw data, though stage copy wrote the same bytes to copy.txt
    assert (raw.path, raw.stage) == ("raw.txt", None)


def test_lineage_does_not_load_every_run_that_recorded_a_hash(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.runs.lineage import lineage

    with store.batch() as writer:
        for i in range(40):
            run_id = f"r{i:03d}"
            writer.start(RunRow(run_id, "repro", "c", float(i), "succeeded"), {})
            outcome = "ran" if i == 0 else "up to date"
            out = (Artifact("model.txt", "h-model", 1, 1),)
            writer.record_stage(run_id, StageRow("train", outcome, outs=out))
    calls: list[str] = []
    detail = RunStore.detail

    def counted(self: RunStore, ref: str) -> Any:
        calls.append(ref)
        return detail(self, ref)

    monkeypatch.setattr(RunStore, "detail", counted)

    class Hasher:
        def hash(self, path: str) -> HashInfo:
            return HashInfo("h-model", 1, 1)

    node = lineage(store, Hasher(), "model.txt")  # type: ignore[arg-type]
    assert node.run is not None and node.run.id == "r000"
    assert len(calls) <= 2


# == compare ===================================================================================


def test_compare_json_is_valid_with_nan_and_infinite_metrics(store: RunStore) -> None:
    _add_run(store, "r1", 1.0, {"lr": 0.1}, {"m.json:loss": float("nan")})
    _add_run(store, "r2", 2.0, {"lr": 0.2}, {"m.json:loss": float("inf")})
    text = render(compare(store), "json")
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_compare_sort_by_a_string_param(store: RunStore) -> None:
    for i, opt in enumerate(["adam", "sgd", None, "rmsprop"]):
        _add_run(store, f"r{i}", float(i), {"opt": opt} if opt else {}, {"m.json:loss": i})
    down = compare(store, sort_by="opt", descending=True)
    up = compare(store, sort_by="opt", descending=False)
    assert [down.values[r.id].get("opt") for r in down.runs] == ["sgd", "rmsprop", "adam", None]
    assert [up.values[r.id].get("opt") for r in up.runs] == ["adam", "rmsprop", "sgd", None]


def test_compare_keeps_a_param_and_a_metric_of_the_same_name_apart(store: RunStore) -> None:
    _add_run(store, "r1", 1.0, {"epochs": 50}, {"m.json:epochs": 12})
    _add_run(store, "r2", 2.0, {"epochs": 80}, {"m.json:epochs": 30})
    rows = {row["id"]: row for row in compare(store).to_json()}
    assert rows["r1"]["params"]["epochs"] == 50
    assert 12 in rows["r1"]["metrics"].values()


def test_compare_markdown_escapes_pipes(store: RunStore) -> None:
    _add_run(store, "r1", 1.0, {"tag": "a|b"}, {"m.json:score": 1})
    _add_run(store, "r2", 2.0, {"tag": "c"}, {"m.json:score": 2})
    header, _, *rows = render(compare(store), "md").splitlines()
    width = len(re.split(r"(?<!\\)\|", header))
    assert all(len(re.split(r"(?<!\\)\|", row)) == width for row in rows)


# == metrics / params of revisions =============================================================


def test_metrics_of_a_revision_read_uncached_metrics_from_git(project: Project) -> None:
    project.params("lr: 0.1\n")
    stage = {"cmd": "echo '{\"score\": 1}' > m.json", "params": ["lr"]}
    project.manifest(
        {"name": "x", "stages": {"ev": {**stage, "metrics": [{"m.json": {"cache": False}}]}}},
        commit=False,
    )
    project.commit(message="stage")
    project.repro()
    project.commit(message="results, m.json in git")
    shutil.rmtree(project.root / ".pipeline" / "cache")
    assert api.metrics_show(project.root, "HEAD").values == {"m.json:score": 1}


def test_an_ambiguous_run_name_in_metrics_show_says_ambiguous(three: Project) -> None:
    run(three, params=("train.lr=0.2",), name="same")
    time.sleep(0.01)
    run(three, params=("train.lr=0.3",), name="same")
    with pytest.raises(UsageError, match="ambiguous"):
        api.metrics_show(three.root, "same")
