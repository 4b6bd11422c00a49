"""README.md works top to bottom, as a new user runs it, in a fresh clone and a fresh venv.

What runs (the convention README's Development section documents):

- every ```sh block, in the order of the file, in ONE bash session (`set -euo pipefail`), so
  exported variables carry over; each block starts in the root of the clone, as README says;
- every ```python block, with the venv's `python`, from the root of the clone;
- not a ```sh block preceded by `<!-- not run: REASON -->` (the reason is required: this test
  fails on a marker without one), nor ```console blocks, which show output, not commands.

How the clone and venv are made, installing no dependency, in about 30 s (warm uv cache):

- the clone is a copy of `git ls-files -co --exclude-standard` of this working tree (so the test
  also works before a commit), made a git repository with one commit, as a fresh clone is;
- the venv is new (`python -m venv --without-pip`) and has the clone installed in it
  (`pip install -e CLONE`, what README's Install block does). Its dependencies come from this
  test's venv, whose site-packages a `.pth` file appends to the new venv's path; pip itself is
  this venv's pip run by the new interpreter, so it installs into the new venv. This venv's
  `bin` follows the new one's on PATH, for the dependencies' commands (`moto_server`); the
  session checks that `pipeline` and `python` are the new venv's. README's own `pip install`
  lines then find every requirement installed; only the build backend (setuptools, in pip's
  isolated build env) comes from the configured index, as for any user.
- README's temporary directories come from `mktemp -d`; TMPDIR is under tmp_path, so nothing
  is left in /tmp. The env cache (XDG_CACHE_HOME) is under tmp_path too, a new user's empty
  one; uv's download cache is the machine's, so building the quick start's env needs no
  network when it is warm.
- The S3 blocks start moto on 127.0.0.1:5555, as README shows; the session runs in its own
  process group, which the test kills at the end, moto included.
- "From run to service" starts `pipeline serve` in the background on 127.0.0.1:5002, waits for
  its /ping (curl's retries), and stops it by its PID (`kill $SERVER && wait $SERVER`); the test
  checks the port is free before the session and again after it, before it kills the group: the
  README's own way of stopping the server works.

Skipped blocks (marked in README): Install (this test makes the clone and venv itself: README's
`<this repository>` is a placeholder) and Development (it runs this test suite).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.venvs import borrowing_venv

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
MOTO_PORT = 5555  # the port README's S3 blocks use
SERVE_PORT = 5002  # the port README's `pipeline serve` listens on
DASK_PORT = 8786  # the port of README's Dask scheduler ("Running on a cluster")
MARK = "@@README.md:"  # printed before each block, to split the transcript by block

# What README's comments promise, checked in the output of the block holding the first string.
PROMISES = {
    "pipeline status                    # train is stale": ["param train.max_depth 5→2"],
    "pipeline checkout                  # the first model is back": [
        "restored: models/model",
        "Everything is up to date",
    ],
    "pipeline push ": ["pushed "],
    "pipeline pull ": ["Everything is up to date", "HELLO\nWORLD"],
    "pipeline checkout train.n_estimators=50": ["restored: models/model"],
    "pipeline run --sweep train.max_depth=3,4 --executor dask": [
        "✓ train.max_depth=3",
        "✓ train.max_depth=4",
        "hosts",
        "Everything is up to date",
    ],
    "pipeline registry add wine": ["registered models:/wine/1"],
    "pipeline registry history wine": ["champion"],
    "curl -s http://127.0.0.1:5002/invocations": ['{"predictions":[0]}'],
    "import requests": ["{'predictions': [2]}"],
    "pipeline lineage models:/wine@champion": ["params", "train.n_estimators=50", "rebuild"],
    "pipeline model build models:/wine@champion": ["wrote build context", "docker build -t wine"],
}


@dataclass(frozen=True)
class Block:
    """One fenced code block of README.md."""

    line: int  # 1-based line of its opening fence
    lang: str
    text: str
    skip_reason: str | None  # from `<!-- not run: REASON -->` right before it


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of `text`, with the not-run marker on the line before it, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = lines[i - 1].strip() if i else ""
        marker = NOT_RUN.match(before)
        if before.startswith("<!--") and "not run" in before and not marker:
            raise AssertionError(f"README.md:{i}: a not-run marker needs a reason: {before}")
        reason = marker.group("reason") if marker else None
        blocks.append(Block(i + 1, fence.group("lang"), "\n".join(lines[i + 1 : end]), reason))
        i = end + 1
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    """The blocks the test runs: sh and python blocks not marked as not run."""
    return [b for b in blocks if b.lang in ("sh", "python") and b.skip_reason is None]


def session_script(blocks: list[Block], clone: Path) -> str:
    """One bash script running `blocks` in order, each from the clone's root."""
    parts = [
        "set -euo pipefail",
        "README_BLOCK=setup",
        "trap 'echo \"README.md block at line $README_BLOCK failed\" >&2' ERR",
        f"README_CLONE={_quote(clone)}",
        '[ "$(command -v pipeline)" = "$VIRTUAL_ENV/bin/pipeline" ]',
        '[ "$(command -v python)" = "$VIRTUAL_ENV/bin/python" ]',
    ]
    for block in blocks:
        # On a line of its own even after output without a final newline (curl's answer).
        mark = f"printf '\\n%s\\n' {MARK}{block.line}"
        parts += [f"README_BLOCK={block.line}", mark, 'cd "$README_CLONE"']
        if block.lang == "python":
            parts.append(f"python - <<'README_PYTHON'\n{block.text}\nREADME_PYTHON")
        else:
            parts.append(block.text)
    return "\n".join(parts) + "\n"


