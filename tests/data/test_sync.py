"""`push`, `pull`, `fetch`, `status --remote`, `repro --pull` and the remote run-cache, as two
teammates use them: real CLI subprocesses, git repos in tmp_path, real remotes on loopback.

The story: user A (alice) adds raw data, reproduces, pushes and `git push`es; user B (bob)
clones with another HOME, XDG cache and user name, pulls, finds everything up to date, changes a
param, reruns only what it affects and shares it with `push --runs`; A pulls and has B's outputs
byte for byte, B's runs (user, stage logs) and B's params in `compare`.

The smaller tests each check one promise: a pull of a target (a stage, one file of a tracked
directory) brings only that; `fetch` fills the cache and leaves the workspace alone; a second
push sends nothing and trusts its index instead of listing the remote, until the remote's
generation changes; `push: false` outs stay home and `remote:` outs go to (and come from) their
own remote; a target push sends only the target and `--all-commits` sends old commits' objects;
`status --remote` says what is where; `repro --pull` fetches missing deps; a clone restores a
stage from the remote's run-cache instead of running it (`--no-run-cache` runs it); a
teammate's experiment comes with `pull --runs` and `checkout RUN`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.config import RemoteSettings
from pipeline.store.objects import ObjectStore
from pipeline.store.remote import Remote
from tests.cli.support import _json, _ok
from tests.conftest import Project, cli_env, record
from tests.servers import RemoteSpec, configure

# --- the teammates' project ------------------------------------------------------------------

PARAMS = {"train": {"lr": 1}}


def story_manifest(**extra_outs: Any) -> dict[str, Any]:
    """raw/ (tracked by `add`) → prepare → train (train.lr) → evaluate (a metric); and `report`,
    which reads raw/ only. Every stage appends its name to the execution log."""
    return {
        "name": "story",
        "stages": {
            "prepare": {
                "cmd": "mkdir -p data && cat raw/*.txt > data/prepared.txt && " + record("prepare"),
                "deps": ["raw"],
                "outs": ["data/prepared.txt"],
            },
            "train": {
                "cmd": "echo training with lr=${train.lr} && "
                "{ cat data/prepared.txt; echo lr=${train.lr}; } > model.txt && " + record("train"),
                "deps": ["data/prepared.txt"],
                "params": ["train.lr"],
                "outs": ["model.txt"],
            },
            "evaluate": {
                "cmd": 'echo "score: $(wc -c < model.txt)" > metrics.yaml && ' + record("evaluate"),
                "deps": ["model.txt"],
                "metrics": [{"metrics.yaml": {"cache": False}}],
            },
            "report": {
                "cmd": "ls raw > report.txt && " + record("report"),
                "deps": ["raw"],
                "outs": ["report.txt"],
            },
            **extra_outs,
        },
    }


ALL_STAGES = ["prepare", "report", "train", "evaluate"]
OUTPUTS = ["raw", "data/prepared.txt", "model.txt", "report.txt"]


@dataclass
class User:
    """One teammate: a clone of the project, and the environment their commands run in."""

    project: Project
    env: dict[str, str]

    @property
    def root(self) -> Path:
        return self.project.root

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.project.cli(*args, env=self.env, timeout=timeout)

    def ok(self, *args: str) -> str:
        return _ok(self.run(*args)).stdout

    def json(self, *args: str) -> Any:
        return _json(self.run(*args, "--json"))

    def executions(self) -> list[str]:
        return self.project.executions()

    def store(self) -> ObjectStore:
        return ObjectStore(self.root / ".pipeline" / "cache")


def user_env(home: Path, name: str, spec: RemoteSpec) -> dict[str, str]:
    """A teammate of their own: HOME, XDG cache and user name; the remote's credentials."""
    home.mkdir(parents=True, exist_ok=True)
    return cli_env(
        **spec.env,
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        USER=name,
        LOGNAME=name,
    )


def configure_here(root: Path, spec: RemoteSpec, name: str = "origin") -> None:
    """What a clone lacks: this machine's options (key files…), kept in config.local.yaml."""
    from pipeline import api

    for key in ("keyfile", "known_hosts"):
        if key in spec.options:
            api.remote_modify(root, name, key, str(spec.options[key]), local=True)


