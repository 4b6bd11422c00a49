"""The model registry: named models, their versions by content hash, aliases, tags, history.

It lives in the run store. The append-only `registry_events` table is the truth: every change
(register, alias, unalias, tag, untag) is one event with who, when, from → to and why. The
versions, aliases and tags tables are derived from it: after each change, and after teammates'
events are imported (`pull --runs`), a name's state is rebuilt by replaying its events in
(time, id) order, so the later alias move or tag wins on every machine.

A version is the content hash of a model package: registering the same hash again returns the
existing version and records nothing. Versions are per-name integers (max + 1). A number once
given here is never taken back: `models:/NAME/N` pinned in a script means the same package
after any `pull --runs`. The rule of a rebuild: packages the derived table already numbers
keep their numbers; the others are numbered in (time, id) order, each taking the number its
register event recorded when that is free, else the next free one (max + 1) with a warning.
So the numbers are a function of this store's own sequence of changes and imports, and two
teammates who registered different packages as the same number each keep their own as N:
the hash, not the number, names a package across machines. Events name their package by
hash, so aliases and tags follow it to whatever number it has here.

Events pulled from a remote are checked field by field (`Event.from_json`): a name, alias or
hash that this tool would not write is refused, since hashes become folder names and names
become git tags.

Writes run in `BEGIN IMMEDIATE` transactions on SQLite (waiting on its busy timeout): two
processes moving the same alias at once both record their event, in order, and the later one
wins.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.paths import PathRuleError, normalize
from pipeline.errors import UsageError
from pipeline.runs import schema
from pipeline.runs.modeluri import MAX_VERSION, PACKAGE_HASH, check_version, is_number
from pipeline.runs.runstore import RunStore

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
RESERVED = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)  # MLflow's reserved alias names
TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")  # a file name on remotes (uuid4 hex here)
ACTOR_CHARS = 200  # the column's width: PostgreSQL refuses a longer value
ACTIONS = ("register", "alias", "unalias", "tag", "untag")
READY = "READY"


@dataclass(frozen=True)
class Version:
    """One registered version of a model: a package by content, and where it came from."""

    name: str
    version: int
    hash: str
    path: str | None
    run_id: str | None
    stage: str | None
    created_at: float
    user: str | None
    description: str | None
    status: str = READY
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "hash": self.hash,
            "path": self.path,
            "run_id": self.run_id,
            "stage": self.stage,
            "created_at": self.created_at,
            "user": self.user,
            "description": self.description,
            "status": self.status,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class Event:
    """One change of the registry, as recorded (and as shared with teammates)."""

    id: str
    at: float
    actor: str | None
    name: str
    action: str
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    key: str | None = None
    value: str | None = None
    message: str | None = None
    hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any) -> Event:
        """An event as shared on a remote; a `ValueError` naming the first field that is not
        what this tool writes (anyone who can write to the remote can write events)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        event = cls(**values)
        problem = _problem(event)
        if problem is not None:
            raise ValueError(problem)
        return event


