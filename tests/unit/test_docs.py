"""The README and the reference under docs/: every relative link and anchor resolves, and
the README links every page of docs/ (issue 19, item 17), so that a section moved or
renamed cannot leave a link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtools import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def _without_code(text: str) -> str:
    """The text with fenced blocks and code spans blanked (a `# comment` in a block is no
    heading, a `](x)` in code is no link), line numbers kept."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return _CODE_SPAN.sub(lambda m: "code" + "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (code spans, link targets and emphasis
    marks dropped), lower case, punctuation but - and _ removed, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page's headings, the second of a name `name-1` and so on."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6} (.+?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link of a page, outside code."""
    text = _without_code(page.read_text(encoding="utf-8"))
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _LINK.finditer(text)]


def broken_links(page: Path) -> list[str]:
    """What in a page's relative links does not resolve: a file that is not there, or an
    anchor no heading of the target page has."""
    broken = []
    for line, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):
            continue  # https:, mailto: ...: not ours to check
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(REPO_ROOT)}:{line}: ({target})"
        if not resolved.exists():
            broken.append(f"{where}: no file {path}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where}: no heading #{anchor} in {resolved.relative_to(REPO_ROOT)}")
    return broken


def linked_pages(page: Path) -> set[Path]:
    return {
        (page.parent / target.partition("#")[0]).resolve()
        for _, target in links(page)
        if target.partition("#")[0].endswith(".md")
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_the_scan_finds_the_links():
    assert len(links(README)) >= 15
    # A link whose text runs over two lines and holds code.
    assert any(target == "cli.md" for _, target in links(DOCS / "operations.md"))


def test_the_readme_and_the_index_link_every_page_of_the_docs():
    pages = set(DOCS.glob("*.md"))
    assert {"data-model.md", "guarantees.md", "operations.md", "recordings.md"} <= {page.name for page in pages}
    assert sorted(str(p.relative_to(REPO_ROOT)) for p in pages - linked_pages(README)) == []
    index = DOCS / "README.md"
    assert sorted(str(p.relative_to(REPO_ROOT)) for p in pages - {index} - linked_pages(index)) == []


def test_every_page_starts_with_its_title():
    for page in PAGES:
        assert re.match(r"# \S", page.read_text(encoding="utf-8")), page


def test_the_anchors_are_githubs():
    assert slug("The `nxcdr` tool") == "the-nxcdr-tool"
    assert slug("Performance and cost") == "performance-and-cost"
    assert slug("Configure NXCLOUD") == "configure-nxcloud"
    assert slug("Running a function on an event") == "running-a-function-on-an-event"
    assert {"runbook", "storefailuresalarm"} <= anchors(DOCS / "operations.md")


def test_the_docs_named_in_code_and_comments_are_there():
    named = set()
    for folder in ("layers", "functions", "tests", "bench", "devtools", "tools"):
        for source in (REPO_ROOT / folder).rglob("*.py"):
            named.update(re.findall(r"\bdocs/[\w.-]+\.md\b", source.read_text(encoding="utf-8")))
    for template in REPO_ROOT.glob("*.yaml"):
        named.update(re.findall(r"\bdocs/[\w.-]+\.md\b", template.read_text(encoding="utf-8")))
    assert named  # the scan found the references
    assert sorted(name for name in named if not (REPO_ROOT / name).is_file()) == []
