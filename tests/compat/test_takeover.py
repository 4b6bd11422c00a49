"""Taking a DVC repository over (issue 14, item 4): stages DVC ran are adopted from `dvc.lock`.

The fast tests write `dvc.lock` by hand, hashing with hashlib as DVC does; the slow one runs
real DVC from the package index in a venv it builds once per session.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.load.dvcmd5 import path_md5
from tests.conftest import Project, dvc_yaml, record

PREPARE = "mkdir -p prepared && cp src/raw.csv prepared/a.csv && echo x > prepared/b.txt"
TRAIN = "cat prepared/a.csv prepared/b.txt > model.txt"
RAW = "a,b\n1,2\n3,4\n"
# What DVC 3.67 wrote for `prepared` above (a.csv = RAW, b.txt = "x\n"): DVC's own listing md5.
PREPARED_MD5 = "6134a2b9fdfb027f1b4904c8fb42ca3c.dir"


def _manifest(project: Project) -> None:
    dvc_yaml(
        project,
        "stages:\n"
        f"  prepare:\n    cmd: {record('prepare')} && {PREPARE}\n"
        "    deps: [src/raw.csv]\n    outs: [prepared]\n"
        f"  train:\n    cmd: {record('train')} && {TRAIN}\n"
        "    deps: [prepared]\n    params: [lr]\n    outs: [model.txt]\n",
    )
    project.write("params.yaml", "lr: 0.1\n")
    project.write("src/raw.csv", RAW)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _dir_md5(files: dict[str, bytes]) -> str:
    rows = [{"md5": _md5(b), "relpath": p} for p, b in sorted(files.items())]
    return _md5(json.dumps(rows, sort_keys=True).encode()) + ".dir"


def _dvc_lock(project: Project, *, model: bytes = b"a,b\n1,2\n3,4\nx\n") -> None:
    """The dvc.lock DVC writes after running `_manifest`'s stages (DVC 3 format)."""
    prepared = _dir_md5({"a.csv": RAW.encode(), "b.txt": b"x\n"})
    stages = {
        "prepare": {
            "cmd": f"{record('prepare')} && {PREPARE}",
            "deps": [{"path": "src/raw.csv", "hash": "md5", "md5": _md5(RAW.encode())}],
            "outs": [{"path": "prepared", "hash": "md5", "md5": prepared, "nfiles": 2}],
        },
        "train": {
            "cmd": f"{record('train')} && {TRAIN}",
            "deps": [{"path": "prepared", "hash": "md5", "md5": prepared, "nfiles": 2}],
            "params": {"params.yaml": {"lr": 0.1}},
            "outs": [{"path": "model.txt", "hash": "md5", "md5": _md5(model)}],
        },
    }
    project.write("dvc.lock", yaml.safe_dump({"schema": "2.0", "stages": stages}))


def _dvc_ran(project: Project) -> None:
    """The workspace as DVC left it: outputs made, nothing run by pipeline."""
    _manifest(project)
    project.write("prepared/a.csv", RAW)
    project.write("prepared/b.txt", "x\n")
    project.write("model.txt", RAW + "x\n")
    _dvc_lock(project)


def test_directory_md5_is_dvcs(tmp_path: Path) -> None:
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared/a.csv").write_text(RAW)
    (tmp_path / "prepared/b.txt").write_text("x\n")
    assert (
        path_md5(tmp_path / "prepared")
        == PREPARED_MD5
        == _dir_md5({"a.csv": RAW.encode(), "b.txt": b"x\n"})
    )


