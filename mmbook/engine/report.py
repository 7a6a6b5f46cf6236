"""Printing a fit the way lme4 prints it.

lme4's ``summary()`` layout is what every reader of the reference document
has seen, so mmbook reproduces it, digits included, with R's printing rules
from :mod:`mmbook.rprint` (``formatReal``, ``zapsmall``, ``printCoefmat``).
"""

from __future__ import annotations

import html

import numpy as np

from ..rprint import abbreviate, cat_number, coef_matrix_cells, format_real, format_table, print_matrix, zapsmall

__all__ = ["summary_text", "summary_html", "random_effects_table", "fixef_correlation_lines",
           "convergence_lines", "criterion_lines", "residual_lines", "random_effects_lines",
           "rank_deficiency_lines"]


def _random_effects_rows(fit, digits: int = 4, residual: bool = True):
    """Rows of lme4's random-effects table (Groups, Name, Variance, Std.Dev., Corr...)."""
    var, sd, grp, nm, corr_blocks = [], [], [], [], []
    for vc in fit.vc_terms:
        for i, c in enumerate(vc.names):
            grp.append(vc.group if i == 0 else "")
            nm.append(c)
            var.append(vc.cov[i, i])
            sd.append(vc.sd[i])
        corr_blocks.append(vc.corr)
    if residual:
        grp.append("Residual")
        nm.append("")
        var.append(fit.sigma ** 2)
        sd.append(fit.sigma)
    maxq = max(len(vc.names) for vc in fit.vc_terms)
    corr_cols = [[""] * len(grp) for _ in range(maxq - 1)]
    row = 0
    for C in corr_blocks:
        q = C.shape[0]
        if q > 1:
            lower = [(i, j) for i in range(q) for j in range(i)]
            vals = np.round([C[i, j] for i, j in lower], 2)
            txt = format_real(np.nan_to_num(vals, nan=np.nan), digits=7, nsmall=2)
            for (i, j), s_ in zip(lower, txt):
                corr_cols[j][row + i] = s_ if np.isfinite(C[i, j]) else "NaN"
        row += q
    vtxt = format_real(var, digits)
    stxt = format_real(sd, digits)
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (maxq - 2) if maxq > 1 else [])
    rows = []
    for r in range(len(grp)):
        rows.append([grp[r], nm[r], vtxt[r], stxt[r]] + [corr_cols[c][r] for c in range(maxq - 1)])
    return header, rows


def _fixef_rows(fit, digits: int = 4):
    """lme4 1.1-31's fixed-effects table: ``printCoefmat(coefs, digits = digits)``."""
    beta = fit.fixef.to_numpy()
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = beta / se
    rows, _ = coef_matrix_cells(np.column_stack([beta, se, tval]), digits, has_p=False, tst_col=2)
    return ["Estimate", "Std. Error", "t value"], rows, list(fit.fixef.index)


def _extra_lines(fit) -> list[str]:
    """What mmbook adds to lme4's layout: the residual correlation and the smooth terms."""
    out = []
    corr = fit.mf.residual
    if corr is not None:
        spec = corr.spec
        out.append(f"Residual correlation: {corr.name}, ~{spec.time or 1}{' | ' + spec.group if spec.group else ''}: "
                   f"{corr.parameter} = {format_real([fit.correlation], 4)[0]}")
    sm = fit.smooths if fit.mf.smooths else None
    if sm is not None and len(sm):
        out.append("")
        out.append("Smooth terms (penalized splines as random effects; lambda = sigma^2 / tau^2):")
        rows = [[str(int(r.k)), r.bs, format_real([r.edf], 4)[0],
                 format_real([r["lambda"]], 4)[0] if np.isfinite(r["lambda"]) else "Inf"]
                for _, r in sm.iterrows()]
        out.extend(print_matrix(list(sm.index), ["k", "bs", "edf", "lambda"], rows))
    return out


def summary_text(fit, digits: int = 4) -> str:
    """The text of lme4's ``summary(fit)`` for an mmbook fit."""
    out = []
    method = "REML" if fit.REML else "maximum likelihood "
    out.append(f"Linear mixed model fit by {method} ['lmerMod']")
    out.append(f"Formula: {fit.formula}")
    for label, key in (("Weights: ", "weights"), (" Offset: ", "offset")):  # lme4's lines, when given
        if key in fit.mf.arguments:
            given = fit.mf.arguments[key]
            out.append(label + (given if isinstance(given, str) else "<array>"))
    out.append("")
    if fit.REML:
        out.append(f"REML criterion at convergence: {cat_number(round(fit.objective, 1))}")
    else:
        out += criterion_lines(fit.aic, fit.bic, fit.loglik, fit.deviance, fit.nobs - fit.npar)
    out.append("")
    out += residual_lines(fit, digits)
    out.append("")
    out += random_effects_lines(fit, digits)
    out.extend(_extra_lines(fit))
    p = fit.mf.p
    if p:
        out.append("")
        out.append("Fixed effects:")
        header, rows, names = _fixef_rows(fit, digits)
        out.extend(print_matrix(names, header, rows))
    out.extend(fixef_correlation_lines(fit))
    out += rank_deficiency_lines(fit)
    out += convergence_lines(fit)
    return "\n".join(out) + "\n"


def criterion_lines(aic: float, bic: float, loglik: float, deviance: float, df_resid: int) -> list[str]:
    """lme4's ``.prt.aictab``: the named vector ``AIC BIC logLik deviance df.resid``, two lines.

    The criteria are rounded to one decimal and printed as R prints a named
    vector: every name and value right-aligned to one common width, each line
    ending in a space.
    """
    vals = [round(v, 1) for v in (aic, bic, loglik, deviance)]
    txt = format_real(vals, 7) + [str(df_resid)]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    w = max(len(a) for a in names + [t.strip() for t in txt])  # R prints a named vector in one width
    return [" ".join(a.rjust(w) for a in names) + " ", " ".join(b.strip().rjust(w) for b in txt) + " "]


def residual_lines(fit, digits: int = 4) -> list[str]:
    """lme4's ``.prt.resids``: "Scaled residuals:" and the quartiles of ``fit.scaled_residuals``.

    ``quantile(resids, c(0, .25, .5, .75, 1))`` passed through
    ``zapsmall(digits + 1)``, each name and value right-aligned to their common width.
    """
    q = np.quantile(fit.scaled_residuals.to_numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    qtxt = format_real(zapsmall(q, digits + 1), digits)
    names = ["Min", "1Q", "Median", "3Q", "Max"]
    w = [max(len(a), len(b)) for a, b in zip(names, qtxt)]
    return ["Scaled residuals: ", " ".join(a.rjust(x) for a, x in zip(names, w)) + " ",
            " ".join(b.rjust(x) for b, x in zip(qtxt, w)) + " "]


def random_effects_lines(fit, digits: int = 4, residual: bool = True) -> list[str]:
    """lme4's "Random effects:" block: the table (:func:`random_effects_table`) and the group counts."""
    header, rows = _random_effects_rows(fit, digits, residual)
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    return ["Random effects:", format_table(rows, header, ["l"] * len(header)),
            f"Number of obs: {fit.nobs}, groups:  {groups}"]


def rank_deficiency_lines(fit) -> list[str]:
    """lme4's fit warning when columns of ``X`` were dropped as linearly dependent (none otherwise)."""
    if not fit.mf.dropped_columns:
        return []
    k = len(fit.mf.dropped_columns)
    return [f"fit warnings:\nfixed-effect model matrix is rank deficient so dropping {k} column"
            f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''}"]


def random_effects_table(fit, digits: int = 4, residual: bool = True):
    """lme4's random-effects table as ``(header, rows)``: Groups, Name, Variance, Std.Dev., Corr.

    ``residual=False`` leaves out the Residual row (a GLMM has none).
    """
    return _random_effects_rows(fit, digits, residual)


def fixef_correlation_lines(fit) -> list[str]:
    """lme4's "Correlation of Fixed Effects" block (a blank line first), from ``fit.vcov``."""
    p = fit.mf.p
    if p <= 1:
        return []
    if p > 12:
        return ["", f"Correlation matrix not shown by default, as p = {p} > 12."]
    V = fit.vcov.to_numpy()
    s = np.sqrt(np.diag(V))
    C = V / np.outer(s, s)
    names = list(fit.fixef.index)
    txt = np.array(format_real(np.round(C.ravel(), 3), 7, nsmall=3)).reshape(p, p)
    rows = [[txt[i, j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
    header = [abbreviate(n, 6) for n in names[:-1]]
    rn = [abbreviate(n, 11) for n in names[1:]]
    return ["", "Correlation of Fixed Effects:", format_table(rows, header, ["l"] * (p - 1), rownames=rn)]


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


def summary_html(fit) -> str:
    """An HTML rendering of the summary for notebooks: the text, preformatted."""
    return ("<pre style='font-size: 0.85em; line-height: 1.25'>" + html.escape(summary_text(fit)) + "</pre>")
