"""`.dvc/config`'s `[parsing]` section: how a dvc.yaml command unpacks a `${mapping}`.

DVC reads `bool` (`store_true` or `boolean_optional`) and `list` (`nargs` or `append`) from
its config; `config.local` overrides `config`, as in DVC. A repository without `.dvc/` gets
DVC's defaults.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from pipeline.core.paths import display_path
from pipeline.errors import ManifestError
from pipeline.load.template import Parsing

CONFIG_FILES = (".dvc/config", ".dvc/config.local")
_CHOICES = {"bool": ("store_true", "boolean_optional"), "list": ("nargs", "append")}


def read_parsing(root: Path) -> Parsing:
    """The `[parsing]` settings of the DVC repository at `root` (defaults when absent)."""
    settings = {"bool": "store_true", "list": "nargs"}
    for relpath in CONFIG_FILES:
        settings.update(_section(root / relpath))
    return Parsing(settings["bool"], settings["list"])


def _section(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), str(path))
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        first = str(exc).splitlines()[0]
        raise ManifestError(
            f"{display_path(path)}: cannot read DVC config: {first}", "fix its syntax"
        ) from None
    if not parser.has_section("parsing"):
        return {}
    found = dict(parser["parsing"])
    for key, value in found.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ManifestError(
                f"{display_path(path)}: [parsing] {key} = {value}: unknown value",
                f"use one of: {', '.join(_CHOICES[key])}",
            )
    return {k: v for k, v in found.items() if k in _CHOICES}