def test_dvc2_md5_reads_crlf_text_as_lf(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(b"a\r\nb\r\n")
    assert path_md5(tmp_path / "t.txt", legacy=True) == _md5(b"a\nb\n")
    assert path_md5(tmp_path / "t.txt") == _md5(b"a\r\nb\r\n")


def test_stages_dvc_ran_are_adopted_not_run(project: Project) -> None:
    _dvc_ran(project)
    status = project.cli("status")
    assert status.returncode == 0, status.stderr
    assert "prepare: adopted from dvc.lock" in status.stdout
    assert "train: adopted from dvc.lock" in status.stdout
    assert not project.exists("pipeline.lock")  # status only reports
    done = project.cli("repro")
    assert done.returncode == 0, done.stderr
    assert project.executions() == []
    assert set(project.lock()["stages"]) == {"prepare", "train"}
    assert "adopted" not in project.cli("status").stdout  # now simply up to date
    project.write("src/raw.csv", "changed\n")
    assert project.cli("repro").returncode == 0
    assert project.executions() == ["prepare", "train"]


def test_a_stage_whose_output_changed_since_dvc_is_not_adopted(project: Project) -> None:
    _dvc_ran(project)
    project.write("model.txt", "edited by hand\n")
    plan = project.plan()
    assert plan.decisions["prepare"].reasons[0].kind.value == "adopted from dvc.lock"
    assert [str(r) for r in plan.decisions["train"].reasons] == ["new stage"]
    assert project.cli("repro").returncode == 0
    assert project.executions() == ["train"]


def test_a_changed_cmd_or_param_is_not_adopted(project: Project) -> None:
    _dvc_ran(project)
    project.write("params.yaml", "lr: 0.2\n")
    plan = project.plan()
    assert plan.decisions["prepare"].action.value == "up to date"
    assert plan.decisions["train"].action.value == "run"
    assert set(plan.adopted) == {"prepare"}


def test_a_pipeline_in_a_subfolder_is_adopted_from_its_own_dvc_lock(project: Project) -> None:
    cmd = f"{record('s')} && cp in.txt out.txt"
    project.write(".dvc/config", "")
    project.write(
        "pipelines/p/dvc.yaml",
        f"stages:\n  s:\n    cmd: {cmd}\n    deps: [in.txt]\n    outs: [out.txt]\n",
    )
    project.write("pipelines/p/in.txt", "hello\n")
    project.write("pipelines/p/out.txt", "hello\n")
    row = {"hash": "md5", "md5": _md5(b"hello\n"), "size": 6}
    lock = {"cmd": cmd, "deps": [{"path": "in.txt", **row}], "outs": [{"path": "out.txt", **row}]}
    project.write("pipelines/p/dvc.lock", yaml.safe_dump({"schema": "2.0", "stages": {"s": lock}}))
    done = project.cli("repro")
    assert done.returncode == 0, done.stderr
    assert project.executions() == []
    assert list(project.lock()["stages"]) == ["pipelines/p/dvc.yaml:s"]


# -- .dvc files and the DVC remote --------------------------------------------------------


def _dvc_repo(project: Project, remote: Path, *, dvc2: bool = False) -> dict[str, bytes]:
    """A DVC repo whose `.dvc` data is only on a local DVC remote: a file and a directory."""
    files = {"data/one.bin": os.urandom(3000), "images/a.png": b"A", "images/sub/b.png": b"BB"}
    prefix = remote if dvc2 else remote / "files/md5"

    def put(data: bytes, md5: str) -> None:
        (prefix / md5[:2]).mkdir(parents=True, exist_ok=True)
        (prefix / md5[:2] / md5[2:]).write_bytes(data)

    for data in files.values():
        put(data, _md5(data))
    listing = {"a.png": b"A", "sub/b.png": b"BB"}
    tree = _dir_md5(listing)
    rows = [{"md5": _md5(b), "relpath": p} for p, b in sorted(listing.items())]
    put(json.dumps(rows, sort_keys=True).encode(), tree)
    kind = "" if dvc2 else "\n  hash: md5"
    one = _md5(files["data/one.bin"])
    project.write("data/one.bin.dvc", f"outs:\n- md5: {one}\n  path: one.bin{kind}\n")
    project.write("images.dvc", f"outs:\n- md5: {tree}\n  path: images{kind}\n")
    project.write(".dvc/config", "[core]\n    remote = store\n['remote \"store\"']\n")
    project.write(".dvc/config.local", f"['remote \"store\"']\n    url = {remote}\n")
    project.write(
        "dvc.yaml",
        "stages:\n  s:\n    cmd: cat data/one.bin > copy.bin\n"
        "    deps: [data/one.bin]\n    outs: [copy.bin]\n",
    )
    return files


@pytest.mark.parametrize("dvc2", [False, True], ids=["dvc3-layout", "dvc2-layout"])
def test_pull_brings_dvc_data_from_the_dvc_remote(project: Project, dvc2: bool) -> None:
    files = _dvc_repo(project, project.root.parent / "remote", dvc2=dvc2)
    status = project.cli("status")
    assert "tracked data data/one.bin missing" in status.stdout, status.stdout
    assert "tracked data images missing" in status.stdout
    done = project.cli("pull")
    assert done.returncode == 0, done.stderr
    for path, data in files.items():
        assert (project.root / path).read_bytes() == data
    assert set(project.lock()["data"]) == {"data/one.bin", "images"}  # now ours, under xxh3
    assert project.lock()["data"]["images"]["hash"].startswith("xxh3_128:")
    (project.root / "data/one.bin").unlink()
    assert project.cli("checkout").returncode == 0  # from our own cache, DVC's remote unused
    assert (project.root / "data/one.bin").read_bytes() == files["data/one.bin"]


def test_a_corrupt_dvc_object_never_reaches_the_workspace(project: Project) -> None:
    remote = project.root.parent / "remote"
    files = _dvc_repo(project, remote)
    md5 = _md5(files["data/one.bin"])
    (remote / "files/md5" / md5[:2] / md5[2:]).write_bytes(b"tampered")
    done = project.cli("pull")
    assert done.returncode != 0
    assert "data/one.bin" in done.stdout + done.stderr
    assert not project.exists("data/one.bin")
    assert project.read("images/sub/b.png") == "BB"  # the good one still came


def test_status_names_dvc_imports(project: Project) -> None:
    _manifest(project)
    project.write(".dvc/config", "")
    project.write(
        "data/remote.csv.dvc",
        "deps:\n- path: data/remote.csv\n  repo:\n    url: https://github.com/x/y\n"
        "    rev_lock: abc123\nouts:\n- md5: 0123\n  path: remote.csv\n",
    )
    status = project.cli("status")
    assert status.returncode == 0, status.stderr
    assert "data/remote.csv: import from https://github.com/x/y @ abc123" in status.stdout
    assert "tracked data data/remote.csv" not in status.stdout


# -- real DVC ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dvc_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with DVC from the package index, built once per session; skip if unreachable."""
    venv = tmp_path_factory.mktemp("dvc-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "dvc"]
    done = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=1200)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"could not install dvc from the package index: {tail}")
    return venv / "bin/dvc"


