"""The README and docs/: short enough to read, links that lead somewhere, no wording about our own machines."""

import re
from pathlib import Path

import pytest

from helpers.report import summary

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
GENERATED = {REPO / "REPORT.md"}
"""Written by the main job (python -m helpers.report): a link to it may come before the file does."""
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def links(page):
    """The relative link targets of a Markdown page, outside code blocks, as (path, anchor or None)."""
    text = FENCE.sub("", page.read_text())
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, or an anchor in the same page
        path, _, anchor = target.partition("#")
        yield (page.parent / path).resolve(), anchor or None


def anchors(page):
    """The anchors of a Markdown page's headings, as GitHub makes them."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_at_a_file_that_exists(page):
    for path, anchor in links(page):
        assert path.exists() or path in GENERATED, f"{page.name} links to {path}, which does not exist"
        if anchor and path.suffix == ".md" and path.exists():
            assert anchor in anchors(path), f"{page.name} links to #{anchor}, which {path.name} has no heading for"


def test_the_readme_is_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_the_readme_links_every_page_of_docs():
    linked = {path for path, _ in links(README)}
    assert DOCS and not [page.name for page in DOCS if page not in linked]


def test_the_readme_holds_the_results_block_once():
    readme = README.read_text()
    assert summary.replace_readme_block(readme, readme.split(summary.README_BEGIN + "\n")[1]
                                        .split(summary.README_END)[0]) == readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_page_speaks_of_our_own_machines(page):
    text = page.read_text().lower()
    assert not [w for w in ("this machine", "the team", "team's", "our machines") if w in text]
