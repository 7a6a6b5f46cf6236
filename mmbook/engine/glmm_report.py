"""Printing a GLMM the way lme4 prints a ``glmerMod``.

The layout of ``summary(glmer(...))`` in lme4 1.1-31: the method title (wrapped
as lme4's ``.prt.methTit`` wraps it), the family and link, the formula, the
table ``AIC BIC logLik deviance df.resid`` (``deviance`` here is
``-2 logLik``, lme4's ``devCrit``), the quantiles of the Pearson residuals
("Scaled residuals"), the random effects without a residual row, the fixed
effects with ``z value`` and ``Pr(>|z|)`` and significance stars (R's
``printCoefmat``), the correlation of the fixed effects, and the fit's
messages. Number formatting is R's (:mod:`mmbook.engine.report`,
:mod:`mmbook.rcompat.lm`).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from scipy import stats

from ..rprint import SIGNIF_LEGEND, coef_matrix_cells, format_real, format_table, zapsmall
from .control import ConvergenceWarning
from .report import fixef_correlation_lines, random_effects_table

__all__ = ["glmm_summary_text", "glmm_summary_html", "coef_table", "method_title"]


def method_title(nAGQ: int) -> str:
    """lme4's ``methTitle`` for a GLMM."""
    how = "(Laplace Approximation)" if nAGQ == 1 else f"(Adaptive Gauss-Hermite Quadrature, nAGQ = {nAGQ})"
    return f"Generalized linear mixed model fit by maximum likelihood {how}"


def _title_lines(title: str, cls: str = "glmerMod", width: int = 80) -> list[str]:
    """lme4's ``.prt.methTit``: wrapped at ``width - 2`` with an indent of 2 when it does not fit."""
    if len(title) + 5 + len(cls) <= width:
        return [f"{title} ['{cls}']"]
    lines, cur = [], ""
    for word in title.split():
        trial = word if not cur else f"{cur} {word}"
        if len(trial) < width - 2 or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = "  " + word
    lines.append(cur)
    lines[-1] += f" [{cls}]"
    return lines


def coef_table(fit) -> pd.DataFrame:
    """lme4's ``coef(summary(fit))`` for a GLMM: Estimate, Std. Error, z value, Pr(>|z|)."""
    beta = fit.fixef.to_numpy()
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "z value": z,
                         "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))}, index=fit.fixef.index)


def glmm_summary_text(fit, digits: int = 4) -> str:
    """The text of lme4's ``summary(fit)`` for an mmbook GLMM fit."""
    out = _title_lines(method_title(fit.nAGQ))
    out.append(f" Family: {fit.family.label}")
    out.append(f"Formula: {fit.formula}")
    out.append("")
    vals = [round(v, 1) for v in (fit.aic, fit.bic, fit.loglik, -2.0 * fit.loglik)]
    txt = format_real(vals, 7) + [str(fit.df_resid)]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    w = max(len(a) for a in names + [t.strip() for t in txt])  # R prints a named vector in one width
    out.append(" ".join(a.rjust(w) for a in names) + " ")
    out.append(" ".join(b.strip().rjust(w) for b in txt) + " ")
    out.append("")
    q = np.quantile(fit.scaled_residuals.to_numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    qtxt = format_real(zapsmall(q, digits + 1), digits)
    qnames = ["Min", "1Q", "Median", "3Q", "Max"]
    qw = [max(len(a), len(b)) for a, b in zip(qnames, qtxt)]
    out.append("Scaled residuals: ")
    out.append(" ".join(a.rjust(x) for a, x in zip(qnames, qw)) + " ")
    out.append(" ".join(b.rjust(x) for b, x in zip(qtxt, qw)) + " ")
    out.append("")
    out.append("Random effects:")
    header, rows = random_effects_table(fit, digits, residual=False)
    out.append(format_table(rows, header, ["l"] * len(header)))
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    out.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    if fit.mf.p:
        out.append("")
        out.append("Fixed effects:")
        rows, stars = coef_matrix_cells(coef_table(fit), digits)
        header = ["Estimate", "Std. Error", "z value", "Pr(>|z|)"] + ([""] if stars else [])
        out.append(format_table(rows, header, ["r"] * len(header), rownames=list(fit.fixef.index)))
        if stars:
            out.append("---")
            out.append(SIGNIF_LEGEND)
    out.extend(fixef_correlation_lines(fit))
    if fit.mf.dropped_columns:
        k = len(fit.mf.dropped_columns)
        out.append(f"fit warnings:\nfixed-effect model matrix is rank deficient so dropping {k} column"
                   f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''}")
    conv = [text for cat, text in fit.messages if issubclass(cat, ConvergenceWarning)]
    if fit.is_singular or conv:
        out.append("optimizer (L-BFGS-B) convergence code: 0 (OK)")
        out.extend(conv)
        if fit.is_singular:
            out.append("boundary (singular) fit: see fit.is_singular")
    return "\n".join(out) + "\n"


def glmm_summary_html(fit) -> str:
    """An HTML rendering of the summary for notebooks: the text, preformatted."""
    return "<pre style='font-size: 0.85em; line-height: 1.25'>" + html.escape(glmm_summary_text(fit)) + "</pre>"
