"""The book's prose: no control characters in markdown cells, captions or .md pages.

A control character in prose is invisible in an editor but breaks the built page: a ``\\t``
that replaced the ``\\t`` of ``\\top`` (a Python string that was not raw) turned an equation of
form 2 into broken math. Every C0 control (U+0000-U+001F), DEL (U+007F) and C1 control
(U+0080-U+009F) is refused, except the line feed.
"""

import re
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def control_characters(text: str) -> list[str]:
    """Each control character of ``text`` as 'line L, column C: U+XXXX'."""
    found = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        for match in CONTROL.finditer(line):
            found.append(f"line {lineno}, column {match.start() + 1}: "
                         f"U+{ord(match.group()):04X}")
    return found


def _captions(metadata) -> list[str]:
    """Figure captions and image alt texts that myst-nb renders from a cell's metadata."""
    mystnb = metadata.get("mystnb", {})
    texts = [mystnb.get("figure", {}).get("caption"), mystnb.get("image", {}).get("alt")]
    return [t for t in texts if isinstance(t, str)]


def _prose(path: Path) -> list[tuple[str, str]]:
    """(where, text) for every piece of prose in a page of the book."""
    if path.suffix == ".md":
        return [(path.name, path.read_text(encoding="utf-8"))]
    nb = nbformat.read(path, as_version=4)
    out = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            out.append((f"{path.name}, cell {k}", cell.source))
        out += [(f"{path.name}, cell {k} caption", t) for t in _captions(cell.metadata)]
    return out


PAGES = sorted(BOOK.glob("*.md")) + sorted(BOOK.glob("*.ipynb"))


def test_the_book_has_pages():
    assert any(p.suffix == ".ipynb" for p in PAGES) and any(p.suffix == ".md" for p in PAGES)


@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_no_control_characters_in_prose(path):
    problems = [f"{where}, {c}" for where, text in _prose(path)
                for c in control_characters(text)]
    assert not problems, "control characters in the book's prose:\n" + "\n".join(problems)


@pytest.mark.parametrize("text, expected", [
    ("$(X_c^\top X_c)$", ["line 1, column 7: U+0009"]),     # a tab where \top was meant
    ("first line\nsecond\r line", ["line 2, column 7: U+000D"]),
    ("nothing wrong here,\nnor here: \\top", []),
    ("a bell \x07 and a C1 control \x85", ["line 1, column 8: U+0007",
                                           "line 1, column 27: U+0085"]),
])
def test_control_characters_are_found(text, expected):
    assert control_characters(text) == expected
