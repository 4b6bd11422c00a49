"""The registry travels with `push --runs` / `pull --runs`: two clones of one project exchange
registry events through a local-directory remote, and histories registered apart merge
without taking back a number either side gave (a clashing registration pulled in takes the
next free number)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import _json, _ok
from tests.cli.test_registry import model_project
from tests.conftest import Project, cli_env
from tests.servers import RemoteSpec, configure


class Teammate:
    """A clone and the user its commands run as."""

    def __init__(self, project: Project, name: str, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.env = cli_env(USER=name, LOGNAME=name, HOME=str(home))

    def ok(self, *args: str) -> str:
        return _ok(self.project.cli(*args, env=self.env)).stdout

    def json(self, *args: str) -> Any:
        return _json(self.project.cli(*args, "--json", env=self.env))

    def package(self, folder: str, text: str) -> None:
        """A package made by hand in the workspace."""
        self.project.write(f"{folder}/MLmodel", '{"flavors": {}}\n')
        self.project.write(f"{folder}/model.txt", text)


@pytest.mark.slow
def test_two_clones_share_and_merge_the_registry(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    spec = RemoteSpec(str(tmp_path / "remote"))
    alice = Teammate(make_project("alice"), "alice", tmp_path / "alice-home")
    model_project(alice.project)
    configure(alice.project.root, spec)
    alice.project.commit(message="the remote")
    alice.ok("registry", "add", "churn", "-m", "baseline")
    alice.ok("registry", "alias", "churn", "champion", "1")
    pushed = alice.json("push", "--runs")
    assert sum(r["events"] for r in pushed) == 2
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    alice.project.git("push", "-q", str(bare), "HEAD:refs/heads/main")

    root = tmp_path / "bob" / "proj"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(bare), str(root)], check=True)
    bob = Teammate(Project(root.resolve()), "bob", tmp_path / "bob-home")
    pulled = bob.json("pull", "--runs")
    assert sum(r["events"] for r in pulled) == 2
    shown = bob.json("registry", "show", "churn@champion")
    assert (shown["version"], shown["user"], shown["stage"]) == (1, "alice", "train")
    assert bob.json("lineage", "models:/churn@champion")["stage"] == "train"  # runs came too

    # Apart: Alice registers one package as v2; Bob another as v2, made champion.
    alice.package("handmade", "alice's\n")
    assert alice.json("registry", "add", "churn", "handmade")["version"] == 2
    bob.package("handmade", "bob's\n")
    assert bob.json("registry", "add", "churn", "handmade")["version"] == 2
    bob.ok("registry", "alias", "churn", "champion", "2", "-m", "bob's is better")
    bob.ok("push", "--runs")

    done = alice.project.cli("pull", "--runs", env=alice.env)
    assert "version 2 was registered twice" in _ok(done).stderr
    alice.ok("push", "--runs")
    bob.ok("pull", "--runs")
    # Each side keeps the v2 it had (numbers given here are never taken back); the other
    # package is v3, and the alias follows Bob's package to whatever number it has.
    for side, theirs in ((alice, {2: "alice", 3: "bob"}), (bob, {2: "bob", 3: "alice"})):
        versions = {v["version"]: v["user"] for v in side.json("registry", "show", "churn")}
        assert versions == {1: "alice", **theirs}
        champion = side.json("registry", "show", "churn@champion")
        assert champion["user"] == "bob"
        history = side.json("registry", "history", "churn")
        assert len(history) == 5
    assert [e["id"] for e in alice.json("registry", "history")] == [
        e["id"] for e in bob.json("registry", "history")
    ]

    # Bob's package reaches Alice from the remote when she loads it.
    from pipeline import api

    found = api.resolve_model(alice.project.root, "models:/churn@champion")
    assert (found.dir / "model.txt").read_text() == "bob's\n"
