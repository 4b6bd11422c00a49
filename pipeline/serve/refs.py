"""MODEL references: what `serve`, `registry add` and `model build` accept, as a package dir.

A reference is a package directory in the workspace (it holds an `MLmodel` file), a run's
output (`runs:/RUN/PATH`, MLflow's form), a registered version (`models:/NAME@ALIAS`,
`models:/NAME/N`, `models:/NAME/latest`) or the name of an artifact the manifest declares.
A package the workspace does not hold as it was recorded is materialised read-only from the
cache (brought from the default remote first when the cache lacks it) into
`.pipeline/tmp/models/<hash>/`: placed in a temp directory, verified object by object, then
renamed into place, and reused as it is by later calls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.hashing import HashInfo, digest_bytes, tree_manifest
from pipeline.core.paths import PathRuleError, normalize
from pipeline.errors import DataError, PipelineError, UsageError
from pipeline.load.declared import ArtifactDecl
from pipeline.plan.session import Session, open_session
from pipeline.runs import modeluri
from pipeline.runs.runstore import RunStore, has_store
from pipeline.store.objects import store_output, store_strategies
from pipeline.store.restore import Restorer

MLMODEL = "MLmodel"
MODELS_DIR = "tmp/models"  # under .pipeline


@dataclass(frozen=True)
class ModelRef:
    """A resolved MODEL: a local package dir ready to load, and what it is."""

    dir: Path
    hash: str | None
    source: str  # for people: where it came from
    run_id: str | None = None
    version: tuple[str, int] | None = None
    path: str | None = None  # project-relative path of the package, when it has one


def resolve_model(where: Path | str | Session, ref: str) -> ModelRef:
    """Resolve `ref` in the project at `where` (a directory, or an open session)."""
    if isinstance(where, Session):
        return resolve(where, ref)
    with open_session(where) as session:
        return resolve(session, ref)


def resolve(session: Session, ref: str) -> ModelRef:
    if ref.startswith(modeluri.MODELS):
        return _registered(session, ref)
    if ref.startswith(modeluri.RUNS):
        return _run_output(session, ref)
    declared = artifact(session, ref)
    if declared is not None and not Path(ref).exists():
        return _declared(session, declared)
    return _workspace(session, ref)


def artifact(session: Session, name: str) -> ArtifactDecl | None:
    """The artifact the manifest declares under `name`, if any."""
    return next((a for a in session.project.declared.artifacts if a.name == name), None)


# --- each form ----------------------------------------------------------------------------


def _workspace(session: Session, ref: str) -> ModelRef:
    path = (Path.cwd() / ref).resolve()
    if not (path / MLMODEL).is_file():
        names = [a.name for a in session.project.declared.artifacts]
        raise UsageError(
            f"{ref} is not a model package (no {MLMODEL} file in it)"
            if path.is_dir()
            else f"no model {ref!r}: not a directory, URI or declared artifact",
            "give a package directory written by pipeline.models.save, "
            + (f"a declared artifact ({', '.join(names)}), " if names else "")
            + "models:/NAME@ALIAS or runs:/RUN/PATH",
        )
    relpath = _relative(session, path)
    if relpath is None:
        return ModelRef(path, None, str(path))
    info = session.hasher.hash(relpath)
    return ModelRef(path, info.hash if info else None, relpath, path=relpath)


def _declared(session: Session, decl: ArtifactDecl) -> ModelRef:
    if decl.type not in (None, "model"):
        raise UsageError(
            f"artifact {decl.name!r} is a {decl.type}, not a model",
            "declare it with `type: model` in the manifest's artifacts",
        )
    path = session.project.root / decl.path
    if (path / MLMODEL).is_file():
        found = _workspace(session, str(path))
        return ModelRef(
            found.dir, found.hash, f"artifact {decl.name} ({decl.path})", path=decl.path
        )
    locked = _locked_out(session, decl.path)
    if locked is None:
        raise DataError(
            f"artifact {decl.name!r}: {decl.path} is not in the workspace nor in the lock",
            "run `pipeline repro` to build it",
        )
    folder = materialise(session, locked)
    return ModelRef(folder, locked.hash, f"artifact {decl.name} ({decl.path})", path=decl.path)


def _registered(session: Session, ref: str) -> ModelRef:
    from pipeline.runs.registry import Registry  # noqa: PLC0415 - imports SQLAlchemy's ORM

    uri = modeluri.parse(ref)
    assert isinstance(uri, modeluri.ModelUri)
    with _store(session) as store:
        version = Registry(store).show(uri.name, uri.spec)
    source = f"{ref} (version {version.version})"
    folder = _current(session, version.path, version.hash)
    if folder is None:
        folder = materialise(session, HashInfo(version.hash, 0, 0, isdir=True))
    return ModelRef(
        folder, version.hash, source, version.run_id, (version.name, version.version), version.path
    )


def _run_output(session: Session, ref: str) -> ModelRef:
    uri = modeluri.parse(ref)
    assert isinstance(uri, modeluri.RunUri)
    with _store(session) as store:
        detail = store.detail(uri.run)
    want = uri.path.rstrip("/")
    outs = [o for s in detail.stages for o in s.outs]
    exact = next((o for o in outs if o.path == want), None)
    if exact is not None:
        info = HashInfo(exact.hash, exact.size or 0, exact.nfiles or 0, isdir=True)
        if not _tree_or_absent(session, exact.hash):
            raise UsageError(f"{ref}: {want} is a file, not a model package directory")
    else:
        outer = next((o for o in outs if want.startswith(o.path + "/")), None)
        if outer is None:
            paths = ", ".join(sorted(o.path for o in outs)) or "none"
            raise UsageError(f"run {detail.run.id} wrote no {want}", f"its outputs: {paths}")
        info = _subtree(
            session, HashInfo(outer.hash, 0, 0, isdir=True), want[len(outer.path) + 1 :]
        )
    folder = _current(session, want, info.hash) or materialise(session, info)
    return ModelRef(folder, info.hash, f"{ref} (run {detail.run.id})", detail.run.id, None, want)


# --- the cache ----------------------------------------------------------------------------


def materialise(session: Session, info: HashInfo) -> Path:
    """The package `info` as a read-only directory under `.pipeline/tmp/models/`."""
    if not modeluri.PACKAGE_HASH.fullmatch(info.hash):  # it becomes a folder name below
        raise DataError(
            f"{info.hash!r} is not a package hash",
            "the registry event or run record that names it is damaged",
        )
    state_dir = session.project.state_dir
    target = state_dir / MODELS_DIR / info.hash.partition(":")[2]
    if (target / MLMODEL).is_file():
        return target
    _ensure_cached(session, info)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".tmp-{uuid.uuid4().hex}"
    relpath = temp.relative_to(session.project.root).as_posix()
    try:
        Restorer(session.project.root, session.store, session.hasher).restore(relpath, info)
        _read_only(temp)
        try:
            os.replace(temp, target)
        except OSError:  # another process placed it first: theirs is as good
            if not (target / MLMODEL).is_file():
                raise
    finally:
        if temp.exists():
            _remove(temp)
    if not (target / MLMODEL).is_file():
        raise UsageError(f"{info.hash} is not a model package (no {MLMODEL} file in it)")
    return target


def store_package(session: Session, ref: ModelRef) -> None:
    """Put a workspace package into the cache (as `pipeline add` does, but the lock is not
    touched), so a version stays loadable when the workspace copy changes."""
    if ref.path is None or ref.hash is None:
        raise UsageError(
            f"{ref.dir} is outside the project", "copy the package into the project first"
        )
    info = session.hasher.hash(ref.path)
    if info is None or info.hash != ref.hash:
        raise DataError(f"{ref.path} changed while it was being registered", "try again")
    if not session.store.complete(info):
        strategies = store_strategies(session.config.cache_type)
        store_output(session.store, session.hasher, ref.path, info, strategies)


def _ensure_cached(session: Session, info: HashInfo) -> None:
    """Bring `info` into the cache from the default remote if it is not complete here."""
    if _complete(session, info):
        return
    if session.config.has_default_remote:
        from pipeline.store.transfer import connected  # noqa: PLC0415 - remotes load fsspec

        settings = session.config.remote(None)
        with connected(session.store, settings, session.project.root) as transfer:
            transfer.download([info])
    if not _complete(session, info):
        raise DataError(
            f"model package {info.hash} is not in the cache"
            + (" nor on the default remote" if session.config.has_default_remote else ""),
            "`pipeline pull --runs` from a remote that has it, or `pipeline repro` to rebuild it",
        )


def _complete(session: Session, info: HashInfo) -> bool:
    try:
        return session.store.complete(info)
    except DataError:
        return False


def _tree_or_absent(session: Session, digest: str) -> bool:
    """Whether the object is a directory listing (or not here to tell): peeked at, since
    `read_tree` would quarantine a file's object as a damaged listing."""
    try:
        with open(session.store.path(digest), "rb") as fh:
            head = fh.read(9)
    except FileNotFoundError:
        return True
    return head in (b"[]", b'[{"path":') or head.startswith(b"[]")