def write_story(project: Project, spec: RemoteSpec | None, **extra_outs: Any) -> None:
    """The project's manifest, params and remote, committed; raw/ written, not tracked yet."""
    project.params(PARAMS)
    project.manifest(story_manifest(**extra_outs), commit=False)
    if spec is not None:
        configure(project.root, spec)
    project.commit(message="the story project")
    for i in range(3):
        project.write(f"raw/part{i}.txt", f"raw part {i}\n")


def alice(make_project: Callable[..., Project], tmp_path: Path, spec: RemoteSpec) -> User:
    project = make_project("alice")
    return User(project, user_env(tmp_path / "alice" / "home", "alice", spec))


def published(
    make_project: Callable[..., Project], tmp_path: Path, spec: RemoteSpec
) -> tuple[User, Path]:
    """Alice's project, added, reproduced, committed and pushed (API, for speed); the bare git
    repository she pushed it to."""
    from pipeline import api

    a = alice(make_project, tmp_path, spec)
    write_story(a.project, spec)
    api.add(a.root, [str(a.root / "raw")])  # paths are relative to the cwd
    a.project.repro()
    a.project.commit(message="results")
    reports = api.push(root=a.root)
    assert reports[0].objects.transferred > 0
    return a, git_publish(a.project, tmp_path)


def git_publish(project: Project, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    if not bare.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, capture_output=True)
    project.git("push", "-q", str(bare), "HEAD:refs/heads/main")
    return bare


def clone(bare: Path, tmp_path: Path, name: str, spec: RemoteSpec) -> User:
    """`git clone` into tmp_path/NAME/proj, as the teammate NAME."""
    root = tmp_path / name / "proj"
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "clone", "-q", "-b", "main", str(bare), str(root)],
        check=True,
        capture_output=True,
    )
    user = User(Project(root.resolve()), user_env(tmp_path / name / "home", name, spec))
    configure_here(user.root, spec)
    return user


def remote_of(spec: RemoteSpec, root: Path) -> Remote:
    return Remote(RemoteSettings("origin", spec.url, dict(spec.options)), root)


def on_remote(spec: RemoteSpec, root: Path, digest: str) -> bool:
    remote = remote_of(spec, root)
    return remote.size(remote.object_path(digest)) is not None


def out_hash(project: Project, stage: str, path: str) -> str:
    entry = project.lock()["stages"][stage]
    return str(next(o["hash"] for o in entry["outs"] if o["path"] == path))


def sync_summary(reports: list[dict[str, Any]]) -> dict[str, int]:
    """The `--json` reports of push/fetch/pull, summed over remotes."""
    return {
        "transferred": sum(r["objects"]["transferred"] for r in reports),
        "present": sum(r["objects"]["present"] for r in reports),
        "runs": sum(r["runs"] for r in reports),
        "records": sum(r["records"] for r in reports),
    }


def same_files(a: Project, b: Project, paths: list[str]) -> None:
    for rel in paths:
        left, right = a.root / rel, b.root / rel
        if left.is_dir():
            names = sorted(p.relative_to(left).as_posix() for p in left.rglob("*"))
            assert names == sorted(p.relative_to(right).as_posix() for p in right.rglob("*"))
            for name in names:
                if (left / name).is_file():
                    assert (left / name).read_bytes() == (right / name).read_bytes(), name
        else:
            assert left.read_bytes() == right.read_bytes(), rel


# --- the whole story ------------------------------------------------------------------------


