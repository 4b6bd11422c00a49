"""The index settings handed to the installers: pip's configuration files and variables, read
with pip's own precedence, passed on to uv.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.env import tools
from pipeline.env.tools import IndexOptions, pip_index_options
from tests.conftest import Project
from tests.env import envkit
from tests.env.support import isolate, repro_ok, write_yaml

# Tests marked `usefixtures("cache")` get their own env cache and offline pip settings.

# --- pip settings -------------------------------------------------------------------------


def test_pip_settings_follow_pips_order(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.conf"
    explicit.write_text("[global]\nindex-url = https://explicit/simple\nfind-links = /a /b\n")
    home = tmp_path / "xdg"
    (home / "pip").mkdir(parents=True)
    (home / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://user/simple\n[install]\nextra-index-url = https://x https://y\n"
    )
    environ = {
        "PIP_CONFIG_FILE": str(explicit),
        "XDG_CONFIG_HOME": str(home),
        "XDG_CONFIG_DIRS": str(tmp_path / "none"),
    }
    options = pip_index_options(environ)
    # As pip: an existing PIP_CONFIG_FILE replaces the user files and wins over the rest.
    assert options.index_url == "https://explicit/simple"
    assert options.find_links == ("/a", "/b")
    assert options.extra_index_urls == ()  # only the (skipped) user file had them
    environ["PIP_INDEX_URL"] = "https://env/simple"
    environ["PIP_NO_INDEX"] = "yes"
    options = pip_index_options(environ)
    assert options.index_url == "https://env/simple" and options.no_index
    assert options.uv_args() == ["--no-index", "--find-links", "/a", "--find-links", "/b"]


def test_devnull_config_disables_pip_files() -> None:
    assert pip_index_options({"PIP_CONFIG_FILE": os.devnull}) == IndexOptions()


@given(
    st.lists(st.text("abcxyz:/._-", min_size=1, max_size=12), max_size=3),
    st.lists(st.text("abcxyz/._-", min_size=1, max_size=12), max_size=3),
)
def test_uv_args_carry_every_setting(extras: list[str], links: list[str]) -> None:
    options = IndexOptions("https://i/simple", tuple(extras), tuple(links))
    args = options.uv_args()
    assert args[:2] == ["--index-url", "https://i/simple"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--extra-index-url"] == extras
    assert [args[i + 1] for i, a in enumerate(args) if a == "--find-links"] == links
    assert ("--index-strategy" in args) == bool(extras)


# -- pip configuration: pip's own precedence rules ---------------------------------------------
#
# Expected values were checked against `pip install`'s parsed options (pip 23.2.1, this
# machine's) for the same files and variables: see the review report.

PIP_CASES: dict[str, tuple[dict[str, str], dict[str, str], str | None, bool]] = {
    # files (relative to the fake $HOME layout), environment, expected index-url, no-index
    "PIP_CONFIG_FILE-suppresses-user-config": (
        {
            "explicit.conf": "[global]\nindex-url = http://explicit.invalid/simple\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user.invalid/simple\n",
        },
        {"PIP_CONFIG_FILE": "@/explicit.conf"},
        "http://explicit.invalid/simple",
        False,
    ),
    "install-section-beats-global-across-files": (
        {
            "xdgdirs/pip/pip.conf": "[install]\nindex-url = http://site-install.invalid/simple\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user-global.invalid/simple\n",
        },
        {},
        "http://site-install.invalid/simple",
        False,
    ),
    "underscore-key-is-normalised": (
        {"home/.config/pip/pip.conf": "[global]\nindex_url = http://user.invalid/simple\n"},
        {},
        "http://user.invalid/simple",
        False,
    ),
    "empty-env-var-is-ignored": (
        {"home/.config/pip/pip.conf": "[global]\nindex-url = http://user.invalid/simple\n"},
        {"PIP_INDEX_URL": ""},
        "http://user.invalid/simple",
        False,
    ),
    "no-index-accepts-strtobool-y": ({}, {"PIP_NO_INDEX": "y"}, None, True),
}


@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize(
    "case",
    [pytest.param(name) for name in PIP_CASES],
)
def test_pip_index_options_follow_pips_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    files, env, index_url, no_index = PIP_CASES[case]
    base = tmp_path / "pipcfg"
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # Path.home() reads the process environment
    environ = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CONFIG_DIRS": str(base / "xdgdirs"),
        **{k: v.replace("@", str(base)) for k, v in env.items()},
    }
    options = tools.pip_index_options(environ)
    assert (options.index_url, options.no_index) == (index_url, no_index)


@pytest.mark.usefixtures("cache")
def test_a_constraint_in_pip_conf_applies_to_uv_builds(
    project: Project, tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    for wheel in wheels.iterdir():
        (links / wheel.name).write_bytes(wheel.read_bytes())
    envkit.build_wheel(links, "beta", "2.0")
    isolate(monkeypatch, tmp_path, links)
    (tmp_path / "constraints.txt").write_text("beta<2\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {tmp_path / 'constraints.txt'}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    write_yaml(project, "python_env.yaml", {"dependencies": ["beta"]})
    project.manifest(
        {
            "python_env": "python_env.yaml",
            "stages": {
                "a": {
                    "cmd": "python -c 'import beta; print(beta.VERSION)' > a.txt",
                    "outs": ["a.txt"],
                }
            },
        }
    )
    repro_ok(project)
    assert project.read("a.txt").strip() == "1.0"