def _subtree(session: Session, outer: HashInfo, inner: str) -> HashInfo:
    """The directory `inner` of the stored tree `outer`, stored as a tree of its own."""
    _ensure_cached(session, outer)
    entries = [
        (e.path[len(inner) + 1 :], e.hash, e.executable)
        for e in session.store.read_tree(outer.hash)
        if e.path.startswith(inner + "/")
    ]
    if not entries:
        raise UsageError(f"{inner} is not a directory in output {outer.hash}")
    manifest = tree_manifest(entries)
    digest = digest_bytes(manifest)
    session.store.put_bytes(manifest, digest)
    return HashInfo(digest, 0, len(entries), isdir=True)


def _current(session: Session, relpath: str | None, digest: str) -> Path | None:
    """The workspace package at `relpath`, if it is still exactly `digest`."""
    if relpath is None or not (session.project.root / relpath / MLMODEL).is_file():
        return None
    try:
        info = session.hasher.hash(relpath)
    except (PathRuleError, PipelineError):  # a path that left the project, or broke
        return None
    return session.project.root / relpath if info is not None and info.hash == digest else None


def _locked_out(session: Session, path: str) -> HashInfo | None:
    for entry in session.lock.stages.values():
        for out in entry.outs:
            if out.path == path:
                return out.info
    return session.lock.data.get(path)


def _relative(session: Session, path: Path) -> str | None:
    try:
        return normalize(path.relative_to(session.project.root.resolve()).as_posix())
    except (ValueError, PathRuleError):
        return None


@contextlib.contextmanager
def _store(session: Session) -> Iterator[RunStore]:
    state_dir = session.project.state_dir
    if not has_store(state_dir):
        raise UsageError("no runs or models are recorded in this project yet")
    store = RunStore.for_project(state_dir)
    try:
        yield store
    finally:
        store.close()


def _read_only(folder: Path) -> None:
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, mode & ~0o222)


def _remove(folder: Path) -> None:
    def writable(func: object, path: str, _: object) -> None:
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, 0o644)
        os.unlink(path)

    shutil.rmtree(folder, onerror=writable)
