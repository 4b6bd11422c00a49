"""Link strategies (reflink, hardlink, symlink, copy): each round-trips, and rewriting a linked
output never changes the cache.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pipeline.api import ReproOptions, checkout, fsck, plan, repro
from pipeline.store import links
from pipeline.store.links import LinkUnavailable, reflink
from tests.conftest import Project
from tests.store.support import lock_hash, store_of

STRATEGIES = ["hardlink", "symlink", "copy", "reflink"]


def reflink_works(tmp: Path) -> bool:
    src = tmp / "src"
    src.write_text("x")
    try:
        reflink(str(src), str(tmp / "dst"))
    except LinkUnavailable:
        return False
    return True


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_link_strategy_round_trips(
    p: Project, strategy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if strategy == "reflink" and not reflink_works(tmp_path):
        pytest.skip("this filesystem cannot clone files (reflink); ext4 cannot, btrfs/xfs can")
    cloned: list[str] = []  # where the reflink linker succeeded (a copy leaves no trace here)

    def spy(src: str, dst: str) -> None:
        reflink(src, dst)
        cloned.append(dst)

    monkeypatch.setitem(links._LINKERS, "reflink", spy)
    p.write(".pipeline/config.yaml", f"cache:\n  type: {strategy}\n")
    p.manifest(
        {
            "stages": {
                "gen": {
                    "cmd": "mkdir -p out && echo a > out/a.txt && printf 'run' > out/tool"
                    " && chmod +x out/tool && echo m > model.bin",
                    "outs": ["out", "model.bin"],
                }
            }
        }
    )
    repro(ReproOptions(root=p.root))
    before = {name: p.read(name) for name in ("out/a.txt", "model.bin")}
    for name in ("out", "model.bin"):
        subprocess.run(["rm", "-rf", str(p.root / name)], check=True)
    report = checkout(p.root)
    assert sorted(report.restored) == ["model.bin", "out"]
    assert {name: p.read(name) for name in ("out/a.txt", "model.bin")} == before
    assert os.access(p.root / "out/tool", os.X_OK)  # executables keep their bit
    model = p.root / "model.bin"
    obj = store_of(p).path(lock_hash(p, "gen", "model.bin"))
    if strategy == "hardlink":
        assert model.stat().st_ino == obj.stat().st_ino
    elif strategy == "symlink":
        assert model.is_symlink() and model.resolve() == obj.resolve()
    else:
        assert model.stat().st_ino != obj.stat().st_ino
    if strategy == "reflink":  # a clone, not the copy fallback, put each file back
        restored = {(p.root / name).resolve() for name in ("model.bin", "out/a.txt", "out/tool")}
        assert restored <= {Path(dst).resolve() for dst in cloned}, cloned
    assert plan(ReproOptions(root=p.root)).stale == []


def test_rewriting_a_hardlinked_output_never_changes_the_cache(p: Project) -> None:
    p.write(".pipeline/config.yaml", "cache:\n  type: hardlink\n")
    p.manifest(
        {
            "stages": {
                "log": {
                    "cmd": "echo line >> log.txt",
                    "outs": [{"log.txt": {"persist": True}}],
                    "always_changed": True,
                },
                "model": {"cmd": "echo ${lr} > model.txt", "outs": ["model.txt"]},
            }
        }
    )
    repro(ReproOptions(root=p.root))
    store = store_of(p)
    log_obj = store.path(lock_hash(p, "log", "log.txt"))
    model_obj = store.path(lock_hash(p, "model", "model.txt"))
    assert (p.root / "model.txt").stat().st_ino == model_obj.stat().st_ino
    repro(ReproOptions(root=p.root))  # the persist log is appended to in place
    p.params({"lr": 0.5})
    repro(ReproOptions(root=p.root))  # the model is rewritten
    assert p.read("log.txt") == "line\nline\nline\n"
    assert log_obj.read_text() == "line\n"
    assert model_obj.read_text() == "0.1\n"
    assert fsck(p.root) == []


def test_default_strategy_never_shares_an_inode_with_the_cache(p: Project) -> None:
    """With no `cache.type`, what `repro`, `add` and `checkout` place is a private file: a
    script rewriting it in place (as root, where 0444 protects nothing) cannot reach the cache."""
    p.manifest(
        {
            "stages": {
                "gen": {
                    "cmd": "mkdir -p out && echo a > out/a.txt && echo m > model.bin",
                    "outs": ["out", "model.bin"],
                }
            }
        }
    )
    p.write("data/raw.csv", "x,y\n")
    repro(ReproOptions(root=p.root))
    assert p.cli("add", "data").returncode == 0
    paths = [p.root / n for n in ("model.bin", "out/a.txt", "data/raw.csv")]
    objects = {(o.stat().st_dev, o.stat().st_ino) for o in store_of(p).objects.rglob("*")}
    for path in paths:
        assert path.stat().st_nlink == 1 and not path.is_symlink()
        assert (path.stat().st_dev, path.stat().st_ino) not in objects
        assert path.stat().st_mode & 0o200  # the user's file stays writable
        with open(path, "a") as fh:  # in place: no unlink first
            fh.write("edited\n")
    assert fsck(p.root) == []  # every cached version is intact
    assert {r.subject for r in plan(ReproOptions(root=p.root)).data} == {"data"}
    checkout(p.root, force=True)
    assert p.read("model.bin") == "m\n" and p.read("data/raw.csv") == "x,y\n"
