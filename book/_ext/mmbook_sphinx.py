"""Sphinx extension for the book: a clean page for a reader who reads offline.

* Jupyter Book always loads sphinx-thebe, which adds an inline script naming
  a remote JavaScript bundle (and, on some builds, adds it twice, which is a
  console error). Thebe is switched off for this book, so its scripts are
  removed from every page: nothing on a page refers to a remote server.
* The book's stylesheet (``book/_static/mmbook.css``): a wider text column,
  code and tables that fit a 1280-pixel window.
"""

from pathlib import Path


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    kept = []
    for s in scripts:
        name = str(getattr(s, "filename", s) or "")
        body = str(getattr(s, "attributes", {}).get("body", "") if hasattr(s, "attributes") else "")
        if "thebe" in name.lower() or "THEBE_JS_URL" in body:
            continue
        kept.append(s)
    context["script_files"] = kept


def setup(app):
    static = Path(__file__).resolve().parents[1] / "_static"
    app.connect("builder-inited", lambda a: a.config.html_static_path.append(str(static)))
    app.add_css_file("mmbook.css")
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
