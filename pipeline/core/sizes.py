"""How byte counts are shown to people, in messages and reports alike."""

from __future__ import annotations


def human_size(count: int) -> str:
    """Bytes for people: 512 B, 3.1 MB, 1.0 GB (decimal units, as disks are sold)."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