@dataclass(frozen=True)
class ModelSummary:
    """One registered model: how many versions, the latest, its aliases and tags."""

    name: str
    versions: int
    latest: int
    aliases: dict[str, int]
    tags: dict[str, str]
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Registry:
    """The registry of one run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    # --- changes ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        digest: str,
        *,
        path: str | None = None,
        run_id: str | None = None,
        stage: str | None = None,
        message: str | None = None,
    ) -> tuple[Version, bool]:
        """Register the package `digest` as the next version of `name`; (version, new).

        The same package registered again is the existing version (`new` False, no event)."""
        check_name(name)
        with self._writing() as conn:
            found = conn.execute(
                select(schema.model_versions.c.version).where(
                    (schema.model_versions.c.name == name)
                    & (schema.model_versions.c.hash == digest)
                )
            ).scalar()
            if found is None:
                number = _max_version(conn, name) + 1
                origin = {"path": path, "run_id": run_id, "stage": stage}
                self._record(
                    conn,
                    name,
                    "register",
                    to_version=number,
                    hash=digest,
                    value=json.dumps(origin, sort_keys=True),
                    message=message,
                )
        version = self.show(name, found if found is not None else number)
        return version, found is None

    def alias(self, name: str, alias: str, version: int, message: str | None = None) -> Event:
        """Point `alias` at `version` (moving it if it points elsewhere)."""
        check_alias(alias)
        with self._writing() as conn:
            target = self._version_row(conn, name, version)
            current = _alias_of(conn, name, alias)
            return self._record(
                conn,
                name,
                "alias",
                alias=alias,
                from_version=current,
                to_version=version,
                hash=target["hash"],
                message=message,
            )

    def unalias(self, name: str, alias: str, message: str | None = None) -> Event:
        """Remove `alias` from `name`."""
        with self._writing() as conn:
            self._require_name(conn, name)
            current = _alias_of(conn, name, alias)
            if current is None:
                aliases = sorted(_aliases(conn, name))
                raise UsageError(
                    f"model {name!r} has no alias {alias!r}",
                    f"its aliases: {', '.join(aliases)}" if aliases else "it has no aliases",
                )
            digest = self._version_row(conn, name, current)["hash"]
            return self._record(
                conn,
                name,
                "unalias",
                alias=alias,
                from_version=current,
                hash=digest,
                message=message,
            )

    def tag(
        self, name: str, version: int | None, key: str, value: str, message: str | None = None
    ) -> Event:
        """Set tag `key` of a version (None: of the model itself)."""
        check_tag_key(key)
        with self._writing() as conn:
            digest = self._tag_target(conn, name, version)
            return self._record(
                conn,
                name,
                "tag",
                to_version=version,
                key=key,
                value=value,
                hash=digest,
                message=message,
            )

    def untag(self, name: str, version: int | None, key: str, message: str | None = None) -> Event:
        """Remove tag `key` of a version (None: of the model itself)."""
        with self._writing() as conn:
            digest = self._tag_target(conn, name, version)
            tags = _tags(conn, name, version or 0)
            if key not in tags:
                what = f"version {version} of {name!r}" if version else f"model {name!r}"
                raise UsageError(
                    f"{what} has no tag {key!r}",
                    f"its tags: {', '.join(sorted(tags))}" if tags else "it has no tags",
                )
            return self._record(
                conn, name, "untag", from_version=version, key=key, hash=digest, message=message
            )

    def import_events(self, events: Iterable[Event]) -> tuple[int, list[str]]:
        """Add teammates' events this store lacks and rebuild the names they touch.

        Returns (events added, warnings about registrations whose number is taken here)."""
        events = list(events)
        warnings: list[str] = []
        with self._writing() as conn:
            known = {r[0] for r in conn.execute(select(schema.registry_events.c.id))}
            new = [e for e in events if e.id not in known]
            if new:
                conn.execute(insert(schema.registry_events), [e.to_json() for e in new])
            for name in sorted({e.name for e in new}):
                warnings += _rebuild(conn, name)
        return len(new), warnings

    # --- queries ---------------------------------------------------------------------------

    def names(self) -> list[ModelSummary]:
        """Every registered model, by name."""
        with self._reading() as conn:
            names = sorted({r[0] for r in conn.execute(select(schema.model_versions.c.name))})
            return [self._summary(conn, n) for n in names]

    def versions(self, name: str) -> list[Version]:
        """Every version of `name`, newest first."""
        with self._reading() as conn:
            self._require_name(conn, name)
            query = select(schema.model_versions.c.version).where(
                schema.model_versions.c.name == name
            )
            numbers = sorted((r[0] for r in conn.execute(query)), reverse=True)
            return [self._version(conn, name, n) for n in numbers]

    def show(self, name: str, version: int | str | None = None) -> Version:
        """One version: a number, an alias, `latest` (None: the latest)."""
        with self._reading() as conn:
            number = self._resolve(conn, name, "latest" if version is None else version)
            return self._version(conn, name, number)

    def history(self, name: str | None = None) -> list[Event]:
        """The events of `name` (None: of every model), oldest first."""
        table = schema.registry_events
        query = select(table).order_by(table.c.at, table.c.id)
        with self._reading() as conn:
            if name is not None:
                self._require_name(conn, name, events=True)
                query = query.where(table.c.name == name)
            return [_event(r._mapping) for r in conn.execute(query)]

    def hashes(self) -> set[str]:
        """Every registered package (what `gc` keeps)."""
        table = schema.model_versions
        with self._reading() as conn:
            return {str(h) for (h,) in conn.execute(select(table.c.hash).distinct())}

    def by_hash(self, digest: str) -> list[Version]:
        """The versions (of any name) that are this package."""
        table = schema.model_versions
        with self._reading() as conn:
            query = select(table.c.name, table.c.version).where(table.c.hash == digest)
            return [self._version(conn, n, v) for n, v in conn.execute(query)]

    # --- inside ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """One write transaction, taken at once (SQLite: `BEGIN IMMEDIATE`, waiting for its
        busy timeout; PostgreSQL: an advisory lock), so what a change reads is still true
        when it writes."""
        try:
            with self.store.exclusive() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.store.unhealed(exc) from None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        try:
            with self.store.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.store.unhealed(exc) from None

    def _record(self, conn: Any, name: str, action: str, **values: Any) -> Event:
        """Append one event (timed now, inside the transaction) and rebuild `name`."""
        event = Event(uuid.uuid4().hex, time.time(), actor(), name, action, **values)
        conn.execute(insert(schema.registry_events).values(event.to_json()))
        _rebuild(conn, name)
        return event

    def _require_name(self, conn: Any, name: str, *, events: bool = False) -> None:
        table = schema.registry_events if events else schema.model_versions
        if conn.execute(select(table.c.name).where(table.c.name == name).limit(1)).first():
            return
        known = sorted({r[0] for r in conn.execute(select(schema.model_versions.c.name))})
        raise UsageError(
            f"no registered model {name!r}",
            f"registered models: {', '.join(known)}"
            if known
            else "register one with `pipeline registry add NAME MODEL`",
        )

    def _version_row(self, conn: Any, name: str, version: int) -> dict[str, Any]:
        self._require_name(conn, name)
        check_version(version)  # the database cannot even compare a larger one
        table = schema.model_versions
        row = conn.execute(
            select(table).where((table.c.name == name) & (table.c.version == version))
        ).first()
        if row is None:
            numbers = sorted(
                r[0] for r in conn.execute(select(table.c.version).where(table.c.name == name))
            )
            raise UsageError(
                f"model {name!r} has no version {version}",
                f"its versions: {', '.join(map(str, numbers))}",
            )
        return dict(row._mapping)

    def _tag_target(self, conn: Any, name: str, version: int | None) -> str | None:
        if version is None or version == 0:
            self._require_name(conn, name)
            return None
        return str(self._version_row(conn, name, version)["hash"])

    def _resolve(self, conn: Any, name: str, spec: int | str) -> int:
        self._require_name(conn, name)
        if isinstance(spec, int) or is_number(spec):
            return int(check_version(spec))
        if spec.lower() == "latest":
            return _max_version(conn, name)
        found = _alias_of(conn, name, spec)
        if found is None:
            aliases = sorted(_aliases(conn, name))
            raise UsageError(
                f"model {name!r} has no alias {spec!r}",
                f"its aliases: {', '.join(aliases)}"
                if aliases
                else f"it has no aliases yet: `pipeline registry alias {name} ALIAS N` sets one",
            )
        return found

    def _version(self, conn: Any, name: str, number: int) -> Version:
        row = self._version_row(conn, name, number)
        aliases = tuple(sorted(a for a, v in _aliases(conn, name).items() if v == number))
        return Version(**row, aliases=aliases, tags=_tags(conn, name, number))

    def _summary(self, conn: Any, name: str) -> ModelSummary:
        table = schema.model_versions
        rows = conn.execute(
            select(table.c.version, table.c.created_at).where(table.c.name == name)
        ).all()
        events = schema.registry_events
        updated = conn.execute(
            select(events.c.at).where(events.c.name == name).order_by(events.c.at.desc())
        ).scalar()
        return ModelSummary(
            name,
            len(rows),
            max(r[0] for r in rows),
            dict(sorted(_aliases(conn, name).items())),
            _tags(conn, name, 0),
            float(updated or max(r[1] for r in rows)),
        )


# --- validation -------------------------------------------------------------------------------


def check_name(name: str) -> None:
    # Names become git tag names (`export-tags`): `..` and a trailing `.`/`.lock` are not refs.
    if not NAME.fullmatch(name) or ".." in name or name.endswith((".", ".lock")):
        raise UsageError(
            f"{name!r} is not a model name",
            "use letters, digits, `_`, `-` and `.`, starting with a letter or digit",
        )


def check_alias(alias: str) -> None:
    if not ALIAS.fullmatch(alias):
        raise UsageError(f"{alias!r} is not an alias", "use letters, digits, `_` and `-`")
    if alias.isdigit():  # `NAME@3` would be read as version 3, never as the alias
        raise UsageError(
            f"the alias {alias!r} is a number", "an alias needs a letter, `_` or `-` in it"
        )
    if RESERVED.fullmatch(alias):
        raise UsageError(
            f"the alias {alias!r} is reserved",
            "`latest` and `v<N>` already mean the newest version and version N",
        )


def check_tag_key(key: str) -> None:
    if not TAG_KEY.fullmatch(key):
        raise UsageError(
            f"{key!r} is not a tag key", "use letters, digits, spaces, `_`, `-`, `.` and `/`"
        )


def _problem(event: Event) -> str | None:
    """What makes a shared event one this tool would not have written, if anything."""
    texts = ("id", "actor", "name", "action", "alias", "key", "value", "message", "hash")
    for key in texts:
        value = getattr(event, key)
        if value is not None and (not isinstance(value, str) or "\0" in value):
            return f"its {key} is not a text"
    for key in ("from_version", "to_version"):
        number = getattr(event, key)  # 0: a tag of the model itself
        if number is not None and (type(number) is not int or not 0 <= number <= MAX_VERSION):
            return f"its {key} is not a version number"
    checks = {
        "id": EVENT_ID.fullmatch(event.id or "") is not None,
        "at": type(event.at) in (int, float) and math.isfinite(event.at),
        "action": event.action in ACTIONS,
        "name": _passes(check_name, event.name),
        "actor": len(event.actor or "") <= ACTOR_CHARS,
        "alias": event.alias is None or _good_alias(event.alias, event.action),
        "key": event.key is None or TAG_KEY.fullmatch(event.key) is not None,
        "hash": (event.hash is not None or event.action != "register")
        and (event.hash is None or PACKAGE_HASH.fullmatch(event.hash) is not None),
        "value": event.action != "register" or _good_origin(event.value),
    }
    bad = next((key for key, good in checks.items() if not good), None)
    return None if bad is None else f"its {bad} is not valid"


def _passes(check: Any, value: str | None) -> bool:
    try:
        check(value or "")
    except UsageError:
        return False
    return True


def _good_alias(alias: str, action: str) -> bool:
    # An alias being removed may predate today's rules (a number); one being set may not.
    return _passes(check_alias, alias) if action == "alias" else bool(ALIAS.fullmatch(alias))


def _good_origin(value: str | None) -> bool:
    """Whether a register event's origin is this tool's: a JSON object of texts whose path
    (where `serve` looks for a workspace copy first) is inside the project."""
    try:
        origin = json.loads(value or "{}")
    except (ValueError, RecursionError):  # RecursionError: nesting thousands deep
        return False
    if not isinstance(origin, dict):
        return False
    if any(v is not None and not isinstance(v, str) for v in origin.values()):
        return False
    path = origin.get("path")
    try:
        return path is None or bool(normalize(path))
    except PathRuleError:
        return False


def actor() -> str:
    """Who makes a change: the login name ($USER and friends)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name in the environment nor in the password database
        return "unknown"


