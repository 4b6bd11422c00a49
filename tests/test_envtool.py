"""An installed conda tool (here a stand-in `micromamba`) can build conda envs instead of rattler.

No conda, mamba or micromamba exists on these machines, so the test puts a `micromamba` on PATH
that records its arguments and does the work with rattler (envkit). What is under test is the
contract: `create --yes --prefix P --file F`, with F the environment.yml or, from a lock, an
`@EXPLICIT` list; and the env then being used like any other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rattler")
import envkit

FAKE = """#!{python}
import json, sys
sys.path.insert(0, {tests!r})
import envkit
from pathlib import Path
args = sys.argv[1:]
with open({log!r}, "a") as fh:
    fh.write(json.dumps(args) + "\\n")
prefix, spec = Path(args[args.index("--prefix") + 1]), Path(args[args.index("--file") + 1])
text = spec.read_text()
if text.startswith("@EXPLICIT"):
    import asyncio, rattler
    urls = [line.split("#")[0] for line in text.splitlines()[1:] if line]
    channel = Path(urls[0].split("file://")[1]).parent.parent
    names = [u.rsplit("/", 1)[1].rsplit("-", 2)[0] for u in urls]
else:
    import yaml
    data = yaml.safe_load(text)
    channel = (spec.parent / data["channels"][0]).resolve()
    names = [d for d in data["dependencies"] if isinstance(d, str)]
envkit.solve_and_install(channel, names, prefix)
sys.stdout.flush()
# py-rattler's runtime threads can crash a short-lived process while it finalizes (a few
# percent of runs, see bench/envbench.py); the work is done, so leave without finalizing.
import os
os._exit(0)
"""


@pytest.fixture
def fake_micromamba(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "micromamba.log"
    script = bin_dir / "micromamba"
    tests = str(Path(__file__).parent)
    script.write_text(FAKE.format(python=sys.executable, tests=tests, log=str(log)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return log


def _pipeline(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_configured_micromamba_builds_the_env(tmp_path: Path, fake_micromamba: Path) -> None:
    envkit.make_channel(tmp_path)
    root = tmp_path / "project"
    (root / ".pipeline").mkdir(parents=True)
    (root / ".pipeline" / "config.yaml").write_text("env: {conda: micromamba}\n")
    (root / "environment.yml").write_text("channels: [../channel]\ndependencies: [hello]\n")
    (root / "MLproject").write_text(
        "conda_env: environment.yml\nstages:\n"
        "  hi: {cmd: hello > out.txt && echo $CONDA_PREFIX >> out.txt, outs: [out.txt]}\n"
    )
    done = _pipeline(root, "repro")
    assert done.returncode == 0, done.stderr + done.stdout
    hello, prefix = (root / "out.txt").read_text().splitlines()
    assert hello == "hello from conda"
    assert prefix.startswith(str(tmp_path / "xdg" / "pipeline" / "envs"))
    (call,) = [json.loads(line) for line in fake_micromamba.read_text().splitlines()]
    assert call[:2] == ["create", "--yes"]
    assert call[call.index("--file") + 1] == str(root / "environment.yml")
    meta = json.loads((Path(prefix) / "pipeline-env.json").read_text())
    assert meta["builder"] == "micromamba"
    assert [p[0] for p in meta["packages"]] == ["hello"]


def test_unknown_conda_tool_in_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".pipeline").mkdir()
    (tmp_path / ".pipeline" / "config.yaml").write_text("env: {conda: anaconda}\n")
    (tmp_path / "MLproject").write_text("stages:\n  a: {cmd: 'true'}\n")
    done = _pipeline(tmp_path, "status")
    assert done.returncode == 2
    assert "env.conda 'anaconda' is not one of rattler, conda, mamba, micromamba" in done.stderr


def test_missing_conda_tool_fails_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    envkit.make_channel(tmp_path)
    (tmp_path / ".pipeline").mkdir()
    (tmp_path / ".pipeline" / "config.yaml").write_text("env: {conda: mamba}\n")
    (tmp_path / "environment.yml").write_text("channels: [./channel]\ndependencies: [hello]\n")
    (tmp_path / "MLproject").write_text("conda_env: environment.yml\nstages:\n  a: {cmd: hello}\n")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    done = _pipeline(tmp_path, "repro")
    assert done.returncode == 3, done.stderr
    assert "the config asks for mamba, which is not on PATH" in done.stderr
    assert list((tmp_path / "xdg" / "pipeline" / "envs" / ".store").iterdir()) == []
