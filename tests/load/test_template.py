"""`${key}` templating: substitution, quoting by shell context, the keys a template reads, and a
mapping unpacked into flags as DVC does it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api import ReproOptions, repro
from pipeline.load.template import (
    Parsing,
    Rendered,
    TemplateError,
    exact_key,
    interpolate,
    rename_keys,
    render,
)
from tests.conftest import Project, dvc_yaml

CONTEXT: dict[str, Any] = {
    "lr": 0.1,
    "epochs": 3,
    "flag": True,
    "off": False,
    "name": "resnet",
    "spaced": "two words",
    "evil": "x; touch pwned",
    "train": {"lr": 0.01, "layers": [64, 32], "aug": {"flip": True, "crop": False}},
    "nothing": None,
}


def test_text_without_placeholders_is_returned_unchanged() -> None:
    assert render("python train.py $HOME ${", CONTEXT, quote=True) == Rendered(
        "python train.py $HOME ${", ()
    )


@pytest.mark.parametrize(
    ("text", "quote", "expected"),
    [
        ("--lr ${lr}", True, "--lr 0.1"),
        ("--epochs ${epochs} --name ${name}", True, "--epochs 3 --name resnet"),
        ("--flag ${flag} --off ${off}", True, "--flag true --off false"),
        ("--none ${nothing}", True, "--none None"),
        ("--lr ${train.lr} --units ${train.layers[1]}", True, "--lr 0.01 --units 32"),
        ("${ lr }", True, "0.1"),
        ("--name ${spaced}", True, "--name 'two words'"),
        ("--name ${evil}", True, "--name 'x; touch pwned'"),
        ('--name "${evil}"', True, '--name "x; touch pwned"'),
        ("--name '${evil}'", True, "--name 'x; touch pwned'"),
        ("data/${spaced}.csv", False, "data/two words.csv"),
        ("echo \\${HOME} ${lr}", True, "echo ${HOME} 0.1"),
        ("${name}${epochs}", True, "resnet3"),
    ],
)
def test_render(text: str, quote: bool, expected: str) -> None:
    assert render(text, CONTEXT, quote=quote).text == expected


@pytest.mark.parametrize(
    ("value", "double_quoted", "single_quoted"),
    [
        ('say "hi"', '"say \\"hi\\""', "'say \"hi\"'"),
        ("$HOME `id` \\", '"\\$HOME \\`id\\` \\\\"', "'$HOME `id` \\'"),
        ("it's", '"it\'s"', "'it'\\''s'"),
    ],
)
def test_quoting_follows_the_surrounding_quotes(
    value: str, double_quoted: str, single_quoted: str
) -> None:
    assert render('"${v}"', {"v": value}, quote=True).text == double_quoted
    assert render("'${v}'", {"v": value}, quote=True).text == single_quoted


def test_a_whole_string_placeholder_keeps_its_type_outside_commands() -> None:
    assert render("${train.layers}", CONTEXT, quote=False).value == [64, 32]
    assert render("${flag}", CONTEXT, quote=False).value is True
    assert render("${flag}", CONTEXT, quote=True).value == "true"


def test_a_mapping_in_a_command_becomes_flags() -> None:
    rendered = render("python train.py ${train}", CONTEXT, quote=True)
    assert rendered.text == "python train.py --lr 0.01 --layers 64 32 --aug.flip"
    assert rendered.keys == ("train",)


def test_interpolate_renders_nested_values() -> None:
    rendered = interpolate({"deps": ["data/${name}.csv", 3], "${name}": "x"}, CONTEXT)
    assert rendered.value == {"deps": ["data/resnet.csv", 3], "resnet": "x"}
    assert rendered.keys == ("name",)


def test_render_records_each_key_once_in_order() -> None:
    rendered = render("${name} ${lr} ${name} ${train.lr} \\${epochs}", CONTEXT, quote=True)
    assert rendered.keys == ("name", "lr", "train.lr")


@pytest.mark.parametrize(
    ("text", "quote", "key", "reason"),
    [
        ("${nope}", True, "nope", "unknown parameter 'nope' in ${nope}"),
        ("${train.nope}", True, "train.nope", "unknown parameter 'train.nope' in ${train.nope}"),
        ("${lr.x}", True, "lr.x", "unknown parameter 'lr.x' in ${lr.x}"),
        ("${a..b}", True, "a..b", "unknown parameter 'a..b' in ${a..b}"),
        ("${}", True, "", "empty placeholder ${}"),
        (
            "--layers ${train.layers}",
            True,
            "train.layers",
            "cannot interpolate 'train.layers', a list, into a string",
        ),
        (
            "data/${train}.csv",
            False,
            "train",
            "cannot interpolate 'train', a mapping, outside a command",
        ),
    ],
)
def test_render_errors(text: str, quote: bool, key: str, reason: str) -> None:
    with pytest.raises(TemplateError) as exc:
        render(text, CONTEXT, quote=quote)
    assert (exc.value.key, exc.value.reason) == (key, reason)


_ARGUMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@given(_ARGUMENT)
def test_a_bare_value_is_exactly_one_shell_word(value: str) -> None:
    rendered = render("prog ${p} end", {"p": value}, quote=True)
    assert shlex.split(rendered.text) == ["prog", value, "end"]


@settings(max_examples=60)
@given(
    _ARGUMENT | st.sampled_from(["x; touch pwned", "$(id)", "`id`", "a'b", 'a"b', "*", "~", "-n"]),
    st.sampled_from(["${p}", '"${p}"', "'${p}'", '"<${p}>"', "'<${p}>'"]),
)
def test_bash_receives_any_value_literally_in_any_quoting(value: str, word: str) -> None:
    cmd = render(f"printf '%s\\0' {word}", {"p": value}, quote=True).text
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, check=True)
    expected = value if "<" not in word else f"<{value}>"
    assert done.stdout == expected.encode() + b"\0"


def _runs_injected_code(tmp_path: Path, template: str, value: str) -> bool:
    """Render `template` with p=value, run it with bash in tmp_path; did `touch pwned` run?

    Refusing to render (TemplateError) is a safe answer too.
    """
    try:
        cmd = render(template, {"p": value}, quote=True).text
    except TemplateError:
        return False
    subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, timeout=10, check=False)
    return (tmp_path / "pwned").exists()


def test_param_in_ansi_c_quotes_is_not_executed(tmp_path: Path) -> None:
    assert not _runs_injected_code(tmp_path, "printf '%s\\n' $'${p}'", "\\'; touch pwned; echo \\'")


def test_param_in_arithmetic_expansion_is_not_executed(tmp_path: Path) -> None:
    assert not _runs_injected_code(tmp_path, "echo $(( ${p} ))", "$(touch pwned)")


def test_param_in_a_heredoc_inside_command_substitution_is_not_executed(tmp_path: Path) -> None:
    template = 'echo "$(cat <<EOF\n${p}\nEOF\n)"'
    assert not _runs_injected_code(tmp_path, template, "$(touch pwned)")


# -- a mapping unpacked into flags, as DVC does it ---------------------------------------------


def test_dict_unpacking_quotes_values_and_follows_dvc_rules(dvc: Project) -> None:
    dvc.params(
        {
            "t": {
                "name": "my run; touch pwned",
                "on": True,
                "off": False,
                "n": None,
                "xs": [1, "a b"],
                "sub": {"k": 2},
            }
        }
    )
    argv = dvc.root / "argv.json"
    dvc_yaml(
        dvc,
        f"""\
