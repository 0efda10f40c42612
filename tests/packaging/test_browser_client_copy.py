"""The dev console's copy of the browser client is built from clients/js/src, never committed."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import httpx

from gamesync_testing import GatewayFactory

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "clients" / "js" / "src" / "index.js"
COPY = "gamesync/static/gamesync-client.js"
# What a build needs from a clone (the Dockerfile's builder copies the same).
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "constraints.txt")
BUILD_TREES = ("gateway/gamesync", "operator/gamesync_operator")


async def test_the_dev_console_serves_the_client_source_byte_for_byte(
    gateway_factory: GatewayFactory,
) -> None:
    server = await gateway_factory(keys=None, demo=True)
    async with httpx.AsyncClient(base_url=server.public_url) as http:
        console = await http.get("/static/console.js")
        served = await http.get("/static/gamesync-client.js")
    assert 'from "./gamesync-client.js"' in console.text
    assert served.status_code == 200
    assert served.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert served.content == SOURCE.read_bytes()


def _fresh_clone(into: Path) -> Path:
    """The build's inputs as a clone has them: no generated copy, no build leftovers."""
    into.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy2(ROOT / name, into / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "gamesync-client.js")
    for tree in BUILD_TREES:
        shutil.copytree(ROOT / tree, into / tree, ignore=skip)
    (into / "clients" / "js" / "src").mkdir(parents=True)
    shutil.copy2(SOURCE, into / "clients" / "js" / "src" / "index.js")
    return into


def _build(project: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`uv build` (isolated, with the build backend pinned in pyproject.toml)."""
    uv = shutil.which("uv")
    assert uv is not None, "scripts/bootstrap installs uv"
    return subprocess.run(
        [uv, "build", "--out-dir", str(out), *args, str(project)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_wheel_built_from_a_clone_through_its_sdist_carries_the_client(tmp_path: Path) -> None:
    """`uv build` makes the sdist, then the wheel from the unpacked sdist (no clients/ there)."""
    project = _fresh_clone(tmp_path / "clone")
    assert not (project / "gateway" / COPY).exists()
    result = _build(project, tmp_path / "dist")
    assert result.returncode == 0, result.stderr

    (sdist,) = (tmp_path / "dist").glob("gamesync-*.tar.gz")
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/gateway/{COPY}")
        assert member is not None
        assert member.read() == SOURCE.read_bytes()
    (wheel,) = (tmp_path / "dist").glob("gamesync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(COPY) == SOURCE.read_bytes()


def test_a_wheel_built_straight_from_a_clone_carries_the_client(tmp_path: Path) -> None:
    """The Dockerfile's path: `pip wheel .` in a context holding clients/js/src/index.js."""
    project = _fresh_clone(tmp_path / "clone")
    result = _build(project, tmp_path / "dist", "--wheel")
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("gamesync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(COPY) == SOURCE.read_bytes()


def test_a_build_without_the_client_source_or_copy_fails_saying_so(tmp_path: Path) -> None:
    project = _fresh_clone(tmp_path / "clone")
    shutil.rmtree(project / "clients")
    result = _build(project, tmp_path / "dist", "--wheel")
    assert result.returncode != 0
    assert "clients/js/src/index.js" in result.stderr
