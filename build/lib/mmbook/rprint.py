"""R's printing rules, in one place: every summary mmbook prints uses them.

A reader who compares mmbook's output with R's should see the same digits.
R decides them with a handful of rules, reproduced here from R 4.2's sources:

* :func:`format_real` - ``format(x, digits = d, nsmall = k)`` for a numeric
  vector (``formatReal`` in ``src/main/format.c``): every element gets at
  least ``d`` significant digits, with one common layout, fixed or
  scientific, whichever is narrower;
* :func:`zapsmall` - ``zapsmall(x, digits)``: round relative to the largest
  element;
* :func:`format_pval` - ``format.pval``: p-values below ``eps`` print as
  ``< eps``;
* :func:`coef_matrix_cells` - the cells of ``printCoefmat``, which
  ``summary.lm``, lme4's ``summary.merMod`` and lmerTest print;
* :func:`print_matrix`, :func:`format_table`, :func:`print_named` - how R
  lays out a character matrix and a named vector;
* :func:`abbreviate`, :func:`format_c`, :func:`cat_number` - R's
  ``abbreviate``, ``formatC`` and ``cat`` of a number.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["format_real", "zapsmall", "format_pval", "signif_stars", "SIGNIF_LEGEND", "coef_matrix_cells",
           "print_matrix", "format_table", "print_named", "abbreviate", "format_c", "cat_number"]

#: R's legend under a coefficient table with significance stars.
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
_EPS = float(np.finfo(float).eps)


def _sci_parts(x: float, digits: int):
    """Sign, decimal exponent and significant digits that R's ``scientific()`` finds for ``x``."""
    if x == 0.0:
        return False, 0, 1
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    sig = mant.replace(".", "").rstrip("0")
    return x < 0, int(exp), max(1, len(sig))


def _special(v: float, na: str) -> str:
    return na if math.isnan(v) else ("Inf" if v > 0 else "-Inf")


def format_real(values, digits: int = 7, nsmall: int = 0, na: str = "NA", width: int = 0) -> list[str]:
    """R's ``format(x, digits = digits, nsmall = nsmall)`` for a numeric vector.

    One layout for all elements: fixed notation with the decimals the
    element needing most of them requires for ``digits`` significant
    digits, or scientific notation when that is narrower (R's
    ``formatReal`` with ``scipen = 0``); ``nsmall`` is the least number of
    decimals in fixed notation. The strings are right-justified to a
    common width (at least ``width``); ``NaN`` prints as ``na``.

    Parameters
    ----------
    values : array_like of float
    digits : int
        Significant digits (R's ``digits``), 1 to 15.
    nsmall : int
        Minimum decimals in fixed notation.

    Returns
    -------
    list of str, one per element.
    """
    vals = np.asarray(values, dtype=float).ravel()
    fin = np.isfinite(vals)
    if not fin.any():
        out = [_special(v, na) for v in vals]
    else:
        neg = False
        rgt = mxsl = mxns = mxe = -(10 ** 9)
        mne = 10 ** 9
        for v in vals[fin]:
            sgn, kp, nsig = _sci_parts(float(v), digits)
            neg = neg or sgn
            sleft = int(sgn) + (1 if kp + 1 <= 0 else kp + 1)
            rgt = max(rgt, nsig - kp - 1)
            mxsl, mxns = max(mxsl, sleft), max(mxns, nsig)
            mxe, mne = max(mxe, kp), min(mne, kp)
        rgt = max(rgt, 0)
        wF = mxsl + rgt + (rgt != 0)
        e = 2 if (mxe >= 100 or mne <= -99) else 1
        d = mxns - 1
        wE = int(neg) + (d > 0) + d + 4 + e
        out = []
        if wF <= wE:
            rgt = max(rgt, nsmall)
            for v in vals:
                if math.isfinite(v):
                    s = f"{v:.{rgt}f}"
                    out.append(s[1:] if s.startswith("-") and float(s) == 0 else s)
                else:
                    out.append(_special(v, na))
        else:
            for v in vals:
                if math.isfinite(v):
                    mant, ex = f"{v:.{d}e}".split("e")
                    out.append(f"{mant}e{ex[0]}{ex[1:].lstrip('0').rjust(e + 1, '0')}")
                else:
                    out.append(_special(v, na))
    w = max([width] + [len(s) for s in out])
    return [s.rjust(w) for s in out]


