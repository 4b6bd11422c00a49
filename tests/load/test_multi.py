"""Several manifests per repository (issue 14, item 1): the root, discovery, paths, the memo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pipeline.core.statmemo import StatMemo
from pipeline.errors import ManifestError, UsageError
from pipeline.load.discover import find_root, list_manifests
from pipeline.load.project import Project, load_project

PREPARE = """\
stages:
  prepare:
    wdir: ../..
    cmd: cp data/raw.txt data/prepared.txt
    deps: [data/raw.txt]
    outs: [data/prepared.txt]
"""
TRAIN = """\
metrics: [metrics.json]
stages:
  train:
    cmd: cp ../../data/prepared.txt model.txt && echo ${lr}
    deps: [../../data/prepared.txt]
    outs: [model.txt]
    params: [lr]
"""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def git_init(root: Path) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A DVC-style repository: `.dvc/` at the root, two pipelines in subfolders."""
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    write(
        root,
        {
            "data/raw.txt": "x\n",
            "pipelines/prepare/dvc.yaml": PREPARE,
            "pipelines/train/dvc.yaml": TRAIN,
            "pipelines/train/params.yaml": "lr: 0.5\n",
        },
    )
    git_init(root)
    return root


P = "pipelines/prepare/dvc.yaml:prepare"
T = "pipelines/train/dvc.yaml:train"


def test_every_manifest_is_one_dag_with_paths_relative_to_its_file(repo: Path) -> None:
    project = load_project(repo / "pipelines" / "train")
    assert project.root == repo.resolve()
    assert project.manifests == ("pipelines/prepare/dvc.yaml", "pipelines/train/dvc.yaml")
    assert list(project.stages) == [P, T]
    prepare, train = project.stages[P], project.stages[T]
    assert (prepare.wdir, prepare.deps, prepare.out_paths) == (
        ".",
        ("data/raw.txt",),
        ("data/prepared.txt",),
    )
    assert (train.wdir, train.deps, train.out_paths) == (
        "pipelines/train",
        ("data/prepared.txt",),
        ("pipelines/train/model.txt",),
    )
    assert project.graph.ancestors([T]) == {P}
    # params.yaml next to its own manifest, tracked under its project-relative path
    assert train.cmd == ("cp ../../data/prepared.txt model.txt && echo 0.5",)
    assert train.params == {"pipelines/train/params.yaml": {"lr": 0.5}}
    assert project.declared.metrics == ("pipelines/train/metrics.json",)
    assert project.manifest == repo.resolve() / "pipelines/train/dvc.yaml"
    assert project.scope == "pipelines/train"
    assert load_project(repo).scope == "."


def test_a_path_may_leave_its_folder_but_not_the_repository(repo: Path) -> None:
    write(repo, {"pipelines/train/dvc.yaml": TRAIN.replace("../../data/prepared", "../../../x")})
    with pytest.raises(ManifestError) as exc:
        load_project(repo)
    assert "dvc.yaml:5:" in exc.value.message
    assert "stages.train.deps.0: path 'pipelines/train/../../../x.txt' is outside" in str(
        exc.value.message
    )
    write(repo, {"pipelines/train/dvc.yaml": "stages:\n  t:\n    wdir: ../../..\n    cmd: x\n"})
    with pytest.raises(ManifestError, match=r"stages\.t\.wdir: path .* is outside"):
        load_project(repo)


def test_the_root_is_the_dvc_repository_or_the_topmost_manifest(tmp_path: Path) -> None:
    write(tmp_path, {"a/dvc.yaml": "stages: {}\n", "a/b/dvc.yaml": "stages: {}\n"})
    assert find_root(tmp_path / "a" / "b") == (tmp_path / "a").resolve()
    (tmp_path / "a" / "b" / ".dvc").mkdir()
    assert find_root(tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()


def test_a_folder_with_a_lock_keeps_its_root(tmp_path: Path) -> None:
    """A project that ran (or an isolated run's workspace, which gets a copy of the lock)."""
    write(tmp_path, {"dvc.yaml": "stages: {}\n", "b/dvc.yaml": "stages: {}\n"})
    assert find_root(tmp_path / "b") == tmp_path.resolve()
    write(tmp_path, {"b/pipeline.lock": "schema: '1'\n"})
    assert find_root(tmp_path / "b") == (tmp_path / "b").resolve()


def test_a_named_manifest_narrows_nothing(repo: Path) -> None:
    """An isolated run reopens its workspace by `Project.manifest`: the first manifest when the
    root has none. Every stage stays in scope, or `pipeline run` at the root ran only some."""
    project = load_project(repo)
    assert project.manifest == repo.resolve() / "pipelines/prepare/dvc.yaml"
    assert project.scope == "."
    assert load_project(project.manifest).scope == "."
    assert load_project(project.manifest).manifests == project.manifests


def test_git_bounds_the_walk_so_side_by_side_projects_stay_apart(tmp_path: Path) -> None:
    """A manifest above the repository is not part of it, and neither is a sibling project."""
    write(
        tmp_path,
        {
            "dvc.yaml": "stages: {}\n",
            "mono/examples/one/MLproject": "stages: {}\n",
            "mono/examples/two/dvc.yaml": "stages: {}\n",
        },
    )
    git_init(tmp_path / "mono")
    project = load_project(tmp_path / "mono" / "examples" / "one")
    assert project.root == (tmp_path / "mono" / "examples" / "one").resolve()
    assert project.manifests == ("MLproject",)


def test_a_workspace_in_a_hidden_folder_is_a_project_of_its_own(repo: Path) -> None:
    workspace = repo / ".pipeline" / "tmp" / "runs" / "r1"
    write(workspace, {"dvc.yaml": "stages: {}\n"})
    assert find_root(workspace) == workspace.resolve()


def test_discovery_skips_ignored_and_hidden_folders(repo: Path) -> None:
    write(
        repo,
        {
            ".gitignore": "/big/\n",
            "big/dvc.yaml": "stages: {}\n",
            ".hidden/dvc.yaml": "stages: {}\n",
            "both/MLproject": "stages: {}\n",
            "both/dvc.yaml": "stages: {}\n",
        },
    )
    expected = ("both/MLproject", "pipelines/prepare/dvc.yaml", "pipelines/train/dvc.yaml")
    assert list_manifests(repo) == expected
    os.rename(repo / ".git", repo / ".git-away")  # without git: a walk, hidden folders skipped
    assert list_manifests(repo) == ("big/dvc.yaml", *expected)


def test_no_manifest_under_a_dvc_root_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    with pytest.raises(UsageError, match=r"no MLproject or dvc\.yaml found under"):
        load_project(tmp_path)


def test_dvc_config_at_the_root_applies_to_every_manifest(repo: Path) -> None:
    write(
        repo,
        {
            ".dvc/config": "[parsing]\nbool = boolean_optional\n",
            "pipelines/train/dvc.yaml": "vars: [{o: {fast: false}}]\nstages:\n"
            "  t:\n    cmd: run ${o}\n",
        },
    )
    assert load_project(repo).stages["pipelines/train/dvc.yaml:t"].cmd == ("run --no-fast",)


def test_environments_of_a_manifest_below_the_root_are_its_own(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "MLproject": "python_env: env.yaml\nstages:\n  a:\n    cmd: x\n",
            "sub/MLproject": "python_env: env.yaml\nstages:\n  a:\n    cmd: y\n",
        },
    )
    project = load_project(tmp_path)
    sub = project.stages["sub/MLproject:a"]
    assert sub.env is not None and project.stages["a"].env is not None
    assert project.environments[sub.env].file == "sub/env.yaml"
    assert project.environments[project.stages["a"].env].file == "env.yaml"


