"""A templated value reaches the program as data in every bash quoting context, never as code.

Each case renders a template with a hostile value, runs it under a real bash, and checks that
the program received exactly the value and that nothing else ran.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.load.shellquote import ShellLexer
from pipeline.load.template import TemplateError, render

# Each template writes ${p} into out.txt through a different quoting context.
CONTEXTS = {
    "bare": 'printf "%s" ${p} > out.txt',
    "double": 'printf "%s" "${p}" > out.txt',
    "single": "printf '%s' '${p}' > out.txt",
    "inside a double-quoted word": 'printf "%s" "<${p}>" > out.txt',
    "command substitution": 'printf "%s" "$(printf "%s" ${p})" > out.txt',
    "quoted in command substitution": 'printf "%s" "$(printf "%s" "${p}")" > out.txt',
    "backticks in double quotes": 'printf "%s" "`printf "%s" ${p}`" > out.txt',
    "after a comment with a quote": "# don't panic\nprintf '%s' ${p} > out.txt",
    "after an apostrophe in a comment on the line": 'true # it\'s\nprintf "%s" ${p} > out.txt',
    "assignment": 'x=${p}; printf "%s" "$x" > out.txt',
    "after a here-string": 'cat <<< "x" > /dev/null; printf "%s" ${p} > out.txt',
    "unquoted here-document": "cat > out.txt <<EOF\n${p}\nEOF",
    "quoted here-document": "cat > out.txt <<'EOF'\n${p}\nEOF",
    "here-document then code": 'cat > /dev/null <<EOF\nbody\nEOF\nprintf "%s" ${p} > out.txt',
    "escaped dollar before a paren": 'printf "%s" "\\$(" ${p} > out.txt',
}


EXPECTED_PREFIX = {"inside a double-quoted word": "<", "escaped dollar before a paren": "$("}


EXPECTED_SUFFIX = {"inside a double-quoted word": ">"}


BARE_IN_SUBSTITUTION = ("command substitution", "backticks in double quotes")


HOSTILE = [
    "x; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "x'; touch pwned; echo '",
    '"; touch pwned; echo "',
    "EOF\ntouch pwned",
    "$HOME",
    "a\\b",
    "\\",
    "'",
    '"',
    "*",
    "-n",
    "a b  c",
    "}",
    "${x}",
    "$((1+1))",
    "!!",
    "~",
    "a\nb",
    "<<EOF",
]


def run(tmp_path: Path, template: str, value: str) -> str | None:
    """The value as the program saw it, or None if the template refused it."""
    for leftover in ("out.txt", "pwned"):
        (tmp_path / leftover).unlink(missing_ok=True)
    try:
        cmd = render(template, {"p": value}, quote=True).value
    except TemplateError:
        return None
    subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, check=False)
    assert not (tmp_path / "pwned").exists(), (template, value, cmd)
    out = tmp_path / "out.txt"
    return out.read_bytes().decode() if out.exists() else ""  # keep \r as it is


def expected(context: str, value: str) -> str:
    text = EXPECTED_PREFIX.get(context, "") + value + EXPECTED_SUFFIX.get(context, "")
    return text + "\n" if "here-document" in context and "then" not in context else text


def oracle(tmp_path: Path, context: str, value: str) -> str:
    """What the context's own snippet prints when bash itself passes the value as one word.

    For a context where `${p}` is a bare word: it becomes `"$P"`, with `P` set in the
    environment. No template, no escaping, so this is exactly what "the value arrives as data"
    means there, including what bash does to it (`$(...)` and backticks drop trailing newlines).
    """
    assert context in BARE_IN_SUBSTITUTION, context
    (tmp_path / "out.txt").unlink(missing_ok=True)
    snippet = CONTEXTS[context].replace("${p}", '"$P"')
    env = {**os.environ, "P": value}
    subprocess.run(["bash", "-c", snippet], cwd=tmp_path, env=env, capture_output=True, check=True)
    return (tmp_path / "out.txt").read_bytes().decode()


@pytest.mark.parametrize("context", list(CONTEXTS))
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_arrive_as_data(tmp_path: Path, context: str, value: str) -> None:
    got = run(tmp_path, CONTEXTS[context], value)
    if got is None:  # refusing is allowed only where a newline could end a here-document
        assert "here-document" in context and "\n" in value
        return
    if context == "command substitution":  # bare in $(...): compare with bash's own result
        assert got == oracle(tmp_path, context, value)
    else:
        assert got == expected(context, value)


@settings(max_examples=60)
@given(
    value=st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=12,
    )
)
def test_arbitrary_text_in_every_context_never_runs_code(value: str) -> None:
    lexer_contexts = (
        "bare",
        "double",
        "single",
        "quoted in command substitution",
        "backticks in double quotes",
        "quoted here-document",
    )
    with tempfile.TemporaryDirectory() as tmp:
        for context in lexer_contexts:
            got = run(Path(tmp), CONTEXTS[context], value)
            if got is None:  # refusing is allowed only where a newline could end the document
                assert context == "quoted here-document" and "\n" in value, (context, value)
                continue
            want = value + ("\n" if "here-document" in context else "")
            if context in ("quoted in command substitution", "backticks in double quotes"):
                want = want.rstrip("\n")  # $(...) and `...` drop trailing newlines
            assert got == want, (context, value)


def test_lexer_tracks_nesting() -> None:
    lexer = ShellLexer()
    lexer.feed("echo \"a $(b 'c' ")
    assert lexer.top.kind == "subst"
    lexer.feed(')"')
    assert lexer.top.kind == "code"
    lexer.feed("cat <<-END\n\tbody\n\tEND\n")
    assert lexer.top.kind == "code"
    lexer.feed("cat <<END\n")
    assert lexer.top.kind == "heredoc" and not lexer.top.raw


def test_newline_in_a_here_document_value_is_refused() -> None:
    with pytest.raises(TemplateError, match="here-document"):
        render("cat <<EOF\n${p}\nEOF", {"p": "EOF\nrm -rf /"}, quote=True)