def zapsmall(x, digits: int) -> np.ndarray:
    """R 4.2's ``zapsmall``: ``round(x, max(0, digits - log10(max|x|)))``, places rounded to nearest."""
    x = np.asarray(x, dtype=float)
    finite = x[np.isfinite(x)]
    mx = np.max(np.abs(finite)) if finite.size else 0.0
    if mx > 0:
        return np.round(x, int(math.floor(max(0.0, digits - math.log10(mx)) + 0.5)))
    return np.round(x, digits)


def format_pval(pv, digits: int, eps: float = _EPS) -> list[str]:
    """R's ``format.pval``: p-values below ``eps`` print as ``< eps``; others by :func:`format_real`."""
    pv = np.asarray(pv, dtype=float).ravel()
    out = ["NA"] * len(pv)
    ok = ~np.isnan(pv)
    is0 = ok & (pv < eps)
    rest = ok & ~is0
    shown: list[str] = []
    if rest.any():
        idx = np.flatnonzero(rest)
        expo = np.floor(np.log10(np.where(pv[idx] > 0, pv[idx], 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        for mask in (fixp, ~fixp):
            if mask.any():
                for i, s in zip(idx[mask], format_real(pv[idx[mask]], digits)):
                    out[i] = s
                    shown.append(s)
    if is0.any():
        dig = max(1, digits - 2)
        if shown:
            nc = max(len(s) for s in shown)
            if dig > 1 and dig + 6 > nc:
                dig = max(1, nc - 7)
            sep = "" if (dig == 1 and nc <= 6) else " "
        else:
            sep = "" if dig == 1 else " "
        text = "<" + sep + format_real([eps], dig)[0].strip()
        for i in np.flatnonzero(is0):
            out[i] = text
    return out


def signif_stars(p: float) -> str:
    """R's significance stars for one p-value (``symnum`` with the default cut points)."""
    if np.isnan(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return star
    return " "


def coef_matrix_cells(table, digits: int, *, has_p: bool = True, tst_col: int | None = 2,
                      zap_cols=(), signif: bool = True) -> tuple[list[list[str]], bool]:
    """The cells of R's ``printCoefmat`` for a coefficient table.

    Columns 0 and 1 are the estimate and its standard error (formatted
    together, rounded to ``max(1, digits - digmin)`` places); ``tst_col`` is
    the test statistic (rounded to ``max(1, min(5, digits - 1))`` places);
    the last column is the p-value when ``has_p``; any other column (e.g.
    lmerTest's ``df``) is formatted on its own. Columns in ``zap_cols`` go
    through :func:`zapsmall` first (lme4 passes ``zap.ind = 3``). A non-zero
    number that the rounding turned into zero is shown with one digit fewer,
    as R does.

    Parameters
    ----------
    table : pandas.DataFrame or array, shape (k, ncol)
    digits : int
    has_p : bool
        The last column is a p-value (formatted by :func:`format_pval`).
    tst_col : int or None
        Index of the test-statistic column.
    zap_cols : iterable of int
    signif : bool
        Add R's significance stars when any p-value is below 0.1.

    Returns
    -------
    (rows, stars) : list of lists of str, and whether a star column was added.
    """
    xm = np.array(getattr(table, "to_numpy", lambda **_: table)(dtype=float), dtype=float, copy=True)
    k, nc = xm.shape
    for j in zap_cols:
        xm[:, j] = zapsmall(xm[:, j], digits)
    cells = np.empty((k, nc), dtype=object)
    cs = xm[:, :2]
    acs = np.abs(cs[np.isfinite(cs)])
    acs = acs[acs != 0]
    digmin = 1 + (np.floor(np.log10([acs.min(), acs.max()])) if acs.size else np.zeros(2))
    dec = int(max(1, digits - digmin.min()))
    cells[:, :2] = np.array(format_real(np.round(cs.T.ravel(), dec), digits)).reshape(2, k).T
    if tst_col is not None:
        cells[:, tst_col] = format_real(np.round(xm[:, tst_col], max(1, min(5, digits - 1))), digits)
    p_col = nc - 1 if has_p else None
    for j in range(nc):
        if j not in (0, 1, tst_col, p_col):
            cells[:, j] = format_real(xm[:, j], digits)
    # a non-zero number shown as zero gets one digit fewer (not the statistic, not the p-value)
    for j in [c for c in range(nc) if c not in (tst_col, p_col)]:
        for i in range(k):
            v = xm[i, j]
            if np.isfinite(v) and v != 0 and float(cells[i, j]) == 0.0:
                cells[i, j] = format_real([v], max(1, digits - 1))[0]
    stars = False
    if has_p:
        pv = xm[:, p_col]
        cells[:, p_col] = format_pval(pv, max(1, min(5, digits - 1)))
        stars = signif and bool(np.any(pv[~np.isnan(pv)] < 0.1))
    rows = [[str(c).strip() for c in cells[i]] for i in range(k)]
    if stars:  # format(Signif): left-justified to a common width
        marks = [signif_stars(p) for p in xm[:, p_col]]
        w = max(len(m) for m in marks)
        for r, m in zip(rows, marks):
            r.append(m.ljust(w))
    return rows, stars


def print_matrix(rownames, colnames, rows) -> list[str]:
    """R's ``print.default`` of a character matrix with ``right = TRUE`` (``printCoefmat``'s layout)."""
    rw = max([0] + [len(r) for r in rownames])
    widths = [max([len(c)] + [len(r[j]) for r in rows]) for j, c in enumerate(colnames)]
    lines = [" " * rw + "".join(" " + c.rjust(w) for c, w in zip(colnames, widths))]
    for name, r in zip(rownames, rows):
        lines.append(name.ljust(rw) + "".join(" " + s.rjust(w) for s, w in zip(r, widths)))
    return lines


def format_table(rows: list[list[str]], header: list[str], align: list[str], rownames=None) -> str:
    """A table of strings laid out as R prints a character matrix with ``quote = FALSE``.

    ``align`` holds ``"l"`` or ``"r"`` per column (lme4's VarCorr table is
    left-aligned).
    """
    cols = list(zip(*rows)) if rows else [[] for _ in header]
    widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(header, cols)]
    rn = rownames if rownames is not None else [""] * len(rows)
    rw = max([0] + [len(r) for r in rn])

    def fmt(cell, w, a):
        return cell.rjust(w) if a == "r" else cell.ljust(w)

    lines = [" " * rw + " " + " ".join(fmt(h, w, a) for h, w, a in zip(header, widths, align))]
    for name, row in zip(rn, rows):
        lines.append(name.ljust(rw) + " " + " ".join(fmt(c, w, a) for c, w, a in zip(row, widths, align)))
    return "\n".join(lines)


def print_named(values: dict, digits: int, width: int = 80) -> list[str]:
    """R's print of a named numeric vector: names above values, one common width, wrapped at ``width``."""
    cells = format_real(list(values.values()), digits)
    names = list(values)
    w = max([len(c) for c in cells] + [len(nm) for nm in names])
    per_line = max(1, width // (w + 1))
    lines = []
    for s in range(0, len(cells), per_line):
        lines.append("".join(nm.rjust(w) + " " for nm in names[s:s + per_line]))
        lines.append("".join(c.rjust(w) + " " for c in cells[s:s + per_line]))
    return lines


def abbreviate(name: str, minlength: int) -> str:
    """R's ``abbreviate``: drop lower-case vowels, then lower-case letters, from the right."""
    if len(name) <= minlength:
        return name
    chars = list(name)
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pool and chars[i - 1] != " ":
                del chars[i]
            i -= 1
        if len(chars) <= minlength:
            break
    return "".join(chars[:max(minlength, 0)]) if len(chars) > minlength else "".join(chars)


def format_c(x: float, digits: int) -> str:
    """R's ``formatC(x, digits = digits)`` (C's ``%.{digits}g``)."""
    return f"{x:.{digits}g}"


def cat_number(x: float) -> str:
    """How R's ``cat`` prints a number (up to 7 significant digits)."""
    return f"{x:.7g}"