# --- derived state ----------------------------------------------------------------------------


@dataclass
class _State:
    """A name's versions, aliases and tags, as its events leave them; `pinned`: the numbers
    packages already have here, which a replay keeps."""

    pinned: dict[str, int] = field(default_factory=dict)
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_hash: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[tuple[int, str], str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def replay(name: str, events: Sequence[Event], pinned: dict[str, int] | None = None) -> _State:
    """Apply `events` (oldest first) to an empty registry of `name`, where the packages of
    `pinned` (hash → number) keep their numbers."""
    state = _State(dict(pinned or {}))
    for event in events:
        if event.action == "register":
            _register(state, name, event)
            continue
        number = state.by_hash.get(event.hash) if event.hash else 0
        if number is None:
            continue  # a version this log never registered: nothing to point at
        if event.action == "alias" and event.alias:
            state.aliases[event.alias] = number
        elif event.action == "unalias" and event.alias:
            state.aliases.pop(event.alias, None)
        elif event.action == "tag" and event.key is not None:
            state.tags[(number, event.key)] = event.value or ""
        elif event.action == "untag" and event.key is not None:
            state.tags.pop((number, event.key), None)
    return state


def _register(state: _State, name: str, event: Event) -> None:
    if event.hash is None or event.hash in state.by_hash:
        return  # registered by a teammate too: the first registration's details are kept
    number = state.pinned.get(event.hash) or _number(state, name, event)
    origin = _origin(event.value)
    state.by_hash[event.hash] = number
    state.versions[number] = {
        "name": name,
        "version": number,
        "hash": event.hash,
        "path": origin.get("path"),
        "run_id": origin.get("run_id"),
        "stage": origin.get("stage"),
        "created_at": event.at,
        "user": event.actor,
        "description": event.message,
        "status": READY,
    }


def _number(state: _State, name: str, event: Event) -> int:
    """The number of a package not numbered here yet: the one its event recorded, unless
    another package has it (here, or pinned and not replayed yet): then the next free one."""
    wanted = event.to_version or 0
    taken = set(state.versions) | set(state.pinned.values())
    if wanted >= 1 and wanted not in taken:
        return wanted
    free = max(taken, default=0) + 1
    if wanted >= 1:
        state.warnings.append(
            f"model {name!r}: version {wanted} was registered twice ({event.actor} registered"
            f" {event.hash} as version {wanted}, which is another package here); it is"
            f" version {free} here"
        )
    return free


def _origin(value: str | None) -> dict[str, Any]:
    try:
        found = json.loads(value or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _rebuild(conn: Any, name: str) -> list[str]:
    """Replace `name`'s derived rows by what its events say, keeping the numbers its
    packages have now (see the module docstring); the warnings of the replay."""
    table = schema.registry_events
    rows = conn.execute(
        select(table).where(table.c.name == name).order_by(table.c.at, table.c.id)
    ).all()
    versions = schema.model_versions
    numbered = select(versions.c.hash, versions.c.version).where(versions.c.name == name)
    pinned = {str(h): int(v) for h, v in conn.execute(numbered)}
    state = replay(name, [_event(r._mapping) for r in rows], pinned)
    for derived in (schema.model_versions, schema.model_aliases, schema.model_tags):
        conn.execute(delete(derived).where(derived.c.name == name))
    if state.versions:
        conn.execute(insert(schema.model_versions), list(state.versions.values()))
    aliases = [{"name": name, "alias": a, "version": v} for a, v in state.aliases.items()]
    if aliases:
        conn.execute(insert(schema.model_aliases), aliases)
    tags = [{"name": name, "version": v, "key": k, "value": x} for (v, k), x in state.tags.items()]
    if tags:
        conn.execute(insert(schema.model_tags), tags)
    return state.warnings


def _event(m: Any) -> Event:
    return Event(**{k: m[k] for k in Event.__dataclass_fields__})


def _max_version(conn: Any, name: str) -> int:
    table = schema.model_versions
    rows = conn.execute(select(table.c.version).where(table.c.name == name)).all()
    return max((r[0] for r in rows), default=0)


def _alias_of(conn: Any, name: str, alias: str) -> int | None:
    table = schema.model_aliases
    found = conn.execute(
        select(table.c.version).where((table.c.name == name) & (table.c.alias == alias))
    ).scalar()
    return None if found is None else int(found)


def _aliases(conn: Any, name: str) -> dict[str, int]:
    table = schema.model_aliases
    query = select(table.c.alias, table.c.version).where(table.c.name == name)
    return {a: int(v) for a, v in conn.execute(query)}


def _tags(conn: Any, name: str, version: int) -> dict[str, str]:
    table = schema.model_tags
    query = select(table.c.key, table.c.value).where(
        (table.c.name == name) & (table.c.version == version)
    )
    return dict(sorted((k, v) for k, v in conn.execute(query)))