@pytest.mark.slow
def test_two_teammates_share_data_outputs_and_runs(
    make_project: Callable[..., Project], tmp_path: Path, s3_remote: RemoteSpec
) -> None:
    """The acceptance story, on S3 (moto). Directory and SSH remotes carry the same objects
    (tests/store/test_transfer.py runs each transfer on all three); here each CLI call costs
    about a second, so the story runs once."""
    from pipeline import api

    spec = s3_remote

    # A: add raw data, repro, push, git push.
    a = alice(make_project, tmp_path, spec)
    write_story(a.project, spec)
    assert "added: raw (3 files" in a.ok("add", "raw")
    a.ok("repro")
    assert sorted(a.executions()) == sorted(ALL_STAGES)
    a.project.commit(message="first results")
    pushed = sync_summary(a.json("push"))
    assert pushed["transferred"] >= 6  # raw/ (3 files + listing), prepared, model, report
    assert pushed["runs"] == len(ALL_STAGES)
    bare = git_publish(a.project, tmp_path)

    # B: clone elsewhere, with another HOME and XDG cache; pull; everything is up to date.
    b = clone(bare, tmp_path, "bob", spec)
    assert not (b.root / "model.txt").exists()
    pulled = b.json("pull")
    assert sorted(pulled[-1]["checkout"]["restored"]) == sorted(OUTPUTS)
    same_files(a.project, b.project, [*OUTPUTS, "metrics.yaml"])
    status = b.json("status")
    assert status["up_to_date"] is True
    assert {s["action"] for s in status["stages"]} == {"up to date"}
    assert "Everything is up to date (4 stages)" in b.ok("repro")
    assert b.executions() == []

    # B changes a param: only the stages it affects run; B shares results and runs.
    b.project.params({"train": {"lr": 2}})
    b.ok("repro")
    assert b.executions() == ["train", "evaluate"]
    assert "lr=2" in b.project.read("model.txt")
    shared = sync_summary(b.json("push", "--runs"))
    assert shared["transferred"] >= 1
    assert shared["records"] >= 1
    b.project.commit(message="lr 2")
    b.project.git("push", "-q", "origin", "main")

    # A gets B's commit, then B's outputs (byte-identical) and B's runs.
    a.project.git("pull", "-q", "--ff-only", str(bare), "main")
    a.project.clear_executions()
    back = sync_summary(a.json("pull", "--runs"))
    assert back["records"] >= 1
    same_files(a.project, b.project, [*OUTPUTS, "metrics.yaml", "pipeline.lock"])
    assert "Everything is up to date (4 stages)" in a.ok("repro")
    assert a.executions() == []
    bobs = [r for r in api.runs(a.root) if r.user == "bob"]  # `pipeline runs`, in-process
    assert bobs
    # B's stage log came along: what train printed on B's machine, readable on A's.
    (train,) = [s for s in api.run_detail(a.root, bobs[0].id).stages if s.stage == "train"]
    assert train.log_hash is not None
    assert "training with lr=2" in a.store().path(train.log_hash).read_text()
    table = {row["id"]: row for row in a.json("compare", "--all-columns")}
    compared = [table[r.id] for r in bobs if r.id in table]
    assert any(row["params"].get("train.lr") == 2 for row in compared), table
    assert any(row["metrics"] for row in compared), table


# --- what moves -------------------------------------------------------------------------------


def test_pull_of_a_target_brings_only_what_it_needs(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    a, bare = published(make_project, tmp_path, local_remote)
    b = clone(bare, tmp_path, "bob", local_remote)

    done = b.json("pull", "train")
    assert done[-1]["checkout"]["restored"] == ["model.txt"]
    assert (b.root / "model.txt").read_bytes() == (a.root / "model.txt").read_bytes()
    for absent in ("raw", "data/prepared.txt", "report.txt"):
        assert not (b.root / absent).exists(), absent
    held = set(b.store().all_objects())
    assert out_hash(a.project, "train", "model.txt") in held
    assert out_hash(a.project, "report", "report.txt") not in held
    assert a.project.lock()["data"]["raw"]["hash"] not in held

    # One file of a tracked directory whose listing is not in the cache yet.
    done = b.json("pull", "raw/part1.txt")
    assert done[-1]["checkout"]["restored"] == ["raw/part1.txt"]
    assert sorted(p.name for p in (b.root / "raw").iterdir()) == ["part1.txt"]
    assert b.project.read("raw/part1.txt") == a.project.read("raw/part1.txt")


def test_fetch_fills_the_cache_and_leaves_the_workspace_alone(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    a, bare = published(make_project, tmp_path, local_remote)
    b = clone(bare, tmp_path, "bob", local_remote)
    fetched = sync_summary(b.json("fetch"))
    assert fetched["transferred"] >= 6
    assert fetched["runs"] == len(ALL_STAGES)  # the lock's run-cache entries came too
    for path in OUTPUTS:
        assert not (b.root / path).exists(), path
    held = set(b.store().all_objects())
    assert out_hash(a.project, "train", "model.txt") in held

    # Everything needed is here now: checkout works with the remote gone.
    Path(local_remote.url).rename(tmp_path / "remote-gone")
    restored = b.json("checkout")
    assert sorted(restored["restored"]) == sorted(OUTPUTS)
    same_files(a.project, b.project, OUTPUTS)


def test_second_push_sends_nothing_and_never_lists_the_remote(
    make_project: Callable[..., Project], tmp_path: Path, s3_remote: RemoteSpec
) -> None:
    a, _ = published(make_project, tmp_path, s3_remote)
    again = sync_summary(a.json("push"))
    assert again["transferred"] == 0
    assert again["runs"] == 0
    assert again["present"] >= 6

    # Empty the bucket's objects behind the project's back: a push that trusts its index of
    # what the remote holds still sends nothing (it neither listed nor probed the objects)…
    from pipeline import api
    from pipeline.data.options import SyncOptions
    from tests.servers import s3_client

    bucket = s3_remote.url.removeprefix("s3://").split("/", 1)[0]
    client = s3_client(s3_remote.options["endpoint_url"])
    listed = client.list_objects_v2(Bucket=bucket, Prefix="store/files/")["Contents"]
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})
    (blind,) = api.push(root=a.root)
    assert blind.objects.transferred == 0
    status = api.remote_status(SyncOptions(), a.root)  # `status --remote`, from the index too
    assert sorted(status.to_json()["in_sync"]) == sorted(OUTPUTS)

    # …until the remote's generation changes (as `gc --remote` renews it) and the push looks
    # at it again: at once with `recheck: 0` (by default, 10 minutes after the last look).
    remote_of(s3_remote, a.root).renew_generation()
    api.remote_modify(a.root, "origin", "recheck", "0")
    (resent,) = api.push(root=a.root)
    assert resent.objects.transferred == len(listed)
    assert resent.objects.present == 0


