"""Build step: copy the browser client into the package for the gateway's dev console.

Everything else about the package is declared in pyproject.toml. The console serves
`gamesync/static/gamesync-client.js`, which is generated from `clients/js/src/index.js` (the
one source) by every build that setuptools runs: wheel, sdist and editable installs. The copy
is gitignored; an sdist carries it, so a wheel built from an sdist has it too.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "clients" / "js" / "src" / "index.js"
TARGET = ROOT / "gateway" / "gamesync" / "static" / "gamesync-client.js"


def copy_browser_client() -> None:
    """Write TARGET from SOURCE when they differ; in an sdist (no SOURCE) keep its TARGET."""
    if not SOURCE.is_file():
        if TARGET.is_file():
            return
        raise SystemExit(f"cannot build gamesync: neither {SOURCE} nor {TARGET} exists")
    content = SOURCE.read_bytes()
    if not TARGET.is_file() or TARGET.read_bytes() != content:
        TARGET.write_bytes(content)


class BuildPy(build_py):
    """build_py that generates the client first (editable installs run it too)."""

    def run(self) -> None:
        copy_browser_client()
        super().run()


class Sdist(sdist):
    """sdist that generates the client first, so the archive lists it as package data."""

    def run(self) -> None:
        copy_browser_client()
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
