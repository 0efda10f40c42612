"""The repository as git sees it: its root and the files a fresh clone of it would hold."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__all__ = ["ROOT", "tracked_files", "tracked_text"]

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def tracked_files() -> tuple[str, ...]:
    """Paths (relative, POSIX) of the files a commit would hold: tracked or not ignored."""
    result = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    )
    listed = {p for p in result.stdout.decode().split("\0") if p}
    files = tuple(sorted(p for p in listed if (ROOT / p).is_file()))
    assert files, "git ls-files listed nothing: the tests need a git checkout"
    return files


def tracked_text() -> dict[str, str]:
    """Every tracked text file's content by path (binary files, e.g. PNGs, are left out)."""
    texts: dict[str, str] = {}
    for path in tracked_files():
        data = (ROOT / path).read_bytes()
        if b"\0" in data:
            continue
        try:
            texts[path] = data.decode()
        except UnicodeDecodeError:
            continue
    return texts
