"""Keeping cached outputs and tracked data out of git: a managed block in the root .gitignore.

Only paths git does not ignore already are listed (one `git check-ignore` call), so a project
that ignores its outputs itself keeps its .gitignore untouched. Outside a git repository the
block lists every path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from pipeline.yamlio import atomic_write_text

BEGIN = "# >>> pipeline: cached outputs and tracked data (managed by pipeline; do not edit)"
END = "# <<< pipeline"


def update_gitignore(root: Path, paths: Iterable[str]) -> bool:
    """Make the managed block list `paths` (minus those already ignored); True if changed."""
    ignore = root / ".gitignore"
    text = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    before, block, after = _split(text)
    current = set(paths)
    kept = [p for p in block if p in current]  # our own lines make git report these ignored
    wanted = sorted({*kept, *_not_ignored(root, sorted(current - set(block)))})
    if wanted == block:
        return False
    lines = [BEGIN, *(f"/{p}" for p in wanted), END] if wanted else []
    body = "\n".join(part for part in (before.rstrip("\n"), "\n".join(lines), after) if part)
    atomic_write_text(ignore, body + "\n")
    return True


def _split(text: str) -> tuple[str, list[str], str]:
    """(text before the block, paths in it, text after it)."""
    if BEGIN not in text or END not in text:
        return text, [], ""
    before, rest = text.split(BEGIN, 1)
    inside, after = rest.split(END, 1)
    paths = [line.strip().lstrip("/") for line in inside.splitlines() if line.strip()]
    return before, paths, after.lstrip("\n")


def _not_ignored(root: Path, candidates: list[str]) -> list[str]:
    if not candidates:
        return []
    try:
        done = subprocess.run(
            ["git", "check-ignore", "--stdin"],
            cwd=root,
            input="\n".join(candidates) + "\n",
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return candidates
    if done.returncode not in (0, 1):  # 128: not a git repository
        return candidates
    ignored = set(done.stdout.splitlines())
    return [p for p in candidates if p not in ignored]
