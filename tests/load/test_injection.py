"""Shell injection through every input a cloned repository or a user controls: 0 executed.

Each payload tries to create a sentinel file outside the project. Params values, mapping keys
(`${train}` unpacked into flags), stage names, foreach keys, file names, `--param`, `--sweep`
and `-P` go through the real CLI in a subprocess; afterwards no sentinel may exist anywhere
under the test's directory, and values must have reached the program unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.load.template import TemplateError, render
from tests.conftest import Project

# `{s}` is the sentinel's absolute path; no payload may create it
PAYLOADS = (
    "x;touch {s};#",
    "x && touch {s}",
    "x | touch {s}",
    "$(touch {s})",
    "`touch {s}`",
    "x'; touch {s}; echo '",
    'x"; touch {s}; echo "',
    "x\ntouch {s}",
    "--flag=$(touch {s})",
    "${{IFS}}$(touch {s})",
)
# without spaces or slashes, so a foreach key or file name can carry them; run in the project
BARE_PAYLOADS = (
    "x;touch${IFS}PWNED;#",
    "$(touch${IFS}PWNED)",
    "`touch${IFS}PWNED`",
    "x&&touch${IFS}PWNED",
    "'$(touch${IFS}PWNED)'",
)

pytestmark = pytest.mark.slow


def _sentinel(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _payloads(tmp_path: Path) -> list[str]:
    return [p.format(s=_sentinel(tmp_path)) for p in PAYLOADS]


def _assert_nothing_ran(tmp_path: Path) -> None:
    assert not list(tmp_path.rglob("PWNED*")), "an injected command ran"


def _write(project: Project, manifest: dict[str, object], params: object = None) -> None:
    # MLproject quotes every value; a dvc.yaml renders raw, as DVC does (issue 14)
    project.write("MLproject", yaml.safe_dump(manifest, sort_keys=False))
    if params is not None:
        project.write("params.yaml", yaml.safe_dump(params, sort_keys=False))
    project.commit()


def test_params_values_reach_the_command_as_data(project: Project, tmp_path: Path) -> None:
    payloads = _payloads(tmp_path) + list(BARE_PAYLOADS)
    params = {f"v{i}": value for i, value in enumerate(payloads)}
    cmd = "; ".join(f"printf '%s\\0' ${{v{i}}} >> out.bin" for i in range(len(payloads)))
    _write(project, {"stages": {"a": {"cmd": cmd, "outs": ["out.bin"]}}}, params)
    done = project.cli("repro")
    assert done.returncode == 0, done.stderr
    _assert_nothing_ran(tmp_path)
    assert (project.root / "out.bin").read_bytes().split(b"\0")[:-1] == [
        p.encode() for p in payloads
    ]


@pytest.mark.parametrize("template", ["echo ${train}", 'echo "${train}"', "echo $(echo ${train})"])
@pytest.mark.parametrize(
    "payload", [p.format(s="/tmp/PWNED") for p in PAYLOADS] + list(BARE_PAYLOADS)
)
def test_mapping_keys_that_are_not_flag_names_are_refused(template: str, payload: str) -> None:
    context = {"train": {"lr": 0.1, payload: 1}}
    with pytest.raises(TemplateError, match="is not a flag name"):
        render(template, context, quote=True)


def test_mapping_keys_are_quoted_like_values() -> None:
    context = {"train": {"lr": 0.1, "aug": {"flip-x": True}, "n_2": [1, "a b"]}}
    rendered = render("run ${train}", context, quote=True).text
    assert rendered == "run --lr 0.1 --aug.flip-x --n_2 1 'a b'"


def test_a_mapping_key_payload_through_the_cli_runs_nothing(
    project: Project, tmp_path: Path
) -> None:
    params = {"train": {"lr": 1, **dict.fromkeys(_payloads(tmp_path), 1)}}
    _write(project, {"stages": {"a": {"cmd": "echo ${train}"}}}, params)
    done = project.cli("repro")
    assert done.returncode == 2, done.stderr
    assert "is not a flag name" in done.stderr
    assert "Traceback" not in done.stderr
    _assert_nothing_ran(tmp_path)


@pytest.mark.parametrize(
    "name",
    ["a;touch PWNED", "a\ntouch PWNED", "a\n", "$(touch PWNED)", "a\x1b[2J", "a\tb", "a\r"],
)
def test_stage_names_with_shell_or_control_characters_are_refused(
    project: Project, tmp_path: Path, name: str
) -> None:
    text = "stages:\n  " + json.dumps(name) + ":\n    cmd: echo hi\n"
    project.write("dvc.yaml", text)
    done = project.cli("repro")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: dvc.yaml:2:3: stages.")
    assert "invalid stage name" in done.stderr
    _assert_nothing_ran(tmp_path)


def test_foreach_keys_and_file_names_are_data(project: Project, tmp_path: Path) -> None:
    # `${...}` in a foreach key is a template, so these spell the space `$IFS`
    keys = [p.replace("${IFS}PWNED", "$IFS'PWNED'") for p in BARE_PAYLOADS]
    members = {key: f"{key}.txt" for key in keys}
    _write(
        project,
        {
            "stages": {
                "b": {
                    "foreach": members,
                    "do": {"cmd": "printf '%s' ${key} > ${item}", "outs": ["${item}"]},
                }
            }
        },
    )
    done = project.cli("repro")
    assert done.returncode == 0, done.stderr
    _assert_nothing_ran(tmp_path)
    for key, name in members.items():
        assert (project.root / name).read_text() == key


@pytest.mark.parametrize("key", ["a\nb", "a\x1b[2Jb", "a\x7fb", "a\u2028b"])
def test_foreach_keys_with_control_characters_are_refused(
    project: Project, tmp_path: Path, key: str
) -> None:
    text = f"stages:\n  b:\n    foreach:\n      {json.dumps(key)}: 1\n    do:\n      cmd: echo\n"
    project.write("dvc.yaml", text)
    done = project.cli("status")
    assert done.returncode == 2, done.stderr
    assert f"cannot name a stage after {key!r}" in done.stderr
    _assert_nothing_ran(tmp_path)


def test_param_and_sweep_values_and_keys_run_nothing(project: Project, tmp_path: Path) -> None:
    _write(
        project,
        {"stages": {"a": {"cmd": "printf '%s\\0' ${v} >> ../../out.bin"}}},
        {"v": "ok", "train": {"lr": 1}},
    )
    payloads = [p for p in _payloads(tmp_path) if "," not in p]
    for value in payloads:
        project.cli("run", "--param", f"v={value}")
    project.cli("run", "--sweep", "v=" + ",".join(payloads[:4]))
    _assert_nothing_ran(tmp_path)
    # a key given with --param lands in a mapping that `${train}` unpacks: refused
    _write(project, {"stages": {"a": {"cmd": "echo ${train}"}}}, {"train": {"lr": 1}})
    for value in payloads[:3]:
        done = project.cli("run", "--param", f"train.{value}=1")
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
    _assert_nothing_ran(tmp_path)


def test_entry_point_parameters_run_nothing(project: Project, tmp_path: Path) -> None:
    out = project.root.parent / "entry.log"
    manifest = {
        "name": "p",
        "entry_points": {
            "main": {
                "parameters": {"a": "string"},
                "command": f"printf '%s\\0' {{a}} >> {out}",
            }
        },
    }
    project.write("MLproject", yaml.safe_dump(manifest, sort_keys=False))
    project.commit()
    payloads = _payloads(tmp_path)
    for value in payloads:
        done = project.cli("run", "-e", "main", "-P", f"a={value}", "--env-manager", "local")
        assert done.returncode == 0, done.stderr
    _assert_nothing_ran(tmp_path)
    assert out.read_bytes().split(b"\0")[:-1] == [p.encode() for p in payloads]
