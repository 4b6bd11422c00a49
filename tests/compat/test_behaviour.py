"""DVC behaviour beyond rendering, through the real CLI: a raw dvc.yaml command runs as DVC
runs it, a missing `params:` key fails only its stage, and `.dvc/config`'s `[parsing]` is read.
"""

from __future__ import annotations

from tests.conftest import Project, dvc_yaml


def test_a_dvc_yaml_value_expands_to_several_arguments_and_a_glob(dvc: Project) -> None:
    dvc.write("params.yaml", "opts: --a 1 --b 2\npattern: data/*.csv\n")
    dvc.write("data/x.csv", "x")
    dvc.write("data/y.csv", "y")
    dvc_yaml(dvc, "stages:\n  s:\n    cmd: printf '%s\\n' ${opts} ${pattern} > out.txt\n")
    done = dvc.cli("repro")
    assert done.returncode == 0, done.stderr
    assert dvc.read("out.txt").split() == ["--a", "1", "--b", "2", "data/x.csv", "data/y.csv"]


def test_a_missing_params_key_fails_only_its_stage_at_run_time(dvc: Project) -> None:
    dvc.write("params.yaml", "lr: 1\n")
    dvc_yaml(
        dvc,
        "stages:\n"
        "  a:\n    cmd: echo a > a.txt\n    params: [nope, lr]\n    outs: [a.txt]\n"
        "  b:\n    cmd: echo b > b.txt\n    outs: [b.txt]\n",
    )
    status = dvc.cli("status")
    assert status.returncode == 0, status.stderr
    assert "param params.yaml:nope missing" in status.stdout
    done = dvc.cli("repro", "-k")
    assert done.returncode == 1
    assert "error: stage a: param 'nope' is missing from params.yaml" in done.stderr
    assert "Traceback" not in done.stderr
    assert dvc.exists("b.txt")
    assert not dvc.exists("a.txt")


def test_parsing_config_is_read_and_a_change_is_seen(dvc: Project) -> None:
    dvc.write("params.yaml", "opts: {fast: false, sizes: [1, 2]}\n")
    dvc_yaml(dvc, "stages:\n  s:\n    cmd: printf '%s ' ${opts} > out.txt\n    outs: [out.txt]\n")
    assert dvc.cli("repro").returncode == 0
    assert dvc.read("out.txt") == "--sizes 1 2 "
    dvc.write(".dvc/config", "[parsing]\n    bool = boolean_optional\n    list = append\n")
    done = dvc.cli("repro")  # the project memo must notice the new config
    assert done.returncode == 0, done.stderr
    assert dvc.read("out.txt") == "--no-fast --sizes 1 --sizes 2 "


def test_a_bad_parsing_value_is_one_clear_line(dvc: Project) -> None:
    dvc.write(".dvc/config", "[parsing]\n    bool = maybe\n")
    dvc_yaml(dvc, "stages:\n  s:\n    cmd: echo ${x}\nvars:\n  - {x: 1}\n")
    done = dvc.cli("status")
    assert done.returncode == 2
    assert done.stderr.startswith("error: .dvc/config: [parsing] bool = maybe: unknown value")
    assert "hint: use one of: store_true, boolean_optional" in done.stderr
    assert "Traceback" not in done.stderr
