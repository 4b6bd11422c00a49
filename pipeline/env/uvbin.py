"""Finding uv's executable, once per process: for building envs and for finding interpreters.

uv is a dependency (the `uv` package ships its binary); a `uv` on PATH is the fallback, and
None means uv cannot run here, so callers fall back to virtualenv + pip or skip uv's lookups.
"""

from __future__ import annotations

import functools
import subprocess
import threading

_UV_LOCK = threading.Lock()


@functools.cache
def uv_binary() -> str | None:
    """uv's executable (from the `uv` package, else PATH), or None when it cannot run."""
    # find_uv_bin reads sysconfig, whose first use is not thread-safe before Python 3.12.
    with _UV_LOCK:
        try:
            import uv  # noqa: PLC0415 - may be missing or broken: then PATH, or no uv

            candidates = [uv.find_uv_bin()]
        except Exception:  # not installed, or no binary for this platform: uv cannot run
            candidates = []
    for exe in [*candidates, "uv"]:
        try:
            ok = subprocess.run([exe, "--version"], check=False, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok.returncode == 0:
            return exe
    return None