def _memoised_load(root: Path) -> tuple[Project, bool]:
    """The project, and whether it came from the memo."""
    import pipeline.load.project as loading

    real, calls = loading._read_project, []

    def counting(*args: object) -> object:
        calls.append(args)
        return real(*args)  # type: ignore[arg-type]

    state = StatMemo(root / ".pipeline" / "state.db")
    loading._read_project = counting  # type: ignore[assignment]
    try:
        return load_project(root, memo=state), not calls
    finally:
        loading._read_project = real
        state.close()


def _age(root: Path) -> None:
    """Every file an hour old: old enough for the memo to trust its stat."""
    old = (os.stat(root).st_mtime_ns - 3600 * 10**9,) * 2
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".pipeline")]
        for name in files:
            os.utime(os.path.join(folder, name), ns=old)


def test_the_memo_follows_every_manifest(repo: Path) -> None:
    (repo / ".pipeline").mkdir()
    _age(repo)
    _memoised_load(repo)
    assert _memoised_load(repo)[1]
    write(repo, {"pipelines/extra/dvc.yaml": "stages:\n  e:\n    cmd: echo e\n"})
    _age(repo)
    project, recalled = _memoised_load(repo)  # a new manifest: loaded again
    assert not recalled
    assert "pipelines/extra/dvc.yaml:e" in project.stages
    assert _memoised_load(repo)[1]
    write(repo, {"pipelines/extra/dvc.yaml": "stages:\n  ff:\n    cmd: echo ff\n"})
    _age(repo)
    project, recalled = _memoised_load(repo)  # an edited manifest below the root
    assert not recalled
    assert "pipelines/extra/dvc.yaml:ff" in project.stages


def test_without_git_the_walk_is_recalled_until_a_folder_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.load import discover

    write(tmp_path, {"dvc.yaml": "stages: {}\n", "a/dvc.yaml": "stages: {}\n", "d/x/y": "1"})
    (tmp_path / ".pipeline").mkdir()
    old = (os.stat(tmp_path).st_mtime_ns - 3600 * 10**9,) * 2
    for folder, _, _ in os.walk(tmp_path):
        os.utime(folder, ns=old)  # old enough for the memo to trust
    walks: list[object] = []
    real = os.walk

    def walk(*args: object, **kwargs: object) -> object:
        walks.append(args)
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(discover.os, "walk", walk)
    state = StatMemo(tmp_path / ".pipeline" / "state.db")
    try:
        assert list_manifests(tmp_path, state) == ("dvc.yaml", "a/dvc.yaml")
        assert list_manifests(tmp_path, state) == ("dvc.yaml", "a/dvc.yaml")
        assert len(walks) == 1  # the second was recalled
        write(tmp_path, {"d/x/dvc.yaml": "stages: {}\n"})  # d/x's mtime moves
        assert list_manifests(tmp_path, state) == ("dvc.yaml", "a/dvc.yaml", "d/x/dvc.yaml")
        assert len(walks) == 2
    finally:
        state.close()


def test_a_folder_that_is_a_project_of_its_own_is_not_loaded_into_its_parent(
    tmp_path: Path,
) -> None:
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: echo a\n")
    (tmp_path / "sub" / ".dvc").mkdir(parents=True)
    (tmp_path / "sub" / "dvc.yaml").write_text("stages:\n  b:\n    cmd: echo b\n")
    assert list(load_project(tmp_path).stages) == ["a"]
    assert list(load_project(tmp_path / "sub").stages) == ["b"]