def _dvc(project: Project, dvc: Path, *args: str) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(project.root.parent)}
    done = subprocess.run(
        [str(dvc), *args], cwd=project.root, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}{done.stderr}"


@pytest.mark.slow
def test_a_repository_dvc_ran_moves_over_with_its_data(project: Project, dvc_bin: Path) -> None:
    _dvc(project, dvc_bin, "init", "-q")
    _manifest(project)
    extra = os.urandom(50_000)
    project.write("data/extra.bin", extra)
    _dvc(project, dvc_bin, "add", "-q", "data/extra.bin")
    _dvc(project, dvc_bin, "repro", "-q")
    remote = project.root.parent / "dvc-remote"
    _dvc(project, dvc_bin, "remote", "add", "-d", "store", str(remote))
    _dvc(project, dvc_bin, "push", "-q")
    project.commit()
    shutil.rmtree(project.root / ".dvc/cache")
    (project.root / "data/extra.bin").unlink()
    project.clear_executions()

    status = project.cli("status")
    assert status.returncode == 0, status.stderr
    assert "prepare: adopted from dvc.lock" in status.stdout
    assert "train: adopted from dvc.lock" in status.stdout
    done = project.cli("repro")
    assert done.returncode == 0, done.stderr
    assert project.executions() == []  # 0 run
    assert set(project.lock()["stages"]) == {"prepare", "train"}

    pulled = project.cli("pull")
    assert pulled.returncode == 0, pulled.stderr
    assert (project.root / "data/extra.bin").read_bytes() == extra


def test_a_stage_tracking_a_whole_params_section_is_adopted(project: Project) -> None:
    """dvc.lock nests a section (`params: [train]`) that the stage holds as leaves."""
    _dvc_ran(project)
    project.write("params.yaml", "train: {lr: 0.1}\n")
    text = (project.root / "dvc.yaml").read_text().replace("params: [lr]", "params: [train]")
    dvc_yaml(project, text)
    lock = yaml.safe_load(project.read("dvc.lock"))
    lock["stages"]["train"]["params"] = {"params.yaml": {"train": {"lr": 0.1}}}
    project.write("dvc.lock", yaml.safe_dump(lock))
    assert set(project.plan().adopted) == {"prepare", "train"}


def test_a_deleted_dvc_file_git_still_lists_is_ignored(project: Project) -> None:
    _dvc_ran(project)
    project.write(".dvc/config", "")
    project.write("data.txt.dvc", "outs:\n- md5: " + _md5(b"d\n") + "\n  path: data.txt\n")
    project.commit()
    (project.root / "data.txt.dvc").unlink()  # as `rm`, not `git rm`
    done = project.cli("status")
    assert done.returncode == 0, done.stderr