stages:
  s:
    cmd: >-
      {sys.executable} -c "import json, sys; json.dump(sys.argv[1:], open('argv.json', 'w'))"
      ${{t}}
""",
    )
    repro(ReproOptions(root=dvc.root))
    assert json.loads(argv.read_text()) == [
        "--name",
        "my run; touch pwned",
        "--on",
        "--n",
        "None",
        "--xs",
        "1",
        "a b",
        "--sub.k",
        "2",
    ]
    assert not dvc.exists("pwned")


# -- issue 14: dvc.yaml commands are rendered raw, as DVC renders them --------------------


def test_raw_rendering_keeps_values_as_they_are() -> None:
    rendered = render(
        "run ${spaced} ${evil} ${nothing} ${flag}", CONTEXT, quote=True, raw=Parsing()
    )
    assert rendered.text == "run two words x; touch pwned None true"


def test_raw_mapping_follows_the_parsing_config() -> None:
    context = {"o": {"on": True, "off": False, "xs": [1, "a b"], "s": "p q", "n": None, "e": []}}
    default = render("${o}", context, quote=False, raw=Parsing()).text
    assert default == "--on --xs 1 'a b' --s 'p q' --n None"
    custom = render("${o}", context, quote=False, raw=Parsing("boolean_optional", "append")).text
    assert custom == "--on --no-off --xs 1 --xs 'a b' --s 'p q' --n None"


def test_raw_rendering_refuses_lists_and_nested_lists() -> None:
    with pytest.raises(TemplateError, match="a list"):
        render("run ${l}", {"l": [1]}, quote=False, raw=Parsing())
    with pytest.raises(TemplateError, match="nested iterable in 'x'"):
        render("run ${d}", {"d": {"x": [[1]]}}, quote=False, raw=Parsing())


def test_parsing_style_round_trips() -> None:
    for parsing in (Parsing(), Parsing("boolean_optional", "append")):
        assert Parsing.from_style(parsing.style) == parsing
    assert Parsing.from_style("") is None


@pytest.mark.parametrize(
    ("template", "value"),
    [("${train.layers.0}", 64), ("${train.layers[1]}", 32), ("${rows.1.name}", "b")],
)
def test_lists_are_indexed_with_dots_or_brackets(template: str, value: Any) -> None:
    context = {**CONTEXT, "rows": [{"name": "a"}, {"name": "b"}]}
    assert render(template, context, quote=False).value == value


def test_rename_keys_and_exact_key() -> None:
    assert (
        rename_keys("a ${item.x} \\${item} ${ key }", str.upper) == "a ${ITEM.X} \\${item} ${KEY}"
    )
    assert exact_key("${ models }") == "models"
    assert exact_key("x ${models}") is None
    assert exact_key(["${models}"]) is None
