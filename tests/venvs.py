"""A new venv that borrows this test env's installed libraries (no download, no install)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def borrowing_venv(venv: Path) -> Path:
    """A new venv (`--without-pip`) whose path ends with this env's site-packages, listed in a
    .pth file after its own; its python.

    This env's editable install of `pipeline` is a finder a listed path does not run, so the
    new venv cannot import the tool until something installs it there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(site) / "zz_borrowed_libraries.pth").write_text("\n".join(ours) + "\n")
    return python
