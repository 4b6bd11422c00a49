"""Plan side: a declared environment → a `ResolvedEnv` with the digest that names it.

The digest covers what determines the env's contents: its kind, the bytes of its spec and of
every file the spec includes (or, when a lock is present, the lock's packages: the lock is what
gets built, and its comments are left out), the platform, and the interpreter's implementation
and version. Paths are left out, so two projects with the same spec share one env, and a
colleague's machine computes the same digest. A lock written for exactly the package versions
the env already had says so in its header (`CONTENT_MARK`), and keeps that env's digest:
`pipeline env lock` that changes no version reruns no stage. The digest is part of every
fingerprint of a stage using the env (`fingerprint.py`).
Nothing here builds anything or imports an installer.
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.fingerprint import canonical_json
from pipeline.core.hashing import digest_bytes
from pipeline.core.yamlio import load_yaml
from pipeline.env.interpreters import Interpreter, find_python
from pipeline.env.specfile import EnvRequest, read_spec
from pipeline.errors import EnvironmentSetupError, ManifestError, PipelineError
from pipeline.load.environments import EnvDecl
from pipeline.load.envkind import EnvKind
from pipeline.load.project import Project, Stage

FORMAT = 1
LOCK_MARK = "# pipeline-spec-digest: "
CONTENT_MARK = "# pipeline-env-content: "  # `<content> for <body digest>`: see `locked_content`


@dataclass(frozen=True)
class ResolvedEnv:
    """A declared env made concrete on this machine: what to build and the digest naming it."""

    decl: EnvDecl
    digest: str
    spec: Path
    request: EnvRequest = field(repr=False)
    spec_digest: str
    interpreter: Interpreter | None = None  # venv kinds
    lock: Path | None = None  # the lock the env is built from, when one exists
    lock_stale: bool = False  # the spec changed after the lock was written
    content: str = ""  # the digest's `content`: the spec's digest, or the lock's packages'

    @property
    def name(self) -> str:
        return self.decl.name

    @property
    def kind(self) -> EnvKind:
        return self.decl.kind

    @property
    def is_conda(self) -> bool:
        return self.kind.is_conda

    @property
    def interpreter_path(self) -> str:
        assert self.interpreter is not None, "only venv kinds have an interpreter"
        return self.interpreter.path

    @property
    def short(self) -> str:
        return self.digest.split(":")[-1][:12]


def lock_path(kind: EnvKind, spec: Path) -> Path:
    """Where `pipeline env lock` writes the lock of a spec: next to it (PEP 751 / conda-lock)."""
    kind = EnvKind(kind)  # its name will do too
    if kind is EnvKind.CONDA_LOCK:
        return spec
    stem = (spec.stem if spec.suffix else spec.name).replace(".", "-") or "env"
    if kind.is_venv:
        return spec.with_name(f"pylock.{stem}.toml")
    return spec.with_name(f"{stem}.conda-lock.yml")


class EnvResolver:
    """Resolves each env of a project once; `local` mode (`--env-manager local`) resolves none."""

    def __init__(self, project: Project, *, local: bool = False) -> None:
        self.project = project
        self.local = local
        self._done: dict[str, ResolvedEnv] = {}

    def for_stage(self, stage: Stage) -> ResolvedEnv | None:
        if self.local or stage.env is None:
            return None
        return self.get(stage.env)

    def get(self, name: str) -> ResolvedEnv | None:
        """The env named `name`; None for `system` (no isolation, nothing to digest)."""
        decl = self.project.environments[name]
        if not decl.isolated:
            return None
        if name not in self._done:
            try:
                self._done[name] = resolve_env(self.project.root, decl)
            except PipelineError as exc:
                raise self._located(decl, exc) from None
        return self._done[name]

    def _located(self, decl: EnvDecl, exc: PipelineError) -> PipelineError:
        """The same error, prefixed with the manifest line that declared the env.

        A malformed spec file already names its own file and line, and stays a usage error.
        """
        if isinstance(exc, ManifestError):
            return exc
        line, col = _position(self.project.manifest, decl)
        where = f"{self.project.manifest.name}:{line}:{col}: env {decl.name!r}: "
        return EnvironmentSetupError(where + exc.message, exc.hint)


def _position(manifest: Path, decl: EnvDecl) -> tuple[int, int]:
    """Where the manifest declares `decl`; 1:1 when the manifest no longer parses."""
    try:
        return load_yaml(manifest).locate(decl.loc)
    except (ManifestError, OSError):
        return 1, 1


def resolve_env(root: Path, decl: EnvDecl) -> ResolvedEnv:
    """Read the spec (and lock) of `decl` and compute its digest."""
    assert decl.file is not None
    spec = Path(os.path.normpath(root / decl.file))
    request = read_spec(decl.kind, spec)
    interpreter = None
    if decl.kind.is_venv:
        interpreter = find_python(decl.python or request.python)
    spec_digest = digest_bytes(canonical_json([[n, digest_bytes(b)] for n, b in request.files]))
    lock = lock_path(decl.kind, spec)
    locked = lock.read_bytes() if lock.is_file() else None
    content = locked_content(locked) if locked is not None else spec_digest
    payload = {
        "format": FORMAT,
        "kind": decl.kind,
        "platform": sysconfig.get_platform(),
        "python": interpreter.identity if interpreter else None,
        "content": content,
    }
    stale = (
        locked is not None
        and decl.kind is not EnvKind.CONDA_LOCK
        and not _locks(locked, spec_digest)
    )
    return ResolvedEnv(
        decl,
        digest_bytes(canonical_json(payload)),
        spec,
        request,
        spec_digest,
        interpreter,
        lock if locked is not None else None,
        stale,
        content,
    )


def body_digest(text: str) -> str:
    """The digest of a lock's text without its comment lines (headers, `created by` notes)."""
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    return digest_bytes(body.encode("utf-8"))


def locked_content(locked: bytes) -> str:
    """The `content` of a locked env's digest: the digest of the lock's body, unless the lock
    says it pins exactly the versions of an env whose content it names (and its body is still
    the one it was written with): then that content, so the env and its stages stay as they are."""
    text = locked.decode("utf-8", "replace")
    body = body_digest(text)
    for line in text[:4096].splitlines():
        if line.startswith(CONTENT_MARK):
            named, _, written_for = line[len(CONTENT_MARK) :].partition(" for ")
            if written_for.strip() == body:
                return named.strip()
    return body


def _locks(lock: bytes, spec_digest: str) -> bool:
    """Whether a lock was written for this exact spec (it records the spec's digest)."""
    head = lock[:4096].decode("utf-8", "replace")
    marks = [line for line in head.splitlines() if line.startswith(LOCK_MARK)]
    return not marks or marks[0][len(LOCK_MARK) :].strip() == spec_digest
