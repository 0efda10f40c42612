"""Every relative link in every Markdown file resolves to a file or folder of the repository.

Checked: inline links and images (`[t](path)`, `![a](path)`), reference definitions
(`[label]: path`), HTML `href`/`src`, and code spans that name a repository path (`` `docs/x.md` ``,
`` `../y` ``: a first component that is a top-level entry of the repository, or `./`/`../`).
Not checked: URLs with a scheme, in-page anchors, and code blocks (commands and examples).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import unquote

import pytest
from repo_tree import tracked_files, tracked_text

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_INLINE = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^[ ]{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_PATH_SPAN = re.compile(r"(?:\.\.?/)*[\w.-]+(?:/[\w.*-]*)+")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _blank(match: re.Match[str]) -> str:
    """Blank out a match but keep its newlines, so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group())


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every link, image, reference definition and HTML href/src."""
    prose = _SPAN.sub(_blank, _FENCE.sub(_blank, text))
    found = [m for pattern in (_INLINE, _REFERENCE, _HTML) for m in pattern.finditer(prose)]
    for match in sorted(found, key=lambda m: m.start()):
        yield _line(prose, match.start()), match.group(1).strip("<>")


def path_spans(text: str, top_level: set[str]) -> Iterator[tuple[int, str]]:
    """(line, path) of code spans that name a repository path."""
    prose = _FENCE.sub(_blank, text)
    for match in _SPAN.finditer(prose):
        content = match.group(2).strip()
        if not _PATH_SPAN.fullmatch(content):
            continue
        first = content.split("/", 1)[0]
        if first in (".", "..") or first in top_level:
            yield _line(prose, match.start()), content


class Repository:
    """What a link may point at: tracked files and the folders that hold them."""

    def __init__(self, files: tuple[str, ...]) -> None:
        self.files = set(files)
        self.folders = {str(parent) for f in files for parent in PurePosixPath(f).parents}
        self.top_level = {PurePosixPath(f).parts[0] for f in files}

    def problem(self, source: str, target: str, *, root_relative: bool = False) -> str | None:
        """Why `target`, written in `source`, does not resolve inside the repository (or None)."""
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not path:
            return None  # an in-page anchor
        from_root = root_relative or path.startswith("/")
        base = [] if from_root else list(PurePosixPath(source).parent.parts)
        parts: list[str] = []
        for part in [*base, *path.strip("/").split("/")]:
            if part == "..":
                if not parts:
                    return "climbs out of the repository"
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        resolved = "/".join(parts) or "."
        if "*" in resolved:
            if any(fnmatch.fnmatchcase(f, resolved) for f in self.files):
                return None
            return f"matches no file ({resolved})"
        if resolved in self.files or resolved in self.folders:
            return None
        return f"no such file or folder in the repository ({resolved})"


def _markdown() -> dict[str, str]:
    return {path: text for path, text in tracked_text().items() if path.endswith(".md")}


def test_every_relative_link_resolves_inside_the_repository() -> None:
    repo = Repository(tracked_files())
    broken = [
        f"{path}:{line}: {target}: {problem}"
        for path, text in _markdown().items()
        for line, target in links(text)
        if not _SCHEME.match(target) and not target.startswith("#")
        if (problem := repo.problem(path, target)) is not None
    ]
    assert not broken, "\n".join(broken)


def test_every_path_named_in_a_code_span_exists() -> None:
    repo = Repository(tracked_files())
    broken = []
    for path, text in _markdown().items():
        for line, span in path_spans(text, repo.top_level):
            relative_to_file = span.startswith(("./", "../"))
            problem = repo.problem(path, span, root_relative=not relative_to_file)
            if problem is not None:
                broken.append(f"{path}:{line}: `{span}`: {problem}")
    assert not broken, "\n".join(broken)


def test_the_markdown_files_are_all_seen() -> None:
    texts = _markdown()
    assert {"README.md", "docs/DESIGN.md", "docs/publishing.md"} <= set(texts)
    assert sum(1 for text in texts.values() for _ in links(text)) >= 10


# The parser and resolver themselves.

_DOC = """\
See [the design](DESIGN.md) and ![chart](bench/x.png "title").
[ref]: ../README.md
<a href="operator.md#scaling">x</a> and [web](https://example.com) and [top](#top).
`not [a link](nowhere.md)` and
```bash
cat [inside](a/code/block.md)
```
Named: `docs/DESIGN.md`, `../elsewhere/DESIGN.md`, `gamesync.nommie.dev/v1alpha1`, `keys/`.
"""


def test_links_are_read_from_prose_only() -> None:
    assert [target for _, target in links(_DOC)] == [
        "DESIGN.md",
        "bench/x.png",
        "../README.md",
        "operator.md#scaling",
        "https://example.com",
        "#top",
    ]


def test_path_spans_are_those_starting_at_a_top_level_entry_or_dot() -> None:
    spans = [span for _, span in path_spans(_DOC, {"docs", "gateway"})]
    assert spans == ["docs/DESIGN.md", "../elsewhere/DESIGN.md"]


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("docs/operator.md", "DESIGN.md", True),
        ("docs/operator.md", "DESIGN.md#4-keys-and-tokens", True),
        ("docs/operator.md", "../README.md", True),
        ("docs/operator.md", "../elsewhere/DESIGN.md", False),
        ("docs/operator.md", "../../elsewhere/DESIGN.md", False),
        ("README.md", "docs/bench/", True),
        ("README.md", "bench/", False),
        ("README.md", "docs/", True),
        ("README.md", "docs/bench/*.json", True),
        ("README.md", "docs/bench/*.yaml", False),
    ],
)
def test_targets_resolve_against_the_tracked_tree(source: str, target: str, ok: bool) -> None:
    repo = Repository(("README.md", "docs/DESIGN.md", "docs/operator.md", "docs/bench/fanout.json"))
    assert (repo.problem(source, target) is None) is ok
