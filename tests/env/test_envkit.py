"""The test-support builders in `tests/env/envkit.py` make artefacts that real installers accept.

Each builder is checked twice: its file layout (hashes, metadata) and, more to the point, an
actual offline install: uv for wheels, rattler for conda packages, then running what was
installed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.env import envkit
from tests.env.support import other_python

rattler = pytest.importorskip("rattler")
uv = pytest.importorskip("uv")

PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], check=False, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def _uv_venv(path: Path, cache: Path) -> Path:
    """A uv venv of the running interpreter; returns its python."""
    _run(
        uv.find_uv_bin(),
        "venv",
        "--no-config",
        "-q",
        "--python",
        sys.executable,
        path,
        env=envkit.uv_environ(cache),
    )
    return path / "bin" / "python"


# ---------------------------------------------------------------------------------------------
# Wheels
# ---------------------------------------------------------------------------------------------


def test_wheel_layout_metadata_and_record_hashes(tmp_path: Path) -> None:
    wheel = envkit.build_wheel(
        tmp_path, "My-Pkg.x", "2.0", requires=["beta>=1"], scripts={"my-cli": "my_pkg_x:main"}
    )
    assert wheel.name == "my_pkg_x-2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert names == {
            "my_pkg_x/__init__.py",
            "my_pkg_x-2.0.dist-info/METADATA",
            "my_pkg_x-2.0.dist-info/WHEEL",
            "my_pkg_x-2.0.dist-info/entry_points.txt",
            "my_pkg_x-2.0.dist-info/RECORD",
        }
        assert zf.read("my_pkg_x/__init__.py") == b'VERSION = "2.0"\n'
        metadata = zf.read("my_pkg_x-2.0.dist-info/METADATA").decode()
        assert "Name: My-Pkg.x\n" in metadata
        assert "Requires-Dist: beta>=1\n" in metadata
        entry_points = zf.read("my_pkg_x-2.0.dist-info/entry_points.txt").decode()
        assert "my-cli = my_pkg_x:main" in entry_points
        record = zf.read("my_pkg_x-2.0.dist-info/RECORD").decode()
        rows = [r.split(",") for r in record.splitlines()]
        assert {r[0] for r in rows} == names
        for path, digest, size in rows:
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert int(size) == len(data)
    # Deterministic: the same inputs give the same bytes.
    again = envkit.build_wheel(
        tmp_path / "again",
        "My-Pkg.x",
        "2.0",
        requires=["beta>=1"],
        scripts={"my-cli": "my_pkg_x:main"},
    )
    assert again.read_bytes() == wheel.read_bytes()


def test_wheels_install_offline_with_uv_and_run(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    envkit.build_wheel(
        wheels,
        "alpha",
        "1.2",
        requires=["beta>=1"],
        modules={
            "alpha/__init__.py": "from beta import B\n\ndef main():\n    print('alpha', B)\n",
        },
        scripts={"alpha-cli": "alpha:main"},
    )
    envkit.build_wheel(wheels, "beta", "1.0", modules={"beta.py": "B = 'bee'\n"})
    cache = tmp_path / "uv-cache"
    python = _uv_venv(tmp_path / "venv", cache)

    _run(
        uv.find_uv_bin(),
        "pip",
        "install",
        "--no-config",
        "-q",
        "--python",
        python,
        "--offline",
        "--no-index",
        "--find-links",
        wheels,
        "alpha",
        env=envkit.uv_environ(cache),
    )

    assert _run(python, "-c", "import alpha, beta; print(beta.B)") == "bee\n"
    assert _run(tmp_path / "venv" / "bin" / "alpha-cli") == "alpha bee\n"


# ---------------------------------------------------------------------------------------------
# Conda packages and channels
# ---------------------------------------------------------------------------------------------


def test_conda_package_layout(tmp_path: Path) -> None:
    pkg = envkit.build_conda_package(
        tmp_path,
        "tool",
        "0.3",
        build="h1_2",
        depends=["hello >=1"],
        files={
            "bin/tool": "#!/bin/sh\necho " + envkit.PREFIX_PLACEHOLDER + "\n",
            "share/blob.bin": b"\0" + envkit.PREFIX_PLACEHOLDER.encode(),
            "share/plain.txt": "plain\n",
        },
        executables=["bin/tool"],
    )
    assert pkg == tmp_path / "noarch" / "tool-0.3-h1_2.tar.bz2"
    with tarfile.open(pkg) as tar:
        index = json.load(tar.extractfile("info/index.json"))  # type: ignore[arg-type]
        paths = json.load(tar.extractfile("info/paths.json"))  # type: ignore[arg-type]
        assert tar.getmember("bin/tool").mode == 0o755
        assert tar.getmember("share/plain.txt").mode == 0o644
        payload = {m.name: tar.extractfile(m).read() for m in tar if not m.name.startswith("info/")}  # type: ignore[union-attr]
    assert index["name"] == "tool"
    assert index["version"] == "0.3"
    assert index["build"] == "h1_2"
    assert index["build_number"] == 2
    assert index["depends"] == ["hello >=1"]
    assert index["subdir"] == "noarch"
    assert index["noarch"] == "generic"
    assert isinstance(index["timestamp"], int)
    assert paths["paths_version"] == 1
    entries = {e["_path"]: e for e in paths["paths"]}
    assert set(entries) == set(payload)
    for path, entry in entries.items():
        assert entry["path_type"] == "hardlink"
        assert entry["sha256"] == hashlib.sha256(payload[path]).hexdigest()
        assert entry["size_in_bytes"] == len(payload[path])
    assert entries["bin/tool"]["prefix_placeholder"] == envkit.PREFIX_PLACEHOLDER
    assert entries["bin/tool"]["file_mode"] == "text"
    assert entries["share/blob.bin"]["file_mode"] == "binary"
    assert "prefix_placeholder" not in entries["share/plain.txt"]


def test_conda_package_rejects_inconsistent_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="noarch='python'"):
        envkit.build_conda_package(tmp_path, "x", python_site_packages={"x.py": ""})
    with pytest.raises(ValueError, match="executables"):
        envkit.build_conda_package(tmp_path, "x", executables=["bin/missing"])


def test_index_channel_writes_repodata_per_subdir(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    envkit.build_conda_package(channel, "plat", noarch=None, subdir=envkit.current_subdir())
    envkit.index_channel(channel)  # no noarch package: the empty noarch/ is created
    noarch = json.loads((channel / "noarch" / "repodata.json").read_text())
    plat = json.loads((channel / envkit.current_subdir() / "repodata.json").read_text())
    assert noarch["packages"] == {}
    assert list(plat["packages"]) == ["plat-1.0-0.tar.bz2"]
    assert sorted(p.name for p in channel.iterdir()) == sorted(["noarch", envkit.current_subdir()])


def test_hello_installs_and_placeholder_is_rewritten(tmp_path: Path) -> None:
    channel = envkit.make_channel(tmp_path)
    prefix = tmp_path / "env"
    records = envkit.solve_and_install(channel, ["hello"], prefix)
    assert [r.name.normalized for r in records] == ["hello"]
    assert _run(prefix / "bin" / "hello") == "hello from conda\n"
    assert (prefix / "share" / "hello" / "prefix.txt").read_text() == str(prefix)


def test_python_trick_package_makes_a_venv_for_noarch_python(tmp_path: Path) -> None:
    channel = envkit.make_channel(tmp_path, with_python=True)
    prefix = tmp_path / "env"
    records = envkit.solve_and_install(channel, ["greet"], prefix)
    assert sorted(r.name.normalized for r in records) == ["greet", "python"]

    real, version = envkit.host_interpreter()
    python_record = next(r for r in records if r.name.normalized == "python")
    assert str(python_record.version) == ".".join(map(str, version))
    assert python_record.subdir == envkit.current_subdir()
    for name in ("python", "python3", f"python{PY_XY}"):
        link = prefix / "bin" / name
        assert link.is_symlink()
        assert Path(os.readlink(link)) == real  # softlinks are installed verbatim
    cfg = (prefix / "pyvenv.cfg").read_text()
    assert f"home = {real.parent}\n" in cfg
    assert "include-system-site-packages = false\n" in cfg

    site = prefix / "lib" / f"python{PY_XY}" / "site-packages"
    assert (site / "greet" / "__init__.py").is_file()
    out = _run(
        prefix / "bin" / "python",
        "-c",
        "import greet, sys; print(greet.greet()); print(sys.prefix)",
    )
    assert out.splitlines() == ["hi", str(prefix)]
    assert _run(prefix / "bin" / "greet") == "hi\n"  # the noarch-python entry point


def test_python_trick_package_for_another_interpreter(tmp_path: Path) -> None:
    found = other_python()  # pyenv's versions, or python3.X on PATH
    if found is None:
        pytest.skip("needs a second CPython 3.9+ (another X.Y than the running one)")
    _, other = found
    channel = envkit.make_channel(tmp_path)
    envkit.build_python_trick_package(channel, other)
    envkit.index_channel(channel)
    prefix = tmp_path / "env"
    envkit.solve_and_install(channel, ["greet"], prefix)

    _, (major, minor, _micro) = envkit.host_interpreter(other)
    assert (prefix / "lib" / f"python{major}.{minor}" / "site-packages" / "greet").is_dir()
    out = _run(
        prefix / "bin" / "python",
        "-c",
        "import greet, sys; print(greet.greet(), sys.version_info[:2])",
    )
    assert out == f"hi ({major}, {minor})\n"


def test_host_interpreter_sees_through_a_venv(tmp_path: Path) -> None:
    python = _uv_venv(tmp_path / "venv", tmp_path / "uv-cache")
    assert envkit.host_interpreter(python) == envkit.host_interpreter()
    real, _ = envkit.host_interpreter()
    assert real == Path(os.path.realpath(real))
    assert (tmp_path / "venv") not in real.parents


def test_index_channel_works_under_a_running_event_loop(tmp_path: Path) -> None:
    import asyncio

    async def main() -> None:
        envkit.build_conda_package(tmp_path, "x")
        envkit.index_channel(tmp_path)

    asyncio.run(main())
    assert (
        "x-1.0-0.tar.bz2"
        in json.loads((tmp_path / "noarch" / "repodata.json").read_text())["packages"]
    )


def test_built_package_bytes_are_reproducible(tmp_path: Path) -> None:
    first = envkit.build_conda_package(tmp_path / "a", "x", files={"f": "data"})
    second = envkit.build_conda_package(tmp_path / "b", "x", files={"f": "data"})
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(first.read_bytes())) as tar:
        assert {m.mtime for m in tar} == {envkit._TIMESTAMP_MS // 1000}
