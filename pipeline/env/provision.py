"""Execute side: make sure a stage's env exists (building it at most once) and activate it.

`Provisioner.ensure` is what the executor calls before running a stage command. An env that is
already in the shared cache costs a metadata read; a missing one is built through the store's
one-build-per-digest protocol (`store.py`), with uv (venvs) or py-rattler (conda envs).
"""

from __future__ import annotations

import contextlib
import os
import sysconfig
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.core.config import EnvSettings
from pipeline.env import conda, venv
from pipeline.env.envstore import BuiltEnv, EnvStore
from pipeline.env.resolve import ResolvedEnv
from pipeline.errors import EnvironmentSetupError
from pipeline.load.envkind import EnvKind

Log = Callable[[str], None]


class Provisioner:
    """Builds and activates envs for one command; safe to call from many worker threads."""

    def __init__(self, settings: EnvSettings | None = None) -> None:
        sysconfig.get_config_vars()  # its first use is not thread-safe before Python 3.12
        self.settings = settings or EnvSettings()
        self.store = EnvStore()
        self.built: list[str] = []  # digests this command built (tests and reports read it)

    def ensure(self, env: ResolvedEnv, log: Log | None = None) -> BuiltEnv:
        """The built env for `env`; builds it if no process has yet."""
        say = log or (lambda _: None)
        started = time.monotonic()

        def build(prefix: Path) -> dict[str, Any]:
            say(f"building env {env.name!r} ({_describe(env)})\n")
            return self._build(env, prefix)

        def waiting() -> None:
            say(f"waiting for another process to finish building env {env.name!r}\n")

        built, fresh = self.store.ensure(env.digest, build, waiting)
        if fresh:
            self.built.append(env.digest)
            seconds = time.monotonic() - started
            say(f"built env {env.name!r} in {seconds:.1f}s: {len(built.packages)} packages\n")
        else:
            self.store.touch(env.digest)
        return built

    @contextlib.contextmanager
    def activated(self, env: ResolvedEnv, log: Log | None = None) -> Iterator[BuiltEnv]:
        """The built env, kept from `env prune` (and `build --force`) while the block runs."""
        for _ in range(3):
            built = self.ensure(env, log)
            with self.store.using(env.digest):
                if self.store.lookup(env.digest) is not None:
                    yield built
                    return
        raise EnvironmentSetupError(
            f"env {env.name!r} was removed each time it was built",
            "is another process running `pipeline env prune` in a loop?",
        )

    def _build(self, env: ResolvedEnv, prefix: Path) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": env.name,
            "kind": env.kind,
            "spec": str(env.spec),
            "lock": str(env.lock) if env.lock else None,
            "platform": sysconfig.get_platform(),
            "variables": env.request.variables,
        }
        if env.is_conda:
            meta["builder"] = self._build_conda(env, prefix)
            meta["packages"] = conda.installed_packages(prefix)
            meta["pip_packages"] = venv.installed_packages(prefix)
            script = conda.activation_script(prefix)
            meta["activate_script"] = str(script) if script else None
        else:
            meta["builder"] = self._build_venv(env, prefix)
            meta["packages"] = venv.installed_packages(prefix)
        if env.interpreter is not None:
            meta["python"] = {"version": env.interpreter.version, "path": env.interpreter.path}
        return meta

    def _build_venv(self, env: ResolvedEnv, prefix: Path) -> str:
        assert env.interpreter is not None
        installer = self.settings.installer
        tool = venv.create_venv(prefix, env.interpreter, _quiet, installer=installer)
        python = prefix / "bin" / "python"
        if env.lock is not None:
            venv.install_lock(python, env.lock, _quiet, installer=installer)
        elif env.request.requirements:
            wanted = prefix / "pipeline-requirements.txt"
            wanted.write_text("\n".join(env.request.requirements) + "\n", encoding="utf-8")
            venv.pip_install(
                python,
                ["-r", str(wanted)],
                _quiet,
                installer=installer,
                what=_what(env),
                cwd=env.spec.parent,
            )
        return tool

    def _build_conda(self, env: ResolvedEnv, prefix: Path) -> str:
        cache = self.store.conda_cache
        lock = env.spec if env.kind is EnvKind.CONDA_LOCK else env.lock
        tool = self.settings.conda
        if tool != "rattler":
            self._conda_tool(tool, env, lock, prefix, cache)
        else:
            records = conda.locked_records(lock) if lock else conda.solve(env, cache)
            conda.install(records, prefix, cache)
        self._conda_pip(env, lock, prefix)
        return tool

    def _conda_tool(
        self, tool: str, env: ResolvedEnv, lock: Path | None, prefix: Path, cache: Path
    ) -> None:
        prefix.rmdir()  # conda wants to create the prefix itself
        if lock is None:
            conda.create_with_tool(tool, env.spec, prefix, _quiet)
            return
        explicit = prefix.with_name(prefix.name + ".explicit.txt")
        try:
            explicit.write_text(conda.explicit_list(conda.locked_records(lock)), encoding="utf-8")
            conda.create_with_tool(tool, explicit, prefix, _quiet)
        finally:
            explicit.unlink(missing_ok=True)

    def _conda_pip(self, env: ResolvedEnv, lock: Path | None, prefix: Path) -> None:
        if lock is not None:
            lines = conda.locked_pip_requirements(lock)
            args = ["--no-deps", "--require-hashes"]
        else:
            lines = [] if self.settings.conda != "rattler" else list(env.request.pip)
            args = []
        if not lines:
            return
        wanted = prefix / "pipeline-requirements.txt"
        wanted.write_text("\n".join(lines) + "\n", encoding="utf-8")
        python = venv.python_of(prefix)
        venv.pip_install(
            python,
            [*args, "-r", str(wanted)],
            _quiet,
            installer="uv",
            what=_what(env, "pip:"),
            cwd=env.spec.parent,
        )


