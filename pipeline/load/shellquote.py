"""Where in a bash command a placeholder sits, and how to escape a value for exactly that place.

A template value must reach the program as data, never as code, wherever the author put the
placeholder: bare (`shlex.quote`), in "double quotes" (backslash before `\\ " $ \\``), in
'single quotes' (`'\\''`), inside `$(...)` or backticks (bare again, even within double
quotes), in a comment, or in a here-document (unquoted: expansions escaped; quoted: raw). Values
with a newline cannot go into a here-document, where a line could end it early.

`ShellLexer` follows bash's quoting over the literal text between placeholders. It is a lexer,
not a parser: `case` patterns inside `$(...)` can confuse it, which the docs mention.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

CODE, SUBST, ARITH, BACKTICK = "code", "subst", "arith", "backtick"
SINGLE, ANSI_C, DOUBLE, COMMENT, HEREDOC = "single", "ansi-c", "double", "comment", "heredoc"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_WORD_START = set(" \t\n;&|()<>")
_HEREDOC = re.compile(r"<<(-?)[ \t]*(['\"]?)(\\?[A-Za-z0-9_.-]+)\2")
_DOUBLE_SPECIAL = re.compile(r'([\\"$`])')
_HEREDOC_SPECIAL = re.compile(r"([\\$`])")


class UnsafeSubstitution(ValueError):
    """A value cannot be placed safely at this position."""


def _arith(value: str) -> str:
    # $((...)) expands like "..." and then evaluates names (even `a[$(cmd)]`): numbers only
    if not _NUMBER.match(value):
        raise UnsafeSubstitution("only a number can go into $((...))")
    return value


_ESCAPERS: dict[str, Callable[[str], str]] = {
    CODE: shlex.quote,
    SUBST: shlex.quote,
    # bash unescapes \\ \` \$ inside `...` before running it
    BACKTICK: lambda v: _HEREDOC_SPECIAL.sub(r"\\\1", shlex.quote(v)),
    SINGLE: lambda v: v.replace("'", "'\\''"),
    ANSI_C: lambda v: v.replace("\\", "\\\\").replace("'", "\\'"),  # $'...'
    DOUBLE: lambda v: _DOUBLE_SPECIAL.sub(r"\\\1", v),
    COMMENT: lambda v: v.replace("\n", " "),
    HEREDOC: lambda v: _HEREDOC_SPECIAL.sub(r"\\\1", v),
    ARITH: _arith,
}


@dataclass
class _Frame:
    kind: str
    depth: int = 0  # unmatched `(` inside a $(...) frame
    delimiter: str = ""
    raw: bool = False  # a quoted here-document: nothing in its body is expanded
    strip_tabs: bool = False


@dataclass
class ShellLexer:
    """Feed it a command's literal text piece by piece; ask how to escape at the current end."""

    stack: list[_Frame] = field(default_factory=lambda: [_Frame(CODE)])
    escaped: bool = False
    dollar: bool = False  # the previous character was an unescaped, live `$`
    prev: str = "\n"
    line: list[str] = field(default_factory=list)  # the current line, for here-documents
    marks: list[int] = field(default_factory=list)  # where `<<` appeared in code on this line
    pending: list[_Frame] = field(default_factory=list)  # here-documents opened on this line

    @property
    def top(self) -> _Frame:
        return self.stack[-1]

    def feed(self, text: str) -> None:
        for char in text:
            self._char(char)
            self.prev = char

    def escape(self, value: str) -> str:
        """`value` escaped so that the shell reads it back unchanged at this position."""
        frame = self.top
        if frame.kind == HEREDOC and "\n" in value:
            raise UnsafeSubstitution("a value with a newline cannot go into a here-document")
        if frame.kind == HEREDOC and frame.raw:
            return value
        return _ESCAPERS[frame.kind](value)

    def _char(self, char: str) -> None:
        kind = self.top.kind
        was_dollar, self.dollar = self.dollar, False
        if kind == HEREDOC:
            self._heredoc(char, was_dollar)
            return
        if kind != COMMENT:
            self.line.append(char)
        if kind in (CODE, SUBST, BACKTICK):
            self._code(char, was_dollar)
        elif kind == SINGLE:
            if char == "'":
                self.stack.pop()
        elif kind == ANSI_C:
            self._live(char, False, closing="'")
        elif kind == ARITH:
            self._arith(char, was_dollar)
        elif kind == DOUBLE:
            self._live(char, was_dollar, closing='"')
        elif char == "\n":  # the end of a comment
            self.stack.pop()
            self._newline()

    def _code(self, char: str, was_dollar: bool) -> None:
        if self.escaped:
            self.escaped = False
        elif char == "'":
            self.stack.append(_Frame(ANSI_C if was_dollar else SINGLE))
        elif char == '"':
            self.stack.append(_Frame(DOUBLE))
        elif char == "#" and self.prev in _WORD_START:
            self.stack.append(_Frame(COMMENT))
        elif char == "\n":
            self._newline()
        elif char == "<":
            self._redirect()
        else:
            self._live(char, was_dollar)

    def _live(self, char: str, was_dollar: bool, closing: str = "") -> None:
        """Escapes, `$(`, backticks and parentheses: live in code, "..." and here-documents."""
        frame = self.top
        if self.escaped:
            self.escaped = False
        elif char == "\\":
            self.escaped = True
        elif closing and char == closing:
            self.stack.pop()
        elif char == "$":
            self.dollar = True
        elif char == "(" and was_dollar:
            self.stack.append(_Frame(SUBST))
        elif char == "(" and frame.kind == SUBST and self.prev == "(" and not frame.depth:
            frame.kind = ARITH  # `$((` opens arithmetic, not a command
        elif char == "`":
            if frame.kind == BACKTICK:
                self.stack.pop()
            else:
                self.stack.append(_Frame(BACKTICK))
        elif frame.kind == SUBST:
            self._parens(frame, char)

    def _parens(self, frame: _Frame, char: str) -> None:
        if char == "(":
            frame.depth += 1
        elif char == ")":
            if frame.depth:
                frame.depth -= 1
            else:
                self.stack.pop()

    def _arith(self, char: str, was_dollar: bool) -> None:
        """Inside $((...)): nested $(...), parentheses; the first `)` of `))` closes it."""
        if char in "()" and not (char == "(" and was_dollar):
            self._parens(self.top, char)
        else:
            self._live(char, was_dollar)

    def _redirect(self) -> None:
        """Remember where `<<` (not `<<<`) starts, to read its delimiter at the line's end."""
        end = len(self.line)
        if self.marks and self.marks[-1] == end - 3 and self.prev == "<":
            self.marks.pop()  # `<<<`, a here-string
        elif self.prev == "<":
            self.marks.append(end - 2)

    def _heredoc(self, char: str, was_dollar: bool) -> None:
        frame = self.top
        if char != "\n":
            self.line.append(char)
            if not frame.raw:
                self._live(char, was_dollar)
            return
        text = "".join(self.line)
        self.line.clear()
        if (text.lstrip("\t") if frame.strip_tabs else text) == frame.delimiter:
            self.stack.pop()
            self._start_heredoc()

    def _newline(self) -> None:
        """End of a code line: here-documents opened on it start now."""
        text = "".join(self.line)
        for mark in self.marks:
            match = _HEREDOC.match(text, mark)
            if match:
                strip, quote, word = match.groups()
                raw = bool(quote) or word.startswith("\\")  # <<'EOF', <<"EOF", <<\EOF
                delimiter = word.lstrip("\\")
                self.pending.append(
                    _Frame(HEREDOC, delimiter=delimiter, raw=raw, strip_tabs=bool(strip))
                )
        self.line.clear()
        self.marks.clear()
        self._start_heredoc()

    def _start_heredoc(self) -> None:
        if self.pending and self.top.kind in (CODE, SUBST, BACKTICK):
            self.stack.append(self.pending.pop(0))
