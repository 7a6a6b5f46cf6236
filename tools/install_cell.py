"""The first cell of every chapter: install mmbook when it is missing, so a chapter runs anywhere.

Usage
-----
``python tools/install_cell.py book/*.ipynb``
    Put the cell first in each notebook (or refresh it). It is tagged
    ``remove-cell``: the HTML book does not show it; the downloaded notebook
    and Colab do. With mmbook installed (a checkout, nbval, the build) it
    does nothing and prints nothing.
``python tools/install_cell.py --source "mmbook[book] @ git+https://..." FILES``
    Write the pip requirement the cell installs from (the published book's
    build does this on its copies of the notebooks, since the repository's
    address is only known to the hosting platform).

In a session without mmbook, the cell installs ``$MMBOOK_PIP`` if that is
set (e.g. a local checkout: ``MMBOOK_PIP="mmbook[book] @ file:///path"``),
else the requirement written by the build, else it stops with a message
that says how to install mmbook.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

TAG = "mmbook-install"

CELL = '''\
# Run this chapter anywhere: install mmbook (and what the chapters use) when it is missing.
import importlib.util
import os
import subprocess
import sys

MMBOOK_PIP = None  # the published book writes its repository here
if importlib.util.find_spec("mmbook") is None:
    requirement = os.environ.get("MMBOOK_PIP") or MMBOOK_PIP
    if requirement is None:
        raise ModuleNotFoundError(
            "mmbook is not installed: pip install it from the book's repository, e.g. "
            "pip install 'mmbook[book] @ git+https://github.com/OWNER/NAME'")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)'''

_SOURCE_LINE = re.compile(r"^MMBOOK_PIP = .*$", re.MULTILINE)


def install_cell(source: str | None = None) -> nbformat.NotebookNode:
    text = CELL if source is None else _SOURCE_LINE.sub(f"MMBOOK_PIP = {source!r}", CELL)
    cell = nbformat.v4.new_code_cell(text)
    cell.metadata["tags"] = ["remove-cell", TAG]
    return cell


def apply(path: Path, source: str | None = None) -> None:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if TAG not in c.get("metadata", {}).get("tags", [])]
    new = install_cell(source)
    old = [c for c in nb.cells if TAG in c.get("metadata", {}).get("tags", [])]
    if old:
        new["id"] = old[0].get("id", new.get("id"))
        new.execution_count = old[0].get("execution_count")
    nb.cells = [new] + cells
    nbformat.write(nb, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", help="pip requirement the cell installs mmbook from")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for f in args.files:
        apply(f, args.source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
