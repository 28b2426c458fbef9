"""The documentation stands on its own: no reference to notes outside the repository, every
relative link of the docs and the README reaches an existing file (and heading), and every
``docs/<file>.md#<heading>`` named in code, tests, specs or recipes exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "docs", "models", "recipes", "tests")
TEXT = (".py", ".md", ".yaml", ".yml", ".json", ".txt", ".toml")
# files a user of the repository does not have
PRIVATE = ("NMMO2" + ".md", "ZOO_FIDELITY", "shared" + "/docs", "ARCHITECTURE" + ".md")


def _files():
    yield ROOT / "README.md"
    for d in SCANNED:
        for p in sorted((ROOT / d).rglob("*")):
            if p.is_file() and p.suffix in TEXT and "__pycache__" not in p.parts:
                yield p


def _slug(heading: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    n = seen.get(s, 0)
    seen[s] = n + 1
    return s if n == 0 else f"{s}-{n}"


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    return {_slug(m.group(1), seen)
            for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", _without_code(path.read_text()), re.MULTILINE)}


def test_no_reference_to_notes_outside_the_repository():
    me = Path(__file__).resolve()
    bad = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
           for p in _files() if p.resolve() != me
           for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if any(word in line for word in PRIVATE)]
    assert not bad, "\n".join(bad)


def _links():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)",
                             _without_code(doc.read_text())):
            target = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            yield doc, target


@pytest.mark.parametrize("doc, target", [pytest.param(d, t, id=f"{d.name}->{t}") for d, t in _links()])
def test_relative_links_of_the_docs_reach_a_file_and_heading(doc, target):
    file, _, anchor = target.partition("#")
    dest = (doc.parent / file).resolve() if file else doc
    assert dest.exists(), f"{doc.relative_to(ROOT)}: link to {target!r}: no such file"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), (f"{doc.relative_to(ROOT)}: link to {target!r}: no such "
                                          f"heading; {dest.name} has {sorted(_anchors(dest))}")


def test_docs_sections_named_in_code_exist():
    refs = sorted({(p, m.group(1), m.group(2)) for p in _files()
                   if p.suffix != ".md" or "docs" not in p.parts
                   for m in re.finditer(r"\bdocs/([\w.-]+\.md)(?:#([\w-]+))?",
                                        p.read_text(errors="replace"))}, key=lambda r: (str(r[0]), r[1], r[2] or ""))
    assert refs, "no docs/ references found: the pattern is wrong"
    bad = []
    for p, name, anchor in refs:
        dest = ROOT / "docs" / name
        if not dest.exists():
            bad.append(f"{p.relative_to(ROOT)}: docs/{name} does not exist")
        elif anchor and anchor not in _anchors(dest):
            bad.append(f"{p.relative_to(ROOT)}: docs/{name}#{anchor}: no such heading")
    assert not bad, "\n".join(bad)


def _tables(text: str) -> list[str]:
    """Every Markdown table of ``text``, as its lines joined."""
    out, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append("\n".join(cur))
            cur = []
    return out


def test_the_zoo_tables_are_the_ones_the_index_and_the_reports_give():
    """README.md's and docs/zoo.md's zoo table is `zoo_table` of the shipped index and the PvE
    report it names (docs/results/zoo-pve); docs/zoo.md's PvP table is the PvP report's
    (docs/results/zoo-pvp): a checkpoint shipped or re-scored without the docs regenerated
    fails here."""
    from nmmozoo.ship import zoo_table

    table = zoo_table(ROOT / "docs" / "results" / "zoo-pve")
    assert table in _tables((ROOT / "README.md").read_text())
    zoo = _tables((ROOT / "docs" / "zoo.md").read_text())
    assert table in zoo
    pvp = _tables((ROOT / "docs" / "results" / "zoo-pvp" / "results.md").read_text())
    assert len(pvp) == 1 and pvp[0] in zoo
