"""`Bounds`: the one check every reader and writer of project paths goes through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.paths import Bounds, check_state_dir
from pipeline.errors import OutsideProject


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with an inside link, an outside link at two depths, and a link to a file outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a/b").mkdir(parents=True)
    (outside / "d").mkdir(parents=True)
    (outside / "f.txt").write_text("x")
    os.symlink("a", root / "in")
    os.symlink("../../outside", root / "a/out")
    os.symlink("../outside/f.txt", root / "file")
    os.symlink("out/d", root / "a/deep")  # a link to a link that leaves
    return root


@pytest.mark.parametrize(
    "relpath",
    ["../x", "/etc/passwd", "a/../../x", "a/out/f.txt", "a/out", "file", "a/deep/new", "a/deep"],
)
def test_paths_that_leave_are_refused(tree: Path, relpath: str) -> None:
    with pytest.raises(OutsideProject, match="outside the project"):
        Bounds(tree).path(relpath)


@pytest.mark.parametrize("relpath", ["a/b/new.txt", "in/b", "in/new", "a", "new/dir/file"])
def test_paths_that_stay_inside_are_allowed(tree: Path, relpath: str) -> None:
    assert Bounds(tree).path(relpath) == f"{tree}/{os.path.normpath(relpath)}"


def test_a_link_itself_may_be_replaced_but_not_followed(tree: Path) -> None:
    bounds = Bounds(tree)
    assert bounds.path("file", follow=False) == f"{tree}/file"  # unlinking it is harmless
    with pytest.raises(OutsideProject):
        bounds.path("a/out/f.txt", follow=False)  # its parent still leaves


def test_a_directory_replaced_by_a_link_is_seen_after_forget(tree: Path) -> None:
    bounds = Bounds(tree)
    bounds.path("a/b/x")
    (tree / "a/b").rmdir()
    os.symlink("../../outside", tree / "a/b")
    bounds.forget()
    with pytest.raises(OutsideProject):
        bounds.path("a/b/x")


def test_state_directory_links_must_stay_inside(tree: Path, tmp_path: Path) -> None:
    state = tree / ".pipeline"
    state.mkdir()
    check_state_dir(tree, state)
    os.symlink(tmp_path / "outside", state / "cache")
    with pytest.raises(OutsideProject, match=r"\.pipeline/cache"):
        check_state_dir(tree, state)


def test_an_experiment_workspace_may_share_its_projects_cache(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / ".pipeline/cache").mkdir(parents=True)
    workspace = project / ".pipeline/tmp/runs/r1"
    (workspace / ".pipeline").mkdir(parents=True)
    os.symlink(project / ".pipeline/cache", workspace / ".pipeline/cache")
    check_state_dir(workspace, workspace / ".pipeline")


_PARTS = st.sampled_from(["a", "b", "in", "out", "deep", "file", "..", ".", "new", ""])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(_PARTS, min_size=1, max_size=6), follow=st.booleans())
def test_an_allowed_path_never_resolves_outside(tree: Path, parts: list[str], follow: bool) -> None:
    relpath = "/".join(parts)
    try:
        path = Bounds(tree).path(relpath, follow=follow)
    except OutsideProject:
        return
    real = os.path.realpath(path if follow else os.path.dirname(path))
    assert real == str(tree) or real.startswith(f"{tree}/")


@pytest.mark.parametrize(
    "inner", ["cache/objects", "cache/objects/ab", "cache/runs/cd", "tmp/runs"]
)
def test_links_deeper_in_the_state_directory_are_refused(
    tree: Path, tmp_path: Path, inner: str
) -> None:
    state = tree / ".pipeline"
    (state / inner).parent.mkdir(parents=True)
    os.symlink(tmp_path / "outside", state / inner)
    with pytest.raises(OutsideProject, match=inner):
        check_state_dir(tree, state)


def test_a_link_replaced_by_a_file_is_no_longer_refused_after_forget(tmp_path: Path) -> None:
    from pipeline.core.hashing import Hasher

    root, outside = tmp_path / "root", tmp_path / "outside.txt"
    (root / "out").mkdir(parents=True)
    outside.write_text("x")
    os.symlink(outside, root / "out" / "link")
    hasher = Hasher(root, None)
    with pytest.raises(OutsideProject):
        hasher.check_inside("out")
    (root / "out" / "link").unlink()
    (root / "out" / "link").write_text("mine")  # a stage now writes a plain file there
    hasher.forget("out")
    hasher.check_inside("out")