def _quiet(_: str) -> None:
    pass


def _what(env: ResolvedEnv, section: str = "") -> str:
    part = f" {section} section" if section else ""
    return f"installing the{part} packages of env {env.name!r} ({env.spec.name})"


def _describe(env: ResolvedEnv) -> str:
    source = env.lock.name if env.lock else env.spec.name
    python = f", Python {env.interpreter.version}" if env.interpreter else ""
    return f"{env.kind} from {source}{python}"


_LEAKY = ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV")


def activate(base: Mapping[str, str], built: BuiltEnv) -> dict[str, str]:
    """The environment variables a stage runs with inside `built`.

    The env's `bin` goes first on PATH, VIRTUAL_ENV or CONDA_PREFIX points at it, and the
    parent's PYTHONHOME, PYTHONPATH and any outer venv or conda env are dropped.
    """
    env = {k: v for k, v in base.items() if k not in _LEAKY and k != "__PYVENV_LAUNCHER__"}
    prefix = str(built.prefix)
    outer = {os.path.join(base[k], "bin") for k in ("VIRTUAL_ENV", "CONDA_PREFIX") if base.get(k)}
    path = [p for p in base.get("PATH", os.defpath).split(os.pathsep) if p not in outer]
    env["PATH"] = os.pathsep.join([str(built.prefix / "bin"), *path])
    if built.is_conda:
        env["CONDA_PREFIX"] = prefix
        env["CONDA_DEFAULT_ENV"] = prefix
        script = built.meta.get("activate_script")
        if script:
            if base.get("BASH_ENV"):  # the user's own startup file still runs, first
                env["PIPELINE_OUTER_BASH_ENV"] = base["BASH_ENV"]
            env["BASH_ENV"] = str(script)
    else:
        env["VIRTUAL_ENV"] = prefix
    env.update(built.variables)
    return env
