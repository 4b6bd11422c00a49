"""`pipeline remote add | list | modify | remove | default`: where a project's data is shared.

Remotes live in `.pipeline/config.yaml` (committed: url and options everyone needs) and
`.pipeline/config.local.yaml` (git-ignored: secrets and this machine's overrides). Secrets are
refused in the committed file. The backend's own credential chain (AWS variables and profiles,
GOOGLE_APPLICATION_CREDENTIALS, ssh-agent…) applies when no secret is configured.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.config import (
    REMOTE_NAME,
    SECRET_KEYS,
    Config,
    read_file,
    write_file,
)
from pipeline.core.suggest import suggest_name
from pipeline.errors import UsageError
from pipeline.store.remote import backend_module, family_of, option_names


@dataclass(frozen=True)
class RemoteSummary:
    """A configured remote as `remote list` shows it (secrets masked)."""

    name: str
    url: str
    default: bool
    options: dict[str, Any]
    backend: str | None  # the module it needs, when that is not installed

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "default": self.default,
            "options": self.options,
            "missing_backend": self.backend,
        }


def listing(config: Config) -> list[RemoteSummary]:
    found = []
    for name, settings in sorted(config.remotes.items()):
        shown = {k: ("***" if k in SECRET_KEYS else v) for k, v in settings.options.items()}
        module = backend_module(settings.url)
        missing = module if module and importlib.util.find_spec(module) is None else None
        found.append(
            RemoteSummary(name, settings.url, name == config.default_remote, shown, missing)
        )
    return found


def add(
    state_dir: Path, name: str, url: str, *, default: bool = False, force: bool = False
) -> None:
    """Add a remote to the committed config (and make it the default)."""
    _check_name(name)
    family_of(url)  # an unsupported url is refused now, not at the first push
    data = read_file(state_dir)
    remotes = data.setdefault("remotes", {})
    if name in remotes and not force:
        raise UsageError(
            f"remote {name!r} exists ({remotes[name].get('url')})",
            f"pipeline remote modify {name} url URL, or add --force",
        )
    remotes[name] = {**(remotes.get(name) or {}), "url": url}
    if default or not data.get("core", {}).get("remote"):
        data.setdefault("core", {})["remote"] = name
    write_file(state_dir, data)


def modify(
    state_dir: Path,
    name: str,
    key: str,
    value: str | None,
    *,
    local: bool = False,
) -> Path:
    """Set (or, with value None, unset) one option of a remote; secrets only with `local`."""
    url = _url_of(state_dir, name)
    if key == "url":  # also how a broken url is repaired: the old one is not looked at
        if value is None:
            raise UsageError("a remote needs a url", f"pipeline remote remove {name}")
        family_of(value)
    else:
        _check_option(name, url, key, value)
    if key in SECRET_KEYS and not local and value is not None:
        raise UsageError(
            f"{key} is a secret and .pipeline/config.yaml is committed to git",
            f"pipeline remote modify --local {name} {key} VALUE",
        )
    data = read_file(state_dir, local=local)
    remote = data.setdefault("remotes", {}).setdefault(name, {})
    if value is None:
        remote.pop(key, None)
    else:
        remote[key] = _typed(value)
    if not remote:
        data["remotes"].pop(name)
    return write_file(state_dir, data, local=local)


_WHOLE_NUMBERS = {"jobs": 1, "port": 1, "recheck": 0}  # option → its least value
_BOOLEANS = ("use_ssl", "ssl_verify", "anon")


def _check_option(name: str, url: str, key: str, value: str | None) -> None:
    """An option the remote's backend knows, with a value of the right kind."""
    allowed = option_names(family_of(url))
    if key not in allowed:
        raise UsageError(
            f"unknown option {key!r} for remote {name!r} ({url})",
            suggest_name(key, allowed, "known: " + ", ".join(allowed)),
        )
    if value is None:
        return
    least = _WHOLE_NUMBERS.get(key)
    if least is not None and not (value.isdigit() and int(value) >= least):
        raise UsageError(f"{key} must be a whole number of at least {least}, not {value!r}")
    if key in _BOOLEANS and value.lower() not in ("true", "false"):
        raise UsageError(f"{key} must be true or false, not {value!r}")


def remove(state_dir: Path, name: str) -> None:
    """Forget a remote in both files (its data on the remote is left alone)."""
    _url_of(state_dir, name)
    for local in (False, True):
        data = read_file(state_dir, local=local)
        if name in data.get("remotes", {}):
            data["remotes"].pop(name)
            if data.get("core", {}).get("remote") == name:
                data["core"].pop("remote")
            write_file(state_dir, data, local=local)


def set_default(state_dir: Path, name: str) -> None:
    _url_of(state_dir, name)
    data = read_file(state_dir)
    data.setdefault("core", {})["remote"] = name
    write_file(state_dir, data)


def _url_of(state_dir: Path, name: str) -> str:
    remotes: dict[str, Any] = {}
    for local in (False, True):
        for key, values in read_file(state_dir, local=local).get("remotes", {}).items():
            remotes[key] = {**remotes.get(key, {}), **(values or {})}
    if name not in remotes or not remotes[name].get("url"):
        raise UsageError(
            f"no remote named {name!r}",
            suggest_name(name, list(remotes), "pipeline remote add NAME URL"),
        )
    return str(remotes[name]["url"])


def _check_name(name: str) -> None:
    if not REMOTE_NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a remote name", "use letters, digits, `-`, `_`, `.`")


def _typed(value: str) -> Any:
    """`true`/`false` and whole numbers as such; anything else stays text."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return int(value) if value.isdigit() else value
