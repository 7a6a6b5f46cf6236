"""Sphinx extension for the book: a clean page for a reader who reads offline.

* Jupyter Book always loads sphinx-thebe, which adds an inline script naming
  a remote JavaScript bundle (and, on some builds, adds it twice, which is a
  console error). Thebe is switched off for this book, so its scripts are
  removed from every page: nothing on a page refers to a remote server.
* The book's stylesheet (``book/_static/mmbook.css``): a wider text column,
  code and tables that fit a 1280-pixel window.
* Author-year labels in the bibliography ("Bates et al. 2015"), matching
  the author-year citations in the text (pybtex style ``authoryear``).
"""

from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return " ".join(person.prelast_names + person.last_names).replace("{", "").replace("}", "")


class AuthorYearLabels(BaseLabelStyle):
    """``Clark 2016``, ``Gelman and Hill 2007``, ``Bates et al. 2015``."""

    def format_labels(self, sorted_entries):
        labels = list(self._labels(sorted_entries))
        seen: dict = {}
        for label in labels:  # the same authors and year twice: 2013a, 2013b
            if labels.count(label) > 1:
                seen[label] = seen.get(label, 0) + 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label

    def _labels(self, sorted_entries):
        for entry in sorted_entries:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [_surname(p) for p in people]
            if not names:
                who = entry.fields.get("key", entry.key)
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            yield f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``unsrt`` entries, sorted by author and year, with author-year labels."""

    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


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
