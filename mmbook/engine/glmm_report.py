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

from ..rprint import SIGNIF_LEGEND, coef_matrix_cells, format_table
from .control import ConvergenceWarning
from .report import criterion_lines, fixef_correlation_lines, random_effects_lines, rank_deficiency_lines, residual_lines

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
    out += criterion_lines(fit.aic, fit.bic, fit.loglik, -2.0 * fit.loglik, fit.df_resid)
    out.append("")
    out += residual_lines(fit, digits)
    out.append("")
    out += random_effects_lines(fit, digits, residual=False)
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
    out += rank_deficiency_lines(fit)
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
