"""Tables of compared numbers that print the same on every machine.

Two implementations of one estimate agree to many digits, but their last
digits move with the BLAS kernel, the thread count and the point where an
iterative optimizer stops. A table that prints those digits (or a difference
rounded to its order of magnitude) changes from machine to machine whenever a
value sits near a rounding boundary. The tables here print instead:

* each value at a fixed *resolution* that the optimum determines: a number
  of significant digits of the quantity's natural size (:func:`resolution`),
  far coarser than the noise of the reference implementation (mmbook's
  estimates move by about 1e-10 relative between OpenBLAS kernels; printing
  at 4 significant digits leaves a chance of about 1e-6 per number that a
  value sits within that noise of a rounding boundary);
* whether two values agree within a *stated tolerance*, as yes/no: that
  answer changes only if a difference sits at the tolerance itself, which is
  chosen far above the differences the implementations show.

:func:`text_table` and :func:`html_table` lay the rows out for a terminal
and for a notebook (right-aligned numbers, tabular figures).
"""

from __future__ import annotations

import html
import math
import textwrap

import numpy as np

__all__ = ["resolution", "fmt_at", "text_table", "html_table"]


def resolution(size: float, digits: int) -> int:
    """The decimal exponent ``e`` of the last printed digit: ``digits`` significant digits of ``size``.

    ``e = floor(log10(size)) - (digits - 1)``; a value is printed rounded to
    a multiple of ``10**e``. ``size`` is the quantity's natural size (e.g.
    ``max(|estimate|, standard error)``), not the value itself, so a value
    that is zero within its precision prints as ``0.000`` rather than with
    digits that are noise.

    Parameters
    ----------
    size : float
        Positive size; a zero or non-finite size gives ``e = 0``.
    digits : int
        Significant digits of ``size`` to print (>= 1).
    """
    if not (np.isfinite(size) and size > 0):
        return 0
    return int(math.floor(math.log10(size))) - (int(digits) - 1)


def fmt_at(x: float, e: int, size: float | None = None) -> str:
    """``x`` rounded to a multiple of ``10**e``, as text.

    Fixed-point (``612.1``) when ``-8 <= e <= 0``; otherwise in scientific
    notation with the exponent of ``size`` (``1.235e+06``, ``0.012e+06``),
    so the rows of one quantity line up. ``nan`` prints as ``NA``, a
    negative zero as ``0``.
    """
    if x is None or not np.isfinite(x):
        return "NA"
    if -8 <= e <= 0:
        s = f"{round(float(x), -e):.{-e}f}"
    else:
        E = e if size is None or not (np.isfinite(size) and size > 0) else int(math.floor(math.log10(size)))
        s = f"{float(x) / 10.0 ** E:.{max(E - e, 0)}f}e{E:+03d}"
    if s.startswith("-") and float(s.replace("e", "E").split("E")[0]) == 0:
        s = s[1:]
    return s


def text_table(header, rows, align=None, title: str | None = None, footer=(), notes=()) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned (or as ``align`` says).

    Parameters
    ----------
    header : sequence of str
    rows : sequence of sequences of str
    align : str, optional
        One character per column, ``"l"`` or ``"r"``; default ``"l"`` then ``"r"``.
    title : str, optional
        A line above the table.
    footer : sequence of str
        Lines below it.
    notes : sequence of str
        Paragraphs below the footer, wrapped at 100 characters.
    """
    ncol = len(header)
    align = align or "l" + "r" * (ncol - 1)
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(ncol)]
    lines = [title] if title else []
    for r in cells:
        lines.append("  ".join(c.ljust(x) if a == "l" else c.rjust(x)
                               for c, x, a in zip(r, w, align)).rstrip())
    lines.extend(footer)
    for note in notes:
        lines.extend(textwrap.wrap(note, 100))
    return "\n".join(lines)


_CELL = "padding:0.15em 0.6em;white-space:nowrap;"
_FIRST = "padding:0.15em 0.6em 0.15em 0;max-width:20em;"  # the labels may wrap; the numbers never do


def html_table(header, rows, align=None, caption: str | None = None, footer=(), notes=(),
               css_class: str = "") -> str:
    """The same table as :func:`text_table`, as HTML styled for a notebook.

    Inline styles only (they survive Jupyter Book and nbconvert):
    right-aligned numeric columns with tabular figures, a rule under the
    header, no wrapping inside the value cells (the first column's labels may wrap), the caption above, ``footer``
    paragraphs below and ``notes`` in a smaller font (all escaped text);
    a table wider than the page scrolls sideways instead of being cut off.
    """
    ncol = len(header)
    align = align or "l" + "r" * (ncol - 1)
    side = {"l": "left", "r": "right"}
    cell = [_FIRST if i == 0 else _CELL for i in range(ncol)]
    head = "".join(f"<th style=\"{cell[i]}text-align:{side[a]};border-bottom:1px solid currentColor\">"
                   f"{html.escape(str(h))}</th>" for i, (h, a) in enumerate(zip(header, align)))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f"<td style=\"{cell[i]}text-align:{side[a]}\">{html.escape(str(c))}</td>"
                                     for i, (c, a) in enumerate(zip(r, align))) + "</tr>")
    cap = ("<caption style=\"caption-side:top;text-align:left;font-weight:bold;padding:0 0 0.3em 0\">"
           f"{html.escape(caption)}</caption>") if caption else ""
    foot = "".join(f"<p style=\"margin:0.3em 0 0 0\">{html.escape(line)}</p>" for line in footer)
    foot += "".join(f"<p style=\"margin:0.3em 0 0 0;font-size:smaller;max-width:50em\">{html.escape(n)}</p>"
                    for n in notes)
    cls = f" class=\"{html.escape(css_class)}\"" if css_class else ""
    return (f"<div{cls} style=\"overflow-x:auto;max-width:100%\">"
            "<table style=\"border-collapse:collapse;font-variant-numeric:tabular-nums;width:auto;margin:0\">"
            f"{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            f"</table>{foot}</div>")