def outputs_by_block(transcript: str) -> dict[int, str]:
    """The session's output split at the marks: README line of each block → its output."""
    chunks = re.split(rf"^{re.escape(MARK)}(\d+)$", transcript, flags=re.MULTILINE)
    return {int(line): text for line, text in zip(chunks[1::2], chunks[2::2], strict=True)}


def broken_promises(blocks: list[Block], outputs: dict[int, str]) -> list[str]:
    """The PROMISES whose block printed less than promised (or whose block is gone)."""
    broken = []
    for key, wanted in PROMISES.items():
        found = [b for b in blocks if key in b.text]
        if not found:
            broken.append(f"no README block holds {key!r}")
            continue
        output = outputs.get(found[0].line, "")
        broken += [f"README.md:{found[0].line}: no {w!r}" for w in wanted if w not in output]
    return broken


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


# -- the fresh clone and venv ------------------------------------------------------------------


def copy_working_tree(dest: Path) -> Path:
    """This working tree's files (tracked and untracked, not ignored) as a fresh git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = REPO / rel
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "clone"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def fresh_venv(venv: Path, clone: Path) -> Path:
    """A new venv with `clone` installed in it, its dependencies taken from this venv."""
    python = borrowing_venv(venv)  # the clone, installed below, comes before them
    pip = venv / "bin" / "pip"
    pip.write_text(
        f"#!{python}\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n"
    )
    pip.chmod(0o755)
    done = subprocess.run(
        [str(pip), "install", "-q", "--no-deps", "-e", str(clone)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def session_env(tmp_path: Path, venv: Path) -> dict[str, str]:
    """The shell's environment: the venv activated, temp and env caches under tmp_path."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "PYTHON"))}
    path = [str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
    env.update(
        PATH=os.pathsep.join(path),
        VIRTUAL_ENV=str(venv),
        TMPDIR=str(tmp),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv"),
    )
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# -- the tests ---------------------------------------------------------------------------------


def test_every_shell_block_runs_or_says_why_not() -> None:
    """The convention holds: no sh block is skipped without a reason, and most of them run."""
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    shell = [b for b in blocks if b.lang == "sh"]
    skipped = [b for b in shell if b.skip_reason]
    assert all(b.lang == "sh" for b in blocks if b.skip_reason), "only sh blocks are marked"
    # Install (a placeholder URL), Development (the suite itself), the Slurm recipe (no
    # batch queue here): anything more should run.
    assert len(skipped) <= 3, [b.line for b in skipped]
    # A ```bash or ```shell block would silently not run: only these kinds are known.
    unknown = [
        (b.line, b.lang) for b in blocks if b.lang not in ("sh", "console", "python", "yaml")
    ]
    assert not unknown, f"README blocks of a kind this test does not know: {unknown}"


def test_marker_without_a_reason_is_refused() -> None:
    with pytest.raises(AssertionError, match="needs a reason"):
        readme_blocks("<!-- not run -->\n```sh\nfalse\n```\n")
    blocks = readme_blocks("<!-- not run: needs a GPU -->\n```sh\nfalse\n```\n```sh\ntrue\n```\n")
    assert [b.skip_reason for b in blocks] == ["needs a GPU", None]
    assert [b.text for b in runnable(blocks)] == ["true"]


def test_promises_are_checked_in_their_own_block() -> None:
    blocks = readme_blocks("```sh\npipeline push \n```\n```sh\npipeline pull \n```\n")
    outputs = outputs_by_block(f"{MARK}1\npushed 3\n{MARK}4\nHELLO\nWORLD\n")
    assert outputs == {1: "\npushed 3\n", 4: "\nHELLO\nWORLD\n"}
    broken = broken_promises(blocks, outputs)
    assert "README.md:4: no 'Everything is up to date'" in broken
    assert not [b for b in broken if "README.md:1:" in b]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_runs_top_to_bottom(tmp_path: Path) -> None:
    ports = ((MOTO_PORT, "S3 blocks"), (SERVE_PORT, "`pipeline serve`"), (DASK_PORT, "cluster"))
    for port, what in ports:
        if not _port_free(port):
            pytest.fail(f"port {port}, which README's {what} uses, is taken")
    clone = copy_working_tree(tmp_path / "pipeline")
    venv = fresh_venv(tmp_path / "venv", clone)
    blocks = runnable(readme_blocks(README.read_text(encoding="utf-8")))
    script = session_script(blocks, clone)
    session = subprocess.Popen(
        ["bash", "-c", script],
        cwd=clone,
        env=session_env(tmp_path, venv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: moto_server goes with it
    )
    try:
        output, _ = session.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        _kill_group(session.pid)
        pytest.fail("README's blocks still ran after 9 minutes:\n" + session.communicate()[0])
    finally:
        server_stopped = _port_free(SERVE_PORT)  # by README's `kill $SERVER`, not by this test
        cluster_stopped = _port_free(DASK_PORT)  # by README's `kill $SCHEDULER`
        _kill_group(session.pid)  # moto_server, started in the background, ends here
    (tmp_path / "session.log").write_text(output)  # the whole transcript, for a failure
    assert session.returncode == 0, output[-6000:]
    assert server_stopped, "README's last serving block left `pipeline serve` running"
    assert cluster_stopped, "README's cluster blocks left the Dask scheduler running"
    assert broken_promises(blocks, outputs_by_block(output)) == []
    _assert_no_outputs_committed(tmp_path / "tmp", clone)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # everything in it already ended
        os.killpg(pgid, signal.SIGKILL)


# What README's projects must never commit: outputs, tracked data, pipeline's own state.
# (.pipeline/.gitignore and .pipeline/config.yaml are committed, as DVC commits .dvc/'s.)
OUTPUTS = re.compile(
    r"(^|/)(data|models|metrics)/|(^|/)\.pipeline/(?!\.gitignore$|config\.yaml$)|^(words|loud)\.txt$"
)


def _assert_no_outputs_committed(tmp: Path, clone: Path) -> None:
    """README's projects commit code and pipeline.lock, never data or models (issue 13.2):
    not in any commit, nor in what `git add -A` would add now; and `git add -A` in the clone,
    after the quick start and experiments ran in it, adds no file at all."""
    repos = sorted(p.parent for p in tmp.glob("**/.git"))
    assert len(repos) >= 3, f"expected the demo, alice and bob under {tmp}: {repos}"
    for repo in repos:
        committed = _git_lines(repo, "log", "--all", "--name-only", "--format=")
        addable = _git_lines(repo, "ls-files", "-co", "--exclude-standard")
        assert committed, f"{repo}: nothing committed"
        outputs = sorted({f for f in committed + addable if OUTPUTS.search(f)})
        assert not outputs, f"{repo}: outputs committed or not ignored: {outputs}"
    assert _git_lines(clone, "ls-files", "-o", "--exclude-standard") == []


def _git_lines(repo: Path, *args: str) -> list[str]:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.split()
