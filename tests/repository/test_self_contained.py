"""No file of the project reads, imports or links anything outside the repository.

A fresh clone has nothing beside it, so a reference that leaves the repository works only on
the machine it was written on. Three checks, each over every file a commit would hold:
- literal names of places outside the repo (the workstation's folder, the folder of reference
  notes beside a checkout, and the two folders of notes that lived in it);
- relative paths whose `..` climb above the repository root from the file that holds them
  (Markdown links, JS `new URL("../..", import.meta.url)`, shell `$(dirname "$0")/..`);
- Python path arithmetic (`Path(__file__).parents[N]`, `.parent`, `/ ".."`, through names such
  as `ROOT`) that ends above the repository root.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest
from repo_tree import ROOT, tracked_files, tracked_text

#: This file shows its detectors climbing paths, so it is the one file not scanned.
SELF = PurePosixPath(__file__).relative_to(ROOT.as_posix()).as_posix()

# The outside places, each spelled from two halves: this file shows them to its detectors
# without citing them itself (a reader, or a tool, looking for such citations finds none here).
WORKSTATION = "/wo" + "rk/"
NOTES_DIR = "sha" + "red"
NOTES = ("resea" + "rch", "se" + "eds")

OUTSIDE_NAMES = {
    "the workstation's folder": re.compile(r"(?<![\w.-])" + WORKSTATION),
    "the notes folder beside a checkout": re.compile(r"(?<![\w-])(?:\.\./)*" + NOTES_DIR + "/"),
    "notes outside the repo": re.compile(r"(?<![\w/.-])(?:" + "|".join(NOTES) + ")/"),
}

#: A path token: components of word characters and dots split by `/`, holding a `..` component.
_PATH_TOKEN = re.compile(r"(?<![\w.@~$/-])[\w.@~$-]*(?:/[\w.@~$-]*)*")


def _dir_depth(path: str) -> int:
    return len(PurePosixPath(path).parts) - 1


def lowest_depth(start: int, relative: str) -> int:
    """How high `relative` climbs from a folder `start` levels below the root (negative: above)."""
    depth = lowest = start
    for part in relative.split("/"):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        lowest = min(lowest, depth)
    return lowest


def climbing_paths(path: str, text: str) -> Iterator[tuple[int, str]]:
    """(line, token) for each relative path in `text` that climbs above the root from `path`."""
    start = _dir_depth(path)
    for number, line in enumerate(text.splitlines(), 1):
        for match in _PATH_TOKEN.finditer(line):
            token = match.group()
            if ".." not in token.split("/"):
                continue
            before = line[: match.start()]
            # "/.." after a shell expansion ($(dirname "$0")/..) is relative to the file;
            # any other leading "/" is an absolute path, which the literal names cover.
            if token.startswith("/") and not before.endswith((")", "}")):
                continue
            if lowest_depth(start, token) < 0:
                yield number, token


class _PathDepth:
    """Evaluates Python path expressions to their depth below the root, where it can tell."""

    def __init__(self, path: str) -> None:
        self.file_depth = len(PurePosixPath(path).parts)
        self.names: dict[str, int] = {}

    def of(self, node: ast.expr) -> int | None:
        """Depth of the path `node` evaluates to (0 is the root), None when not a known path."""
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return self.file_depth
            return self.names.get(node.id)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = self.of(node.value)
            return None if inner is None else inner - 1
        if isinstance(node, ast.Subscript):
            parents = node.value
            index = node.slice
            if (
                isinstance(parents, ast.Attribute)
                and parents.attr == "parents"
                and isinstance(index, ast.Constant)
                and isinstance(index.value, int)
            ):
                inner = self.of(parents.value)
                return None if inner is None else inner - 1 - index.value
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            inner = self.of(node.left)
            right = node.right
            if inner is None or not isinstance(right, ast.Constant):
                return None
            if not isinstance(right.value, str):
                return None
            return lowest_depth(inner, right.value)
        return None

    def _call(self, node: ast.Call) -> int | None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("Path", "PurePath", "PurePosixPath", "abspath", "realpath") and node.args:
            return self.of(node.args[0])
        if name in ("resolve", "absolute") and isinstance(func, ast.Attribute):
            return self.of(func.value)
        if name == "dirname" and node.args:
            inner = self.of(node.args[0])
            return None if inner is None else inner - 1
        return None


def python_escapes(path: str, source: str) -> Iterator[tuple[int, str]]:
    """(line, expression) for each path expression in `source` that ends above the root."""
    tree = ast.parse(source, filename=path)
    depth = _PathDepth(path)
    assignments = [n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)]
    for _ in range(3):  # names built from names (ROOT, then CHART = ROOT / ...)
        for assign in assignments:
            targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
            value = depth.of(assign.value) if assign.value is not None else None
            for target in targets:
                if isinstance(target, ast.Name) and value is not None:
                    depth.names[target.id] = value
    # Report where the arithmetic climbs out (the shortest such expression of a line), not
    # every larger expression or later use of a name built on it.
    first: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and not isinstance(node, ast.Name):
            found = depth.of(node)
            if found is not None and found < 0:
                text = ast.unparse(node)
                if node.lineno not in first or len(text) < len(first[node.lineno]):
                    first[node.lineno] = text
    yield from sorted(first.items())


def _scanned() -> dict[str, str]:
    return {p: t for p, t in tracked_text().items() if p != SELF}


def test_no_file_names_a_place_outside_the_repository() -> None:
    found = [
        f"{path}:{number}: {what}: {line.strip()}"
        for path, text in _scanned().items()
        for number, line in enumerate(text.splitlines(), 1)
        for what, pattern in OUTSIDE_NAMES.items()
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


def test_no_relative_path_climbs_above_the_repository_root() -> None:
    found = [
        f"{path}:{number}: {token}"
        for path, text in _scanned().items()
        for number, token in climbing_paths(path, text)
    ]
    assert not found, "\n".join(found)


def test_no_python_path_arithmetic_leaves_the_repository() -> None:
    found = [
        f"{path}:{number}: {expression}"
        for path, text in _scanned().items()
        if path.endswith(".py")
        for number, expression in python_escapes(path, text)
    ]
    assert not found, "\n".join(found)


def test_the_scan_sees_the_whole_repository() -> None:
    """The checks above have something to look at: every top-level part, Python and not."""
    files = tracked_files()
    for part in ("README.md", "gateway/gamesync/cli.py", "scripts/test", "docs/DESIGN.md"):
        assert part in files
    assert SELF in files


# The detectors themselves, on the references this repository once had.


@pytest.mark.parametrize(
    "line",
    [
        f"#: CI runs in a fresh clone with {NOTES_DIR}/ beside it.",
        f"These complement `../{NOTES_DIR}/DESIGN.md` (the external contracts).",
        f"design note, `{NOTES[1]}/000_73bfbe241f953c59.txt`) with server push",
        f"# 4.5x the CPU and 2x the memory ({NOTES[0]}/perf_probe.md)",
        f"see {WORKSTATION}wt/x/README.md",
    ],
)
def test_literal_names_catch_what_was_here(line: str) -> None:
    assert any(pattern.search(line) for pattern in OUTSIDE_NAMES.values())


@pytest.mark.parametrize(
    "line",
    [
        "the `shared` state of a topic, a shared-nothing design",
        f"`docs/{NOTES[0]}.md`, `tests/{NOTES[1]}.py` and js/test/fixtures/{NOTES[1]}/one.json",
        f"WORKDIR /app and /var{WORKSTATION}x",
    ],
)
def test_literal_names_leave_ordinary_words_alone(line: str) -> None:
    assert not any(pattern.search(line) for pattern in OUTSIDE_NAMES.values())


@pytest.mark.parametrize(
    ("path", "line", "climbs"),
    [
        ("docs/operator.md", f"contract: [DESIGN](../../{NOTES_DIR}/DESIGN.md)", True),
        ("docs/operator.md", "contract: [DESIGN](DESIGN.md), [README](../README.md)", False),
        ("scripts/test", 'cd "$(dirname "$0")/.."', False),
        ("scripts/test", 'cd "$(dirname "$0")/../.."', True),
        ("clients/js/test/a.test.js", 'new URL("../../../gateway/x.js", import.meta.url)', False),
        ("clients/js/test/a.test.js", 'new URL("../../../../x.js", import.meta.url)', True),
        ("README.md", "see [x](docs/../../elsewhere.md)", True),
        ("gateway/gamesync/bench/results.py", "np.logspace(0, -4, n)  # 0 .. 0.9999", False),
    ],
)
def test_climbing_paths_are_found_from_the_file_that_holds_them(
    path: str, line: str, climbs: bool
) -> None:
    assert bool(list(climbing_paths(path, line))) is climbs


@pytest.mark.parametrize(
    ("source", "escapes"),
    [
        (
            f'ROOT = Path(__file__).resolve().parents[2]\nS = ROOT.parent / "{NOTES_DIR}" / "x"\n',
            True,
        ),
        ('ROOT = Path(__file__).resolve().parents[2]\nS = ROOT / "skaffold.yaml"\n', False),
        ("HERE = Path(__file__).parent\nUP = HERE.parent.parent.parent\n", True),
        (f'X = Path(__file__).resolve().parents[3] / "{NOTES_DIR}"\n', True),
        (f'X = Path(__file__).parent / "../../.." / "{NOTES_DIR}"\n', True),
        ('X = Path(__file__).parent / "schemas" / "a.json"\n', False),
        ("X = dirname(dirname(dirname(__file__)))\n", False),
        ("X = dirname(dirname(dirname(dirname(__file__))))\n", True),
    ],
)
def test_python_path_arithmetic_is_followed_through_names(source: str, escapes: bool) -> None:
    # As if the source were tests/packaging/test_x.py: three levels below the root.
    assert bool(list(python_escapes("tests/packaging/test_x.py", source))) is escapes