def test_push_false_stays_local_and_remote_outs_go_to_their_remote(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    from pipeline import api

    origin = RemoteSpec(str(tmp_path / "origin-store"))
    other = RemoteSpec(str(tmp_path / "other-store"))
    a = alice(make_project, tmp_path, origin)
    extra = {
        "scratch": {
            "cmd": "echo scratch > scratch.txt",
            "outs": [{"scratch.txt": {"push": False}}],
        },
        "shared": {
            "cmd": "echo shared > shared.txt",
            "outs": [{"shared.txt": {"remote": "other"}}],
        },
    }
    write_story(a.project, origin, **extra)
    configure(a.root, other, name="other", default=False)
    api.add(a.root, [str(a.root / "raw")])  # paths are relative to the cwd
    a.project.repro()

    reports = {r["remote"]: r for r in a.json("push")}
    assert set(reports) == {"origin", "other"}
    assert reports["other"]["objects"]["transferred"] == 1
    scratch = out_hash(a.project, "scratch", "scratch.txt")
    shared = out_hash(a.project, "shared", "shared.txt")
    model = out_hash(a.project, "train", "model.txt")
    assert on_remote(other, a.root, shared)
    assert not on_remote(origin, a.root, shared)
    assert on_remote(origin, a.root, model)
    assert not on_remote(other, a.root, model)
    for spec in (origin, other):
        assert not on_remote(spec, a.root, scratch)

    # A clone pulls each out from its remote, and skips the one that is never pushed.
    a.project.commit(message="results")
    b = clone(git_publish(a.project, tmp_path), tmp_path, "bob", origin)
    pulled = {r["remote"]: r for r in b.json("pull")}
    assert pulled["other"]["objects"]["transferred"] == 1
    assert b.project.read("shared.txt") == "shared\n"
    assert not (b.root / "scratch.txt").exists()
    assert [r["never_pushed"] for r in pulled.values() if r["never_pushed"]] == [["scratch.txt"]]

    # `-r NAME` sends everything pushable there, still never a `push: false` out.
    a.ok("push", "-r", "origin")
    assert on_remote(origin, a.root, shared)
    assert not on_remote(origin, a.root, scratch)


def test_all_commits_pushes_the_objects_of_old_commits(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    from pipeline import api

    a = alice(make_project, tmp_path, local_remote)
    write_story(a.project, local_remote)
    api.add(a.root, [str(a.root / "raw")])  # paths are relative to the cwd
    a.project.repro()
    a.project.commit(message="lr 1")
    old = out_hash(a.project, "train", "model.txt")
    a.project.params({"train": {"lr": 2}})
    a.project.repro()
    a.project.commit(message="lr 2")
    new = out_hash(a.project, "train", "model.txt")

    a.ok("push", "train")  # a target: only what it names
    assert on_remote(local_remote, a.root, new)
    assert not on_remote(local_remote, a.root, a.project.lock()["data"]["raw"]["hash"])
    a.ok("push")
    assert not on_remote(local_remote, a.root, old)
    assert on_remote(local_remote, a.root, a.project.lock()["data"]["raw"]["hash"])
    assert sync_summary(a.json("push", "--all-commits"))["transferred"] == 1
    assert on_remote(local_remote, a.root, old)


def test_status_remote_lists_what_is_missing_where(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    from pipeline import api

    a = alice(make_project, tmp_path, local_remote)
    write_story(a.project, local_remote)
    api.add(a.root, [str(a.root / "raw")])  # paths are relative to the cwd
    a.project.repro()
    a.project.commit(message="results")
    before = a.json("status", "--remote")
    assert before["remote"] == "origin"
    assert sorted(before["push"]) == sorted(OUTPUTS)
    assert before["pull"] == before["nowhere"] == before["in_sync"] == []

    api.push(root=a.root)
    after = a.json("status", "--remote")
    assert sorted(after["in_sync"]) == sorted(OUTPUTS)
    assert after["push"] == []

    # A new model, committed and shared by git but never pushed: nowhere, from a clone.
    a.project.params({"train": {"lr": 3}})
    a.project.repro()
    a.project.commit(message="lr 3, not pushed")
    assert a.json("status", "--remote")["push"] == ["model.txt"]
    b = clone(git_publish(a.project, tmp_path), tmp_path, "bob", local_remote)
    seen = b.json("status", "--remote")
    assert sorted(seen["pull"]) == ["data/prepared.txt", "raw", "report.txt"]
    assert seen["nowhere"] == ["model.txt"]
    text = b.ok("status", "--remote")
    assert "in neither" in text
    assert "only on origin" in text


def test_repro_pull_fetches_missing_deps_first(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    _, bare = published(make_project, tmp_path, local_remote)
    b = clone(bare, tmp_path, "bob", local_remote)
    b.project.params({"train": {"lr": 5}})

    # Without its dep on disk nor in the cache, and no run-cache to restore from, train's
    # upstream would have to run; --pull brings the dep instead.
    b.ok("repro", "--pull", "--no-run-cache", "train")
    assert b.executions() == ["train"]
    assert "lr=5" in b.project.read("model.txt")
    assert (b.root / "data/prepared.txt").is_file()
    assert not (b.root / "report.txt").exists()  # report is not selected


def test_a_clone_restores_a_stage_from_the_remote_run_cache(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    from pipeline import api

    a, bare = published(make_project, tmp_path, local_remote)  # lr=1, pushed
    a.project.params({"train": {"lr": 2}})
    a.project.repro()
    api.push(root=a.root)  # lr=2's entries too; A's commit stays at lr=1
    lr2_model = a.project.read("model.txt")

    b = clone(bare, tmp_path, "bob", local_remote)
    b.project.params({"train": {"lr": 2}})
    out = b.ok("repro", "--pull")  # raw/ first; then train comes from the remote run-cache
    assert "train restored from the cache" in out
    assert b.executions() == []
    assert b.project.read("model.txt") == lr2_model

    # --no-run-cache stays local: on another clone, the same change runs.
    c = clone(bare, tmp_path, "carol", local_remote)
    c.project.params({"train": {"lr": 2}})
    c.ok("repro", "--pull", "--no-run-cache")
    assert c.executions() == ["train", "evaluate"]
    assert c.project.read("model.txt") == lr2_model


def test_a_teammates_experiment_can_be_checked_out(
    make_project: Callable[..., Project], tmp_path: Path, local_remote: RemoteSpec
) -> None:
    from pipeline import api

    a, bare = published(make_project, tmp_path, local_remote)
    b = clone(bare, tmp_path, "bob", local_remote)
    b.ok("pull")
    b.ok("run", "--name", "bobs-idea", "--param", "train.lr=7")
    assert b.project.read("params.yaml") == a.project.read("params.yaml")  # untouched
    assert sync_summary(b.json("push", "--runs"))["records"] >= 1

    assert sync_summary(a.json("pull", "--runs"))["records"] >= 1
    (idea,) = [r for r in api.runs(a.root) if r.name == "bobs-idea"]
    assert (idea.user, idea.kind) == ("bob", "run")
    assert "applied run bobs-idea" in a.ok("checkout", "bobs-idea")
    assert "lr=7" in a.project.read("model.txt")
    assert a.project.lock()["stages"]["train"]["params"]["params.yaml"]["train.lr"] == 7
