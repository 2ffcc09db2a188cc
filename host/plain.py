"""Plain data for people and programs: values made ready for JSON, byte sizes made readable.

The library's documents (measurements files, deploy plans) and the CLI's tables use these alike.
"""

from __future__ import annotations

import os
from typing import Any


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def jsonable(obj: Any) -> Any:
    """Device data with bytes as hex, int map keys and paths as strings, ready for json.dumps."""
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj
