"""Printing a fit the way lme4 prints it.

lme4's ``summary()`` layout is what every reader of the reference document
has seen, so mmbook reproduces it, digits included. The digits follow R's
own rules: ``format(x, digits = d)`` gives every element at least ``d``
significant digits with a common number of decimals (R's ``formatReal``),
``zapsmall`` rounds relative to the largest element, and ``printCoefmat``
combines them for the fixed-effects table.
"""

from __future__ import annotations

import html
import math

import numpy as np

__all__ = ["r_format", "zapsmall", "abbreviate", "summary_text", "summary_html", "format_table",
           "convergence_lines"]


def _sig_and_power(x: float, digits: int) -> tuple[int, int]:
    """Significant digits needed (at most ``digits``) and the decimal exponent of ``x``."""
    a = abs(x)
    if a == 0 or not math.isfinite(a):
        return 1, 0
    kp = math.floor(math.log10(a))
    r = round(a / 10.0 ** (kp - digits + 1))
    if r >= 10 ** digits:
        kp += 1
        r = round(a / 10.0 ** (kp - digits + 1))
    nsig = digits
    while nsig > 1 and r % 10 == 0:
        r //= 10
        nsig -= 1
    return nsig, kp


def r_format(values, digits: int = 7, nsmall: int = 0, width: int = 0) -> list[str]:
    """R's ``format(x, digits = digits, nsmall = nsmall)`` for a numeric vector (fixed notation).

    All elements get the same number of decimals: the most that any element
    needs to show ``digits`` significant digits; then they are padded to a
    common width. ``NaN`` prints as ``NA``.
    """
    vals = [float(v) for v in np.ravel(values)]
    rgt = 0
    for v in vals:
        if math.isfinite(v):
            nsig, kp = _sig_and_power(v, digits)
            rgt = max(rgt, nsig - kp - 1)
    rgt = max(rgt, nsmall)
    out = []
    for v in vals:
        if math.isnan(v):
            out.append("NA")
        elif math.isinf(v):
            out.append("Inf" if v > 0 else "-Inf")
        else:
            s = f"{v:.{rgt}f}"
            if s.startswith("-") and float(s) == 0:
                s = s[1:]
            out.append(s)
    w = max([width] + [len(s) for s in out])
    return [s.rjust(w) for s in out]


def zapsmall(x, digits: int) -> np.ndarray:
    """R 4.2's ``zapsmall``: ``round(x, max(0, digits - log10(max|x|)))``, places rounded to nearest."""
    x = np.asarray(x, dtype=float)
    finite = x[np.isfinite(x)]
    mx = np.max(np.abs(finite)) if finite.size else 0.0
    if mx > 0:
        return np.round(x, int(math.floor(max(0.0, digits - math.log10(mx)) + 0.5)))  # R 4.2
    return np.round(x, digits)


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


def format_table(rows: list[list[str]], header: list[str], align: list[str], rownames=None) -> str:
    """Lay out a table of strings as R prints a character matrix."""
    cols = list(zip(*rows)) if rows else [[] for _ in header]
    widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(header, cols)]
    lines = []
    rn = rownames if rownames is not None else [""] * len(rows)
    rw = max([0] + [len(r) for r in rn])

    def fmt(cell, w, a):
        return cell.rjust(w) if a == "r" else cell.ljust(w)

    lines.append(" " * rw + " " + " ".join(fmt(h, w, a) for h, w, a in zip(header, widths, align)))
    for name, row in zip(rn, rows):
        lines.append(name.ljust(rw) + " " + " ".join(fmt(c, w, a) for c, w, a in zip(row, widths, align)))
    return "\n".join(lines)


def _random_effects_rows(fit, digits: int = 4):
    """Rows of lme4's random-effects table (Groups, Name, Variance, Std.Dev., Corr...)."""
    names = fit._group_names()
    var, sd, grp, nm, corr_blocks = [], [], [], [], []
    for k, (t, g) in enumerate(zip(fit.terms, names)):
        S = fit.psi(k)
        s = np.sqrt(np.diag(S))
        for i, c in enumerate(t.cnames):
            grp.append(g if i == 0 else "")
            nm.append(c)
            var.append(S[i, i])
            sd.append(s[i])
        with np.errstate(invalid="ignore", divide="ignore"):
            C = S / np.outer(s, s)
        corr_blocks.append(C)
    grp.append("Residual")
    nm.append("")
    var.append(fit.sigma ** 2)
    sd.append(fit.sigma)
    maxq = max(t.q for t in fit.terms)
    corr_cols = [[""] * len(grp) for _ in range(maxq - 1)]
    row = 0
    for C in corr_blocks:
        q = C.shape[0]
        if q > 1:
            lower = [(i, j) for i in range(q) for j in range(i)]
            vals = np.round([C[i, j] for i, j in lower], 2)
            txt = r_format(np.nan_to_num(vals, nan=np.nan), digits=7, nsmall=2)
            for (i, j), s_ in zip(lower, txt):
                corr_cols[j][row + i] = s_ if np.isfinite(C[i, j]) else "NaN"
        row += q
    vtxt = r_format(var, digits)
    stxt = r_format(sd, digits)
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (maxq - 2) if maxq > 1 else [])
    rows = []
    for r in range(len(grp)):
        rows.append([grp[r], nm[r], vtxt[r], stxt[r]] + [corr_cols[c][r] for c in range(maxq - 1)])
    return header, rows


def _fixef_rows(fit, digits: int = 4):
    beta = fit.fixef.to_numpy()
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = beta / se
    coef_se = np.concatenate([beta, se])
    acs = np.abs(coef_se[np.isfinite(coef_se) & (coef_se != 0)])
    if acs.size:
        digmin = 1 + np.floor(np.log10([acs.min(), acs.max()]))
        dec = int(max(1, *(digits - digmin)))
    else:
        dec = digits
    cs = r_format(np.round(coef_se, dec), digits)
    n = len(beta)
    dig_tst = max(1, min(5, digits - 1))
    tt = r_format(np.round(tval, dig_tst), digits)
    rows = [[cs[i], cs[n + i], tt[i]] for i in range(n)]
    return ["Estimate", "Std. Error", "t value"], rows, list(fit.fixef.index)


def summary_text(fit, digits: int = 4) -> str:
    """The text of lme4's ``summary(fit)`` for an mmbook fit."""
    out = []
    method = "REML" if fit.REML else "maximum likelihood "
    out.append(f"Linear mixed model fit by {method} ['lmerMod']")
    out.append(f"Formula: {fit.formula}")
    out.append("")
    if fit.REML:
        out.append(f"REML criterion at convergence: {_cat_number(round(fit.objective, 1))}")
    else:
        vals = [round(v, 1) for v in (fit.aic, fit.bic, fit.loglik, fit.deviance)]
        txt = r_format(vals, 7) + [str(fit.nobs - fit.npar)]
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        w = max(len(a) for a in names + [t.strip() for t in txt])  # R prints a named vector in one width
        out.append(" ".join(a.rjust(w) for a in names) + " ")
        out.append(" ".join(b.strip().rjust(w) for b in txt) + " ")
    out.append("")
    q = np.quantile(fit.scaled_residuals.to_numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    qtxt = r_format(zapsmall(q, digits + 1), digits)
    names = ["Min", "1Q", "Median", "3Q", "Max"]
    w = [max(len(a), len(b)) for a, b in zip(names, qtxt)]
    out.append("Scaled residuals: ")
    out.append(" ".join(a.rjust(x) for a, x in zip(names, w)) + " ")
    out.append(" ".join(b.rjust(x) for b, x in zip(qtxt, w)) + " ")
    out.append("")
    out.append("Random effects:")
    header, rows = _random_effects_rows(fit, digits)
    out.append(format_table(rows, header, ["l"] * len(header)))
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    out.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    p = fit.mf.p
    if p:
        out.append("")
        out.append("Fixed effects:")
        header, rows, names = _fixef_rows(fit, digits)
        out.append(format_table(rows, header, ["r"] * 3, rownames=names))
    if p > 1:
        out.append("")
        if p > 12:
            out.append(f"Correlation matrix not shown by default, as p = {p} > 12.")
        else:
            out.append("Correlation of Fixed Effects:")
            V = fit.vcov.to_numpy()
            s = np.sqrt(np.diag(V))
            C = V / np.outer(s, s)
            names = list(fit.fixef.index)
            txt = np.array(r_format(np.round(C.ravel(), 3), 7, nsmall=3)).reshape(p, p)
            rows = [[txt[i, j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
            header = [abbreviate(n, 6) for n in names[:-1]]
            rn = [abbreviate(n, 11) for n in names[1:]]
            out.append(format_table(rows, header, ["l"] * (p - 1), rownames=rn))
    if fit.mf.dropped_columns:
        k = len(fit.mf.dropped_columns)
        out.append(f"fit warnings:\nfixed-effect model matrix is rank deficient so dropping {k} column"
                   f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''}")
    out += convergence_lines(fit)
    return "\n".join(out) + "\n"


def convergence_lines(fit) -> list[str]:
    """lme4's lines after the summary (``.prt.warn``): the optimizer's code, then the checks' messages.

    Printed when the optimizer's code is not 0 or any check has something
    to say: ``optimizer (L-BFGS-B) convergence code: 0 (OK)``, then lme4's
    messages (a failed convergence check: "Model failed to converge ...";
    a singular fit), then the optimizer's own warnings.
    """
    opt = fit.opt
    conv = getattr(fit, "convergence", None)
    checks = list(conv.messages) if conv is not None else []
    if fit.is_singular:
        checks.append("boundary (singular) fit: see fit.is_singular")
    own = [m for m in opt.messages if m not in checks]
    code = int(getattr(opt, "code", 0))
    if code == 0 and not checks and not own:
        return []
    status = "OK" if code == 0 else getattr(opt, "message", "") or "failed"
    return [f"optimizer ({getattr(opt, 'optimizer', 'L-BFGS-B')}) convergence code: {code} ({status})"] + checks + own


def _cat_number(x: float) -> str:
    """How R's ``cat`` prints a number (up to 7 significant digits)."""
    return f"{x:.7g}"


def summary_html(fit) -> str:
    """An HTML rendering of the summary for notebooks: the text, preformatted."""
    return ("<pre style='font-size: 0.85em; line-height: 1.25'>" + html.escape(summary_text(fit)) + "</pre>")
