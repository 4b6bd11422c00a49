"""`${key}` templating: substitution, shell quoting, the keys a template reads."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.template import Rendered, TemplateError, has_placeholders, render

CONTEXT: dict[str, Any] = {
    "lr": 0.1,
    "epochs": 3,
    "flag": True,
    "off": False,
    "name": "resnet",
    "spaced": "two words",
    "evil": "x; touch pwned",
    "train": {"lr": 0.01, "layers": [64, 32]},
    "nothing": None,
}


def test_text_without_placeholders_is_returned_unchanged() -> None:
    assert not has_placeholders("python train.py $HOME")
    assert render("python train.py $HOME", CONTEXT, quote=True) == Rendered(
        "python train.py $HOME", ()
    )


@pytest.mark.parametrize(
    ("text", "quote", "expected"),
    [
        ("--lr ${lr}", True, "--lr 0.1"),
        ("--epochs ${epochs} --name ${name}", True, "--epochs 3 --name resnet"),
        ("--flag ${flag} --off ${off}", True, "--flag true --off false"),
        ("--lr ${train.lr} --units ${train.layers[1]}", True, "--lr 0.01 --units 32"),
        ("${ lr }", True, "0.1"),
        ("--name ${spaced}", True, "--name 'two words'"),
        ("--name ${evil}", True, "--name 'x; touch pwned'"),
        ("data/${spaced}.csv", False, "data/two words.csv"),
        ("echo \\${HOME} ${lr}", True, "echo ${HOME} 0.1"),
        ("${name}${epochs}", True, "resnet3"),
    ],
)
def test_render(text: str, quote: bool, expected: str) -> None:
    assert render(text, CONTEXT, quote=quote).text == expected


def test_render_records_each_key_once_in_order() -> None:
    rendered = render("${name} ${lr} ${name} ${train.lr} \\${epochs}", CONTEXT, quote=True)
    assert rendered.keys == ("name", "lr", "train.lr")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("${nope}", "nope", "unknown parameter 'nope' in ${nope}"),
        ("${train.nope}", "train.nope", "unknown parameter 'train.nope' in ${train.nope}"),
        ("${lr.x}", "lr.x", "unknown parameter 'lr.x' in ${lr.x}"),
        ("${a..b}", "a..b", "unknown parameter 'a..b' in ${a..b}"),
        ("${}", "", "empty placeholder ${}"),
        ("${train}", "train", "parameter 'train' is a dict; only a string, number or bool fits"),
        (
            "${train.layers}",
            "train.layers",
            "parameter 'train.layers' is a list; only a string, number or bool fits",
        ),
        (
            "${nothing}",
            "nothing",
            "parameter 'nothing' is a null; only a string, number or bool fits",
        ),
    ],
)
def test_render_errors(text: str, key: str, reason: str) -> None:
    with pytest.raises(TemplateError) as exc:
        render(text, CONTEXT, quote=True)
    assert (exc.value.key, exc.value.reason) == (key, reason)


_ARGUMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@given(_ARGUMENT)
def test_quoted_value_is_exactly_one_shell_word(value: str) -> None:
    rendered = render("prog ${p} end", {"p": value}, quote=True)
    assert shlex.split(rendered.text) == ["prog", value, "end"]


@settings(max_examples=60)
@given(_ARGUMENT | st.sampled_from(["x; touch pwned", "$(id)", "`id`", "a'b", "*", "~", "-n"]))
def test_bash_receives_any_value_as_one_literal_argument(value: str) -> None:
    cmd = render("printf '%s\\0' ${p}", {"p": value}, quote=True).text
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, check=True)
    assert done.stdout == value.encode("utf-8", "surrogateescape") + b"\0"
