"""Keeping cached outputs and tracked data out of git: a managed block in the root .gitignore.

Only paths git does not ignore by other means are listed (one `git check-ignore -v` call, whose
answers from our own block are discounted), so a project that ignores its outputs itself keeps
its .gitignore untouched. Outside a git repository the block lists every path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.core.atomic import atomic_write_text
from pipeline.core.git import git, repo_prefix

BEGIN = "# >>> pipeline: cached outputs and tracked data (managed by pipeline; do not edit)"
END = "# <<< pipeline"


def update_gitignore(root: Path, paths: Iterable[str]) -> bool:
    """Make the managed block list `paths` (minus those ignored otherwise); True if changed."""
    ignore = root / ".gitignore"
    text = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    before, block, after = _split(text)
    first_line = before.count("\n") + 1 if block else 0
    block_lines = range(first_line, first_line + len(block) + 2) if block else range(0)
    wanted = sorted(_not_ignored(root, sorted(set(paths)), block_lines))
    if wanted == block:
        return False
    lines = [BEGIN, *(f"/{_escape(p)}" for p in wanted), END] if wanted else []
    parts = [before.rstrip("\n"), "\n".join(lines), after.strip("\n")]
    body = "\n".join(part for part in parts if part)
    if body or ignore.exists():
        atomic_write_text(ignore, body + "\n" if body else "")
    return True


def _escape(path: str) -> str:
    """A literal path as a gitignore pattern: glob characters and edge spaces escaped."""
    escaped = "".join("\\" + c if c in "*?[]!#\\" else c for c in path)
    return escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped


def _split(text: str) -> tuple[str, list[str], str]:
    """(text before the block, paths in it, text after it)."""
    if BEGIN not in text or END not in text:
        return text, [], ""
    before, rest = text.split(BEGIN, 1)
    inside, after = rest.split(END, 1)
    paths = [line.strip().lstrip("/") for line in inside.splitlines() if line.strip()]
    return before, paths, after


def _not_ignored(root: Path, candidates: list[str], ours: range) -> list[str]:
    """Candidates git does not ignore, not counting matches from our own block's lines."""
    if not candidates:
        return []
    stdin = "\n".join(candidates) + "\n"
    out = git(root, "check-ignore", "-v", "--stdin", stdin=stdin, succeeds=(0, 1), timeout=30)
    if out is None:  # 128: not a git repository
        return candidates
    ignored = set()
    own: str | None = None  # our .gitignore as git names it: relative to the repository's top
    for line in out.splitlines():
        source, _, path = line.partition("\t")  # "<file>:<line>:<pattern>\t<path>"
        origin, lineno, _ = [*source.split(":", 2), "", ""][:3]
        if lineno.isdigit() and int(lineno) in ours and origin.endswith(".gitignore"):
            own = own if own is not None else repo_prefix(root) + ".gitignore"
            if origin == own:
                continue  # ignored only because of our block: it must stay listed
        ignored.add(path)
    return [p for p in candidates if p not in ignored]
