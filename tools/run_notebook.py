"""Execute chapter notebooks in place, as the book build and nbval do.

Usage: .venv/bin/python tools/run_notebook.py book/slim.ipynb [more.ipynb ...]

Each notebook runs top to bottom in a fresh kernel with its own folder as the
working directory, and is saved with its outputs (the outputs nbval compares).
A MyST Markdown source (``.md`` with a jupytext header) may be given instead:
it is converted to ``.ipynb`` beside it and the ``.md`` is removed, since a
``.md`` and an ``.ipynb`` of the same name break the book build.
"""

import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)


def coalesce_streams(outputs):
    """Merge the outputs of each stream and resolve carriage returns, as nbval does.

    The stored text is then what a reader sees and what nbval compares with
    (trailing spaces are kept: nbval keeps them too).
    """
    merged, streams = [], {}
    for out in outputs:
        if out.output_type == "stream":
            if out.name in streams:
                streams[out.name].text += out.text
                continue
            streams[out.name] = out
        merged.append(out)
    for out in streams.values():
        out.text = _CARRIAGE_RETURN.sub("", out.text)
    return merged


def run(path: Path) -> Path:
    if path.suffix == ".md":
        import jupytext

        nb = jupytext.read(path)
        target = path.with_suffix(".ipynb")
    else:
        nb = nbformat.read(path, as_version=4)
        target = path
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()
    for cell in nb.cells:  # keep diffs small and stable; store streams as a reader sees them
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    nbformat.write(nb, target)
    if target != path:
        path.unlink()
    return target


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print("executed", run(Path(arg)))
