"""Stage environments built as conda envs with py-rattler (DESIGN §6), from a local channel, or
by a configured conda tool.

The channel is built for each test (the `channel` fixture, `envkit.make_channel`): `hello`
(bin/hello prints "hello from conda"), `greet` (noarch python: module `greet`, console script
`greet`) and a test-only `python` that turns the prefix into a venv of the host interpreter. A
`pip:` section installs wheels from a local find-links dir. No conda installation and no
network are involved: the configured tool is a stand-in `micromamba` on PATH that records its
arguments and does the work with rattler (envkit). What is under test for it is the contract:
`create --yes --prefix P --file F`, with F the environment.yml or, from a lock, an `@EXPLICIT`
list; and the env then being used like any other.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.env import envkit
from tests.env.support import (
    SHOW_PY,
    EnvCache,
    _pipeline,
    builds_in,
    conda_project,
    conda_stage,
    environment_yml,
    leaky_parent_env,
    ok,
    only_stage_path,
    output,
    probe,
    repro_ok,
    write_yaml,
)

rattler = pytest.importorskip("rattler")

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.

# -- 3. a conda env from a local channel --------------------------------------------------------


def test_conda_env_runs_binaries_python_packages_variables_and_pip_section(
    project: Project, cache: EnvCache, channel: Path, tmp_path: Path
) -> None:
    assert channel == project.root.parent.parent / "channel"
    # A local channel given as a path relative to the spec (as a project would commit it).
    relative = "../../channel"
    conda_project(project, relative, pip=["alpha"], variables={"MY_VAR": "from-environment-yml"})
    parent = leaky_parent_env(tmp_path)

    done = ok(project.cli("repro", env=parent))

    assert builds_in(output(done), "default") == 1
    lines, info = probe(project)
    assert lines == ["hello from conda", "hi"]  # bin/hello, then the greet entry point
    assert info["modules"]["greet"].endswith("greet/__init__.py")
    assert info["modules"]["alpha"] == "1.0"  # the pip: section, from a local wheel
    assert cache.contains(info["prefix"])
    environ = info["environ"]
    assert environ["CONDA_PREFIX"] is not None
    assert Path(environ["CONDA_PREFIX"]).resolve() == Path(info["prefix"]).resolve()
    assert environ["MY_VAR"] == "from-environment-yml"
    assert environ["VIRTUAL_ENV"] is None
    assert only_stage_path(environ["PYTHONPATH"]), environ["PYTHONPATH"]
    assert not info["leaked_importable"]

    shown = json.loads(ok(project.cli("env", "show", "a", "--json")).stdout)
    assert shown["kind"] == "conda_env"
    assert shown["built"] is True
    assert {row[0] for row in shown["packages"]} == {"hello", "greet", "python"}
    assert ["alpha", "1.0"] in shown["pip_packages"]
    meta = cache.meta(project.lock()["stages"]["a"]["env"])
    assert meta["builder"] == "rattler"
    assert meta["variables"] == {"MY_VAR": "from-environment-yml"}


def test_unsolvable_conda_spec_exits_3_with_the_solver_message(
    project: Project, cache: EnvCache, channel: Path
) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(
        project,
        "environment.yml",
        {"channels": [channel.as_uri()], "dependencies": ["hello >=99", "python"]},
    )
    project.manifest({"conda_env": "environment.yml", "stages": {"a": conda_stage("a")}})

    done = project.cli("repro")

    assert done.returncode == 3, output(done)
    assert "Traceback" not in output(done)
    assert "hello >=99" in done.stderr
    assert "environment.yml" in done.stderr
    assert cache.published() == {}
    assert cache.store_dirs() == []
    assert project.executions() == []


def test_broken_pip_section_of_a_conda_env_exits_3_and_leaves_no_env(
    project: Project, cache: EnvCache, channel: Path
) -> None:
    conda_project(project, channel, pip=["no-such-wheel-xyz"])
    done = project.cli("repro")
    assert done.returncode == 3, output(done)
    assert "no-such-wheel-xyz" in done.stderr
    assert cache.published() == {}
    assert cache.store_dirs() == []


def test_conda_env_in_a_named_environment_next_to_a_venv_default(
    project: Project, cache: EnvCache, channel: Path
) -> None:
    project.write("show.py", SHOW_PY)
    write_yaml(project, "envs/conda.yml", environment_yml(channel))
    write_yaml(project, "python_env.yaml", {"dependencies": ["alpha"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "environments": {"tools": {"conda_env": "envs/conda.yml"}},
            "stages": {
                "a": conda_stage("a", env="tools"),
                "b": {
                    "cmd": "python show.py alpha > out/b.json",
                    "deps": ["show.py"],
                    "outs": ["out/b.json"],
                },
            },
        }
    )
    ok(project.cli("repro", "-j", "2"))
    lines, info = probe(project)
    assert lines == ["hello from conda", "hi"]
    other = json.loads(project.read("out/b.json"))
    assert other["modules"] == {"alpha": "1.0"}
    assert other["environ"]["CONDA_PREFIX"] is None
    assert other["environ"]["VIRTUAL_ENV"] is not None
    assert info["prefix"] != other["prefix"]
    assert len(cache.published()) == 2
    assert sys.prefix not in (info["prefix"], other["prefix"])


@pytest.mark.usefixtures("cache")
def test_activate_d_scripts_of_conda_packages_run_before_the_stage(
    project: Project, channel: Path
) -> None:
    envkit.build_conda_package(
        channel,
        "activator",
        files={"etc/conda/activate.d/activator.sh": 'export OTHER_VAR="on:$CONDA_PREFIX"\n'},
    )
    envkit.index_channel(channel)
    project.write("show.py", SHOW_PY)
    spec = environment_yml(channel)
    spec["dependencies"].append("activator")
    write_yaml(project, "environment.yml", spec)
    project.manifest({"conda_env": "environment.yml", "stages": {"a": conda_stage("a")}})

    repro_ok(project)

    _, info = probe(project)
    assert info["environ"]["OTHER_VAR"] == f"on:{info['environ']['CONDA_PREFIX']}"


# -- a configured conda tool instead of rattler ------------------------------------------------


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


# -- the user's BASH_ENV next to activation hooks ----------------------------------------------


@pytest.mark.usefixtures("cache")
def test_the_users_bash_env_still_runs_with_activate_hooks(
    project: Project, channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envkit.build_conda_package(
        channel, "activator", files={"etc/conda/activate.d/act.sh": "export HOOK_VAR=on\n"}
    )
    envkit.index_channel(channel)
    user = tmp_path / "user-bash-env.sh"
    user.write_text("export USER_VAR=yes\n")
    monkeypatch.setenv("BASH_ENV", str(user))
    write_yaml(
        project,
        "environment.yml",
        {"channels": [channel.as_uri()], "dependencies": ["hello", "activator"]},
    )
    project.manifest(
        {
            "conda_env": "environment.yml",
            "stages": {"a": {"cmd": 'echo "$HOOK_VAR $USER_VAR" > a.txt', "outs": ["a.txt"]}},
        }
    )
    repro_ok(project)
    assert project.read("a.txt").split() == ["on", "yes"]
